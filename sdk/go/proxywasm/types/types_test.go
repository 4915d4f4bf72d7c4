package types

import (
	"errors"
	"testing"
)

func TestActionValuesFollowTheABI(t *testing.T) {
	if ActionContinue != 0 || ActionPause != 1 {
		t.Fatal("Continue must be 0 and Pause 1")
	}
	if ActionPause.String() != "Pause" || Action(7).String() != "Action(7)" {
		t.Fatalf("%s %s", ActionPause, Action(7))
	}
}

func TestStatusErrors(t *testing.T) {
	if StatusToError(StatusOK) != nil {
		t.Fatal("Ok is not an error")
	}
	err := StatusToError(StatusCasMismatch)
	if !errors.Is(err, ErrorStatusCasMismatch) || errors.Is(err, ErrorStatusNotFound) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusCasMismatch {
		t.Fatalf("errors.As: %v", se)
	}
	if Status(99).String() != "Status(99)" || LogLevelWarn.String() != "warn" {
		t.Fatal("names")
	}
}

func TestDefaultsContinueAndAccept(t *testing.T) {
	var vm VMContext = &DefaultVMContext{}
	if !vm.OnVMStart(0) {
		t.Fatal("default VM refuses to start")
	}
	p := vm.NewPluginContext(1)
	if !bool(p.OnPluginStart(0)) || !p.OnPluginDone() {
		t.Fatal("default plugin refuses")
	}
	h := p.NewHttpContext(2)
	if h.OnHttpRequestHeaders(1, true) != ActionContinue || h.OnHttpResponseBody(1, false) != ActionContinue {
		t.Fatal("default http context pauses")
	}
}
