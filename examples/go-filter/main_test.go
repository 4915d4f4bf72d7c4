//go:build !wasip1

package main

// Native tests of the filter's logic with the SDK's in-memory host
// (weft.dev/sdk/go/proxytest): `go test` on the developer's machine. The
// same filter runs in the real weft in tests/tests/go_sdk.rs.

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"weft.dev/sdk/go/proxytest"
	"weft.dev/sdk/go/proxywasm/types"
)

func start(t *testing.T, config string) *proxytest.Host {
	t.Helper()
	h := proxytest.NewHost(&vmContext{},
		proxytest.WithPluginConfiguration([]byte(config)),
		proxytest.WithProperty([]string{"source", "address"}, []byte("10.1.2.3:4567")))
	t.Cleanup(h.Close)
	if err := h.StartPlugin(); err != nil {
		t.Fatal(err)
	}
	return h
}

func header(pairs [][2]string, key string) (string, bool) {
	for _, kv := range pairs {
		if kv[0] == key {
			return kv[1], true
		}
	}
	return "", false
}

func request(path string) [][2]string {
	return [][2]string{{":method", "GET"}, {":path", path}, {":authority", "example"}}
}

func TestConfigurationTicksAndRefusal(t *testing.T) {
	h := start(t, `{"cluster":"tokens","tick_ms":20}`)
	if h.TickPeriod() != 20 {
		t.Fatalf("tick period %d", h.TickPeriod())
	}
	for i := 0; i < 3; i++ {
		h.Tick()
	}
	if v, _, _ := h.SharedData("ticks"); string(v) != "3" {
		t.Fatalf("ticks %q", v)
	}

	bad := proxytest.NewHost(&vmContext{}, proxytest.WithPluginConfiguration([]byte(`{"tick_ms":"soon"}`)))
	defer bad.Close()
	err := bad.StartPlugin()
	if err == nil || !strings.Contains(err.Error(), "invalid pluginConfig") {
		t.Fatalf("bad config: %v", err)
	}
}

func TestProxiedRequestHeadersPropertiesAndBodyRewrite(t *testing.T) {
	h := start(t, `{}`)
	id := h.NewHttpStream()
	if a := h.RequestHeaders(id, append(request("/some/path"), [2]string{"x-go-source", "spoofed"}), true); a != types.ActionContinue {
		t.Fatalf("action %v", a)
	}
	req := h.RequestHeadersOf(id)
	for k, want := range map[string]string{"x-go-filter": "on", "x-go-source": "10.1.2.3:4567", "x-go-request-count": "1"} {
		if got, _ := header(req, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	h.ResponseHeaders(id, [][2]string{{":status", "200"}, {"content-length", "5"}}, false)
	resp := h.ResponseHeadersOf(id)
	if _, found := header(resp, "content-length"); found {
		t.Error("content-length kept although the body changes")
	}
	if got, _ := header(resp, "x-go-path"); got != "/some/path" {
		t.Errorf("x-go-path %q", got)
	}
	if a := h.ResponseBody(id, []byte("hel"), false); a != types.ActionPause {
		t.Fatalf("first chunk: %v, want the body buffered", a)
	}
	if a := h.ResponseBody(id, []byte("lo"), true); a != types.ActionContinue {
		t.Fatalf("last chunk: %v", a)
	}
	if got := string(h.ForwardedResponseBody(id)); got != "[go-filter] HELLO" {
		t.Fatalf("body %q", got)
	}
	if got := h.HistogramValues("go_filter_response_bytes"); !reflect.DeepEqual(got, []uint64{5}) {
		t.Fatalf("histogram %v", got)
	}
	if n, _ := h.MetricValue("go_filter_requests"); n != 1 {
		t.Fatalf("counter %d", n)
	}
	if n, _ := h.MetricValue("go_filter_last_path_length"); n != int64(len("/some/path")) {
		t.Fatalf("gauge %d", n)
	}
	if logs := h.Logs(types.LogLevelInfo); !contains(logs, "go-filter: request /some/path #1") {
		t.Fatalf("logs %q", logs)
	}
	h.CompleteStream(id)
}

func TestDenyIsALocalReply(t *testing.T) {
	h := start(t, `{}`)
	id := h.NewHttpStream()
	if a := h.RequestHeaders(id, request("/go/deny"), true); a != types.ActionPause {
		t.Fatalf("action %v", a)
	}
	r := h.LocalResponse(id)
	if r == nil || r.StatusCode != 403 || string(r.Body) != "denied by go-filter\n" || r.Details != "go-filter-denied" {
		t.Fatalf("local reply %+v", r)
	}
	if n, _ := h.MetricValue("go_filter_requests"); n != 0 {
		t.Fatal("a denied request was counted")
	}
}

func TestCalloutAnswerResumesTheRequest(t *testing.T) {
	h := start(t, `{"cluster":"tokens"}`)
	id := h.NewHttpStream()
	if a := h.RequestHeaders(id, request("/go/call/x"), true); a != types.ActionPause {
		t.Fatalf("action %v", a)
	}
	calls := h.HttpCalls()
	if len(calls) != 1 || calls[0].Cluster != "tokens" || calls[0].ContextID != id {
		t.Fatalf("calls %+v", calls)
	}
	if p, _ := header(calls[0].Headers, ":path"); p != "/token" {
		t.Fatalf("call path %q", p)
	}
	if h.ResumedRequest(id) != 0 {
		t.Fatal("resumed before the answer")
	}
	err := h.AnswerHttpCall(calls[0].Token, [][2]string{{":status", "200"}, {"x-token", "t-1"}}, []byte("hi\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := h.RequestHeadersOf(id)
	for k, want := range map[string]string{"x-go-token": "t-1", "x-go-callout-status": "200", "x-go-callout-body": "hi"} {
		if got, _ := header(req, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if h.ResumedRequest(id) != 1 {
		t.Fatalf("resumed %d times", h.ResumedRequest(id))
	}
}

func TestCountersQueueAndStats(t *testing.T) {
	h := start(t, `{}`)
	for i := 1; i <= 3; i++ {
		id := h.NewHttpStream()
		h.RequestHeaders(id, request("/q"), true)
		if got, _ := header(h.RequestHeadersOf(id), "x-go-request-count"); got != string(rune('0'+i)) {
			t.Fatalf("request %d counted as %q", i, got)
		}
		h.CompleteStream(id)
	}
	if h.QueueLength(queueName) != 3 {
		t.Fatalf("queue holds %d", h.QueueLength(queueName))
	}
	if h.FlushQueues() != 3 || h.QueueLength(queueName) != 0 {
		t.Fatal("queue not drained")
	}
	h.Tick()
	id := h.NewHttpStream()
	h.RequestHeaders(id, request("/go/stats"), true)
	r := h.LocalResponse(id)
	if r == nil || r.StatusCode != 200 {
		t.Fatalf("stats reply %+v", r)
	}
	var stats map[string]uint64
	if err := json.Unmarshal(r.Body, &stats); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stats, map[string]uint64{"requests": 3, "dequeued": 3, "ticks": 1}) {
		t.Fatalf("stats %v", stats)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
