//go:build !wasip1

package proxytest

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"weft.dev/sdk/go/proxywasm"
	"weft.dev/sdk/go/proxywasm/types"
)

// A filter whose request-headers callback each test scripts.
type vm struct {
	types.DefaultVMContext
	onHeaders func(id uint32) types.Action
	onBody    func(size int, eos bool) types.Action
}

func (v *vm) NewPluginContext(uint32) types.PluginContext { return &plugin{vm: v} }

type plugin struct {
	types.DefaultPluginContext
	vm *vm
}

func (p *plugin) NewHttpContext(id uint32) types.HttpContext { return &testStream{id: id, vm: p.vm} }

type testStream struct {
	types.DefaultHttpContext
	id uint32
	vm *vm
}

func (s *testStream) OnHttpRequestHeaders(int, bool) types.Action { return s.vm.onHeaders(s.id) }

func (s *testStream) OnHttpRequestBody(size int, eos bool) types.Action {
	if s.vm.onBody != nil {
		return s.vm.onBody(size, eos)
	}
	return types.ActionContinue
}

func newHost(t *testing.T, v *vm) *Host {
	h := NewHost(v)
	t.Cleanup(h.Close)
	if err := h.StartPlugin(); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHeaderReplaceCollapsesDuplicatesAndKeysAreCaseInsensitive(t *testing.T) {
	h := newHost(t, &vm{onHeaders: func(uint32) types.Action {
		_ = proxywasm.ReplaceHttpRequestHeader("X-Dup", "one")
		_ = proxywasm.AddHttpRequestHeader("X-New", "v")
		_ = proxywasm.RemoveHttpRequestHeader("x-gone")
		return types.ActionContinue
	}})
	id := h.NewHttpStream()
	h.RequestHeaders(id, [][2]string{{":path", "/"}, {"x-dup", "a"}, {"x-gone", "1"}, {"x-dup", "b"}}, true)
	want := [][2]string{{":path", "/"}, {"x-dup", "one"}, {"x-new", "v"}}
	if got := h.RequestHeadersOf(id); !reflect.DeepEqual(got, want) {
		t.Fatalf("headers %q", got)
	}
}

func TestPausedBodyChunksAccumulateUntilContinue(t *testing.T) {
	var sizes []int
	h := newHost(t, &vm{
		onHeaders: func(uint32) types.Action { return types.ActionContinue },
		onBody: func(size int, eos bool) types.Action {
			sizes = append(sizes, size)
			if !eos {
				return types.ActionPause
			}
			b, _ := proxywasm.GetHttpRequestBody(0, size)
			_ = proxywasm.ReplaceHttpRequestBody([]byte(strings.ToUpper(string(b))))
			return types.ActionContinue
		},
	})
	id := h.NewHttpStream()
	h.RequestHeaders(id, [][2]string{{":path", "/"}}, false)
	h.RequestBody(id, []byte("ab"), false)
	if len(h.ForwardedRequestBody(id)) != 0 {
		t.Fatal("a paused chunk was forwarded")
	}
	h.RequestBody(id, []byte("cd"), true)
	if !reflect.DeepEqual(sizes, []int{2, 4}) || string(h.ForwardedRequestBody(id)) != "ABCD" {
		t.Fatalf("sizes %v body %q", sizes, h.ForwardedRequestBody(id))
	}
}

func TestHttpCallsAreCheckedAndAnsweredOnce(t *testing.T) {
	var errs []error
	var answered int
	h := newHost(t, &vm{onHeaders: func(uint32) types.Action {
		_, err := proxywasm.DispatchHttpCall("c", [][2]string{{":method", "GET"}, {":path", "/"}}, nil, nil, 10, nil)
		errs = append(errs, err)
		_, err = proxywasm.DispatchHttpCall("c", [][2]string{{":method", "GET"}, {":path", "/"}, {":authority", "c"}},
			[]byte("b"), nil, 10, func(nh, bs, nt int) {
				answered++
				v, _ := proxywasm.GetHttpCallResponseHeader("x-a")
				body, _ := proxywasm.GetHttpCallResponseBody(0, bs)
				_ = proxywasm.AddHttpRequestHeader("x-answer", v+"/"+string(body))
			})
		errs = append(errs, err)
		return types.ActionPause
	}})
	id := h.NewHttpStream()
	h.RequestHeaders(id, [][2]string{{":path", "/"}}, true)
	if !errors.Is(errs[0], types.ErrorStatusBadArgument) || errs[1] != nil {
		t.Fatalf("errors %v", errs)
	}
	calls := h.HttpCalls()
	if len(calls) != 1 || string(calls[0].Body) != "b" {
		t.Fatalf("calls %+v", calls)
	}
	if err := h.AnswerHttpCall(calls[0].Token, [][2]string{{"x-a", "1"}}, []byte("z"), nil); err != nil {
		t.Fatal(err)
	}
	if err := h.AnswerHttpCall(calls[0].Token, nil, nil, nil); err == nil {
		t.Fatal("answered twice")
	}
	if err := h.AnswerHttpCall(99, nil, nil, nil); err == nil {
		t.Fatal("unknown token accepted")
	}
	if v, _ := header(h.RequestHeadersOf(id), "x-answer"); v != "1/z" || answered != 1 {
		t.Fatalf("x-answer %q answered %d", v, answered)
	}
}

func TestPropertiesCloseAndEffectiveContext(t *testing.T) {
	h := newHost(t, &vm{onHeaders: func(uint32) types.Action {
		p, _ := proxywasm.GetPropertyString([]string{"request", "path"})
		_ = proxywasm.SetProperty([]string{"weft", "cluster"}, []byte("b-"+p))
		_ = proxywasm.CloseHttpStream()
		return types.ActionPause
	}})
	id := h.NewHttpStream()
	h.RequestHeaders(id, [][2]string{{":path", "/x"}}, true)
	if v, ok := h.StreamProperty(id, "weft", "cluster"); !ok || string(v) != "b-/x" {
		t.Fatalf("property %q %v", v, ok)
	}
	if !h.Closed(id) {
		t.Fatal("not closed")
	}
	if err := proxywasm.SetEffectiveContext(777); !errors.Is(err, types.ErrorStatusBadArgument) {
		t.Fatalf("bad context: %v", err)
	}
	if name, _ := proxywasm.GetPropertyString([]string{"plugin_name"}); name != "test" {
		t.Fatalf("plugin_name %q", name)
	}
}

func TestRefusalsCarryTheFiltersComplaint(t *testing.T) {
	h := NewHost(&refusing{})
	defer h.Close()
	err := h.StartPlugin()
	if err == nil || err.Error() != "OnVMStart refused: no way" {
		t.Fatalf("err %v", err)
	}
}

type refusing struct{ types.DefaultVMContext }

func (*refusing) OnVMStart(int) types.OnVMStartStatus {
	proxywasm.LogError("no way")
	return types.VMStartStatusFailed
}

func header(pairs [][2]string, key string) (string, bool) {
	for _, kv := range pairs {
		if kv[0] == key {
			return kv[1], true
		}
	}
	return "", false
}
