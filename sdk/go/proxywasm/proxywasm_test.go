//go:build !wasip1

package proxywasm

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"weft.dev/sdk/go/internal/hostcall"
	"weft.dev/sdk/go/proxywasm/types"
)

// A filter whose callbacks the tests script.
type testVM struct {
	types.DefaultVMContext
	started  int
	plugins  []*testPlugin
	onStart  func(int) types.OnVMStartStatus
	newHTTPs func(id uint32) types.HttpContext
	newTCP   func(id uint32) types.TcpContext
}

func (v *testVM) OnVMStart(size int) types.OnVMStartStatus {
	v.started = size
	if v.onStart != nil {
		return v.onStart(size)
	}
	return types.VMStartStatusOK
}

func (v *testVM) NewPluginContext(id uint32) types.PluginContext {
	p := &testPlugin{id: id, vm: v}
	v.plugins = append(v.plugins, p)
	return p
}

type testPlugin struct {
	types.DefaultPluginContext
	id     uint32
	vm     *testVM
	config map[string]any
	ticks  int
	queues []uint32
	https  []uint32
}

func (p *testPlugin) OnPluginStart(size int) types.OnPluginStartStatus {
	data, err := GetPluginConfiguration()
	if err != nil || len(data) != size {
		return types.OnPluginStartStatusFailed
	}
	if err := json.Unmarshal(data, &p.config); err != nil {
		LogErrorf("bad config: %v", err)
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (p *testPlugin) OnTick()                { p.ticks++ }
func (p *testPlugin) OnQueueReady(id uint32) { p.queues = append(p.queues, id) }
func (p *testPlugin) NewHttpContext(id uint32) types.HttpContext {
	p.https = append(p.https, id)
	if p.vm.newHTTPs != nil {
		return p.vm.newHTTPs(id)
	}
	return nil
}

func (p *testPlugin) NewTcpContext(id uint32) types.TcpContext {
	if p.vm.newTCP != nil {
		return p.vm.newTCP(id)
	}
	return nil
}

type scriptedTCP struct {
	types.DefaultTcpContext
	events []string
}

func (s *scriptedTCP) OnNewConnection() types.Action {
	s.events = append(s.events, "new")
	return types.ActionContinue
}

func (s *scriptedTCP) OnDownstreamData(size int, eos bool) types.Action {
	data, _ := GetDownstreamData(0, size)
	s.events = append(s.events, "down:"+string(data))
	_ = ReplaceDownstreamData([]byte("DOWN"))
	if !eos {
		return types.ActionPause
	}
	return types.ActionContinue
}

func (s *scriptedTCP) OnUpstreamData(size int, eos bool) types.Action {
	data, _ := GetUpstreamData(0, size)
	s.events = append(s.events, "up:"+string(data))
	_ = AppendUpstreamData([]byte("!"))
	return types.ActionContinue
}

func (s *scriptedTCP) OnDownstreamClose(p types.PeerType) {
	s.events = append(s.events, "down-close:"+utoa(uint64(p)))
}

func (s *scriptedTCP) OnUpstreamClose(p types.PeerType) {
	s.events = append(s.events, "up-close:"+utoa(uint64(p)))
}

func (s *scriptedTCP) OnStreamDone() { s.events = append(s.events, "done") }

type scriptedHTTP struct {
	types.DefaultHttpContext
	reqHeaders func(n int, eos bool) types.Action
	respBody   func(size int, eos bool) types.Action
	done       bool
}

func (s *scriptedHTTP) OnHttpRequestHeaders(n int, eos bool) types.Action {
	if s.reqHeaders != nil {
		return s.reqHeaders(n, eos)
	}
	return types.ActionContinue
}

func (s *scriptedHTTP) OnHttpResponseBody(size int, eos bool) types.Action {
	if s.respBody != nil {
		return s.respBody(size, eos)
	}
	return types.ActionContinue
}

func (s *scriptedHTTP) OnHttpStreamDone() { s.done = true }

// start runs the root context's start-up as a host does and opens stream 2.
func start(t *testing.T, h *fakeHost, vm *testVM) *testPlugin {
	t.Helper()
	SetVMContext(vm)
	h.buffers[7] = []byte(`{"greeting":"hi"}`)
	st.onContextCreate(1, 0)
	if st.onVMStart(1, 0) != 1 {
		t.Fatal("proxy_on_vm_start refused")
	}
	if got := st.onConfigure(1, int32(len(h.buffers[7]))); got != 1 {
		t.Fatalf("proxy_on_configure = %d; logs %q", got, h.logs)
	}
	st.onContextCreate(2, 1)
	return vm.plugins[0]
}

func TestLifecycleCreatesContextsAndPassesConfiguration(t *testing.T) {
	h := newFakeHost(t)
	var http *scriptedHTTP
	vm := &testVM{newHTTPs: func(uint32) types.HttpContext { http = &scriptedHTTP{}; return http }}
	p := start(t, h, vm)
	if p.id != 1 || p.config["greeting"] != "hi" {
		t.Fatalf("plugin context %d got config %v", p.id, p.config)
	}
	if !reflect.DeepEqual(p.https, []uint32{2}) {
		t.Fatalf("http contexts created: %v", p.https)
	}
	if st.rootOf[2] != 1 {
		t.Fatalf("stream 2 belongs to %d", st.rootOf[2])
	}
	if st.onDone(2) != 1 {
		t.Fatal("proxy_on_done of a stream should answer true")
	}
	st.onLog(2)
	if !http.done {
		t.Fatal("proxy_on_log did not call OnHttpStreamDone")
	}
	st.onDelete(2)
	if _, ok := st.https[2]; ok {
		t.Fatal("proxy_on_delete left the stream context behind")
	}
	// Callbacks for a deleted or unknown stream continue harmlessly.
	if st.onRequestHeaders(2, 0, 1) != 0 || st.onResponseBody(9, 0, 1) != 0 {
		t.Fatal("callbacks on unknown contexts must continue")
	}
}

func TestBadConfigurationIsRefused(t *testing.T) {
	h := newFakeHost(t)
	SetVMContext(&testVM{})
	h.buffers[7] = []byte(`{not json`)
	st.onContextCreate(1, 0)
	if st.onConfigure(1, int32(len(h.buffers[7]))) != 0 {
		t.Fatal("bad JSON accepted")
	}
	if len(h.logs) != 1 || !strings.HasPrefix(h.logs[0], "bad config: ") {
		t.Fatalf("logs: %q", h.logs)
	}
	if st.onConfigure(42, 0) != 0 {
		t.Fatal("configure of an unknown root context accepted")
	}
}

func TestVMStartRefusalIsPassedOn(t *testing.T) {
	newFakeHost(t)
	SetVMContext(&testVM{onStart: func(int) types.OnVMStartStatus { return types.VMStartStatusFailed }})
	st.onContextCreate(1, 0)
	if st.onVMStart(1, 3) != 0 {
		t.Fatal("refusal not passed on")
	}
}

func TestContextCreateWithoutVMContextPanicsWithAHint(t *testing.T) {
	h := newFakeHost(t)
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "SetVMContext") {
			t.Fatalf("recovered %v", r)
		}
		if len(h.logs) != 1 || !strings.Contains(h.logs[0], "SetVMContext") {
			t.Fatalf("logs %q", h.logs)
		}
	}()
	st.onContextCreate(1, 0)
}

func TestRequestHeaderHelpersAndActions(t *testing.T) {
	h := newFakeHost(t)
	h.maps[0] = [][2]string{{":path", "/a"}, {"x-old", "1"}}
	var seen [][2]string
	vm := &testVM{newHTTPs: func(uint32) types.HttpContext {
		return &scriptedHTTP{reqHeaders: func(n int, eos bool) types.Action {
			var err error
			if seen, err = GetHttpRequestHeaders(); err != nil {
				t.Fatal(err)
			}
			if n != len(h.maps[0]) || !eos {
				t.Fatalf("n=%d eos=%v", n, eos)
			}
			path, _ := GetHttpRequestHeader(":path")
			_ = AddHttpRequestHeader("x-added", "yes")
			_ = ReplaceHttpRequestHeader("x-path-copy", path)
			_ = RemoveHttpRequestHeader("x-old")
			if _, err := GetHttpRequestHeader("x-missing"); !errors.Is(err, types.ErrorStatusNotFound) {
				t.Fatalf("missing header: %v", err)
			}
			if path == "/pause" {
				return types.ActionPause
			}
			return types.ActionContinue
		}}
	}}
	start(t, h, vm)
	if got := st.onRequestHeaders(2, 2, 1); got != 0 {
		t.Fatalf("action %d, want continue (0)", got)
	}
	if !reflect.DeepEqual(seen, [][2]string{{":path", "/a"}, {"x-old", "1"}}) {
		t.Fatalf("headers seen: %q", seen)
	}
	want := [][2]string{{":path", "/a"}, {"x-added", "yes"}, {"x-path-copy", "/a"}}
	if !reflect.DeepEqual(h.maps[0], want) {
		t.Fatalf("headers after: %q", h.maps[0])
	}
	h.maps[0] = [][2]string{{":path", "/pause"}}
	if got := st.onRequestHeaders(2, 1, 1); got != 1 {
		t.Fatalf("action %d, want pause (1)", got)
	}
	if err := ReplaceHttpResponseHeaders([][2]string{{":status", "200"}, {"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := GetHttpResponseHeaders(); !reflect.DeepEqual(got, [][2]string{{":status", "200"}, {"a", "b"}}) {
		t.Fatalf("response headers round trip: %q", got)
	}
	_ = AddHttpResponseTrailer("grpc-status", "0")
	if v, err := GetHttpResponseTrailer("grpc-status"); v != "0" || err != nil {
		t.Fatalf("trailer: %q %v", v, err)
	}
}

func TestBodyHelpersUseTheSetBufferConventions(t *testing.T) {
	h := newFakeHost(t)
	h.buffers[1] = []byte("world")
	if err := PrependHttpResponseBody([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if err := AppendHttpResponseBody([]byte("!")); err != nil {
		t.Fatal(err)
	}
	if got := string(h.buffers[1]); got != "hello world!" {
		t.Fatalf("after prepend+append: %q", got)
	}
	part, _ := GetHttpResponseBody(6, 5)
	if string(part) != "world" {
		t.Fatalf("slice: %q", part)
	}
	if err := ReplaceHttpResponseBody([]byte("new")); err != nil {
		t.Fatal(err)
	}
	if got := string(h.buffers[1]); got != "new" {
		t.Fatalf("after replace: %q", got)
	}
	if _, err := GetHttpRequestBody(-1, 3); !errors.Is(err, types.ErrorStatusBadArgument) {
		t.Fatalf("negative start: %v", err)
	}
	h.buffers[0] = []byte("req")
	if err := ReplaceHttpRequestBody([]byte("REQ")); err != nil || string(h.buffers[0]) != "REQ" {
		t.Fatalf("request body replace: %q %v", h.buffers[0], err)
	}
}

func TestHttpCallCallbackRunsInTheContextThatMadeIt(t *testing.T) {
	h := newFakeHost(t)
	var got []int
	var ctxInCallback uint32
	vm := &testVM{newHTTPs: func(uint32) types.HttpContext {
		return &scriptedHTTP{reqHeaders: func(int, bool) types.Action {
			_, err := DispatchHttpCall("auth", [][2]string{{":method", "GET"}, {":path", "/t"}, {":authority", "auth"}},
				[]byte("q"), nil, 250, func(nh, bs, nt int) {
					got = []int{nh, bs, nt}
					ctxInCallback = st.current
					_ = ResumeHttpRequest()
				})
			if err != nil {
				t.Fatal(err)
			}
			return types.ActionPause
		}}
	}}
	start(t, h, vm)
	st.onContextCreate(3, 1)
	if st.onRequestHeaders(2, 0, 1) != 1 {
		t.Fatal("should pause")
	}
	if len(h.calls) != 1 || h.calls[0].cluster != "auth" || h.calls[0].timeout != 250 || h.calls[0].body != "q" ||
		!reflect.DeepEqual(h.calls[0].headers, [][2]string{{":method", "GET"}, {":path", "/t"}, {":authority", "auth"}}) {
		t.Fatalf("call: %+v", h.calls)
	}
	token := h.calls[0].token
	st.onHttpCallResponse(2, token+100, 1, 2, 3) // unknown token: ignored
	if got != nil {
		t.Fatal("callback ran for an unknown token")
	}
	st.current = 3 // another context ran meanwhile
	st.onHttpCallResponse(2, token, 4, 5, 6)
	if !reflect.DeepEqual(got, []int{4, 5, 6}) || ctxInCallback != 2 {
		t.Fatalf("callback args %v in context %d", got, ctxInCallback)
	}
	if !reflect.DeepEqual(h.resumed, []uint32{0}) {
		t.Fatalf("resumed streams: %v", h.resumed)
	}
	got = nil
	st.onHttpCallResponse(2, token, 1, 1, 1)
	if got != nil {
		t.Fatal("a callback ran twice")
	}
	// A stream deleted before its answer never sees it.
	st.onRequestHeaders(2, 0, 1)
	st.onDelete(2)
	st.onHttpCallResponse(2, h.calls[1].token, 0, 0, 0)
	if got != nil {
		t.Fatal("callback ran for a deleted stream")
	}
}

func TestHttpCallErrorsComeBack(t *testing.T) {
	h := newFakeHost(t)
	hostcall.Fake.HttpCall = func(string, []byte, []byte, []byte, uint32) (uint32, uint32) { return 0, 2 }
	_, err := DispatchHttpCall("nope", nil, nil, nil, 1, func(int, int, int) {})
	if !errors.Is(err, types.ErrorStatusBadArgument) {
		t.Fatalf("err = %v", err)
	}
	if len(st.calls) != 0 || len(h.calls) != 0 {
		t.Fatal("a failed call left a callback behind")
	}
}

func TestLocalResponseSerializesHeaders(t *testing.T) {
	h := newFakeHost(t)
	err := SendHttpResponseWithDetails(403, "denied", [][2]string{{"x-a", "1"}, {"x-b", ""}}, []byte("no\n"), -1)
	if err != nil {
		t.Fatal(err)
	}
	want := &localReply{403, "denied", "no\n", [][2]string{{"x-a", "1"}, {"x-b", ""}}}
	if !reflect.DeepEqual(h.local, want) {
		t.Fatalf("local reply %+v", h.local)
	}
	if err := SendHttpResponse(204, nil, nil, -1); err != nil || h.local.status != 204 || len(h.local.headers) != 0 {
		t.Fatalf("empty reply: %+v %v", h.local, err)
	}
}

func TestPropertiesTravelAsNulSeparatedPaths(t *testing.T) {
	h := newFakeHost(t)
	h.props["source\x00address"] = []byte("127.0.0.1:5555")
	h.props["source\x00port"] = []byte{0xb3, 0x15, 0, 0, 0, 0, 0, 0}
	h.props["request\x00headers"] = SerializeMap([][2]string{{"a", "b"}})
	if s, err := GetPropertyString([]string{"source", "address"}); err != nil || s != "127.0.0.1:5555" {
		t.Fatalf("address %q %v", s, err)
	}
	if p, err := GetPropertyInt64([]string{"source", "port"}); err != nil || p != 5555 {
		t.Fatalf("port %d %v", p, err)
	}
	if m, err := GetPropertyMap([]string{"request", "headers"}); err != nil || !reflect.DeepEqual(m, [][2]string{{"a", "b"}}) {
		t.Fatalf("map %q %v", m, err)
	}
	if _, err := GetProperty([]string{"nope"}); !errors.Is(err, types.ErrorStatusNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := SetProperty([]string{"weft", "cluster"}, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if string(h.props["weft\x00cluster"]) != "b" {
		t.Fatalf("props: %q", h.props)
	}
}

func TestSharedDataCompareAndSwap(t *testing.T) {
	newFakeHost(t)
	if _, _, err := GetSharedData("k"); !errors.Is(err, types.ErrorStatusNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := SetSharedData("k", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	v, cas, err := GetSharedData("k")
	if err != nil || string(v) != "1" || cas == 0 {
		t.Fatalf("get: %q %d %v", v, cas, err)
	}
	if err := SetSharedData("k", []byte("2"), cas); err != nil {
		t.Fatal(err)
	}
	if err := SetSharedData("k", []byte("3"), cas); !errors.Is(err, types.ErrorStatusCasMismatch) {
		t.Fatalf("stale cas: %v", err)
	}
	v, _, _ = GetSharedData("k")
	if string(v) != "2" {
		t.Fatalf("value %q", v)
	}
}

func TestQueuesAndOnQueueReady(t *testing.T) {
	h := newFakeHost(t)
	p := start(t, h, &testVM{})
	id, err := RegisterSharedQueue("q")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ResolveSharedQueue("", "q"); err != nil || r != id {
		t.Fatalf("resolve: %d %v", r, err)
	}
	if _, err := ResolveSharedQueue("", "other"); !errors.Is(err, types.ErrorStatusNotFound) {
		t.Fatalf("resolve other: %v", err)
	}
	_ = EnqueueSharedQueue(id, []byte("a"))
	_ = EnqueueSharedQueue(id, []byte("b"))
	st.onQueueReady(1, id)
	if !reflect.DeepEqual(p.queues, []uint32{id}) {
		t.Fatalf("OnQueueReady got %v", p.queues)
	}
	for _, want := range []string{"a", "b"} {
		if got, err := DequeueSharedQueue(id); err != nil || string(got) != want {
			t.Fatalf("dequeue %q %v, want %q", got, err, want)
		}
	}
	if _, err := DequeueSharedQueue(id); !errors.Is(err, types.ErrorStatusEmpty) {
		t.Fatalf("empty: %v", err)
	}
}

func TestTicksAndLogging(t *testing.T) {
	h := newFakeHost(t)
	p := start(t, h, &testVM{})
	if err := SetTickPeriodMilliSeconds(50); err != nil || h.tick != 50 {
		t.Fatalf("tick %d %v", h.tick, err)
	}
	st.onTick(1)
	st.onTick(1)
	st.onTick(77) // unknown root context: ignored
	if p.ticks != 2 {
		t.Fatalf("ticks %d", p.ticks)
	}
	h.logs = nil
	LogInfof("n=%d s=%s", 3, "x")
	LogWarn("plain")
	if !reflect.DeepEqual(h.logs, []string{"n=3 s=x", "plain"}) {
		t.Fatalf("logs %q", h.logs)
	}
}

func TestMetrics(t *testing.T) {
	newFakeHost(t)
	c, err := DefineCounterMetric("reqs")
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Increment(2)
	_ = c.Increment(3)
	if v, err := c.Value(); err != nil || v != 5 {
		t.Fatalf("counter %d %v", v, err)
	}
	if err := c.Increment(1 << 63); !errors.Is(err, types.ErrorStatusBadArgument) {
		t.Fatalf("overflowing increment: %v", err)
	}
	g, _ := DefineGaugeMetric("g")
	_ = g.Add(5)
	_ = g.Add(-7)
	if v, _ := g.Value(); v != -2 {
		t.Fatalf("gauge %d", v)
	}
	_ = g.Set(9)
	if v, _ := g.Value(); v != 9 {
		t.Fatalf("gauge after set %d", v)
	}
	hst, _ := DefineHistogramMetric("h")
	if err := hst.Record(12); err != nil {
		t.Fatal(err)
	}
	if _, err := DefineGaugeMetric("reqs"); !errors.Is(err, types.ErrorStatusBadArgument) {
		t.Fatalf("redefining with another kind: %v", err)
	}
	if again, _ := DefineCounterMetric("reqs"); again != c {
		t.Fatal("defining again should find the same metric")
	}
}

func TestUnimplementedHostcallsReportAnError(t *testing.T) {
	newFakeHost(t)
	hostcall.Fake = hostcall.FakeHost{}
	_, err := GetHttpRequestHeader("x")
	if !errors.Is(err, types.ErrorStatusUnimplemented) || errors.Is(err, types.ErrorStatusNotFound) {
		t.Fatalf("err = %v", err)
	}
	if err.Error() != "proxy-wasm status Unimplemented" {
		t.Fatalf("message %q", err.Error())
	}
	if _, err := GetHttpRequestHeaders(); err == nil {
		t.Fatal("no error from a missing hostcall")
	}
}

func TestMalformedHeaderMapFromTheHostIsAnError(t *testing.T) {
	newFakeHost(t)
	hostcall.Fake.GetHeaderMapPairs = func(uint32) ([]byte, uint32) { return []byte{9, 0, 0, 0}, 0 }
	if _, err := GetHttpRequestHeaders(); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("err = %v", err)
	}
}

func TestSetEffectiveContextSwitchesTheCurrentContext(t *testing.T) {
	h := newFakeHost(t)
	start(t, h, &testVM{})
	st.onTick(1)
	if err := SetEffectiveContext(2); err != nil || h.effective != 2 || st.current != 2 {
		t.Fatalf("effective %d current %d %v", h.effective, st.current, err)
	}
}

func TestTcpContextIsMadeAtNewConnection(t *testing.T) {
	h := newFakeHost(t)
	var closed []uint32
	hostcall.Fake.CloseStream = func(st uint32) uint32 { closed = append(closed, st); return 0 }
	var tcp *scriptedTCP
	vm := &testVM{
		newHTTPs: func(uint32) types.HttpContext { return &scriptedHTTP{} },
		newTCP:   func(uint32) types.TcpContext { tcp = &scriptedTCP{}; return tcp },
	}
	start(t, h, vm)
	if st.onNewConnection(2) != 0 {
		t.Fatal("new connection should continue")
	}
	if _, ok := st.https[2]; ok {
		t.Fatal("the HTTP context of a TCP stream was kept")
	}
	h.buffers[2] = []byte("ping")
	if st.onDownstreamData(2, 4, 0) != 1 {
		t.Fatal("downstream data should pause")
	}
	if string(h.buffers[2]) != "DOWN" {
		t.Fatalf("downstream buffer %q", h.buffers[2])
	}
	h.buffers[3] = []byte("pong")
	if st.onUpstreamData(2, 4, 1) != 0 || string(h.buffers[3]) != "pong!" {
		t.Fatalf("upstream buffer %q", h.buffers[3])
	}
	st.onDownstreamClose(2, 2)
	st.onUpstreamClose(2, 1)
	st.onLog(2)
	want := []string{"new", "down:ping", "up:pong", "down-close:2", "up-close:1", "done"}
	if !reflect.DeepEqual(tcp.events, want) {
		t.Fatalf("events %q", tcp.events)
	}
	_ = ResumeDownstream()
	_ = ResumeUpstream()
	_ = CloseDownstream()
	_ = CloseUpstream()
	if !reflect.DeepEqual(h.resumed, []uint32{2, 3}) || !reflect.DeepEqual(closed, []uint32{2, 3}) {
		t.Fatalf("resumed %v closed %v", h.resumed, closed)
	}
	st.onDelete(2)
	if len(st.tcps) != 0 {
		t.Fatal("TCP context left after delete")
	}
}

func TestTcpCallbacksWithoutATcpContextContinue(t *testing.T) {
	h := newFakeHost(t)
	start(t, h, &testVM{})
	if st.onNewConnection(2) != 0 || st.onDownstreamData(2, 1, 0) != 0 || st.onUpstreamData(2, 1, 0) != 0 {
		t.Fatal("a plugin without TCP contexts must let data through")
	}
	st.onDownstreamClose(2, 1)
	if st.onNewConnection(99) != 0 {
		t.Fatal("unknown context")
	}
}

type fakeGrpc struct {
	calls []string
	next  uint32
}

func installGrpc(f *fakeGrpc) {
	hostcall.Fake.GrpcCall = func(up, svc, m string, md, msg []byte, timeout uint32) (uint32, uint32) {
		pairs, _ := DeserializeMap(md)
		f.next++
		f.calls = append(f.calls, "call "+up+" "+svc+"/"+m+" "+string(msg)+" "+utoa(uint64(timeout))+" "+pairs[0][0]+"="+pairs[0][1])
		return f.next, 0
	}
	hostcall.Fake.GrpcStream = func(up, svc, m string, md []byte) (uint32, uint32) {
		f.next++
		f.calls = append(f.calls, "stream "+up+" "+svc+"/"+m)
		return f.next, 0
	}
	hostcall.Fake.GrpcSend = func(token uint32, msg []byte, eos bool) uint32 {
		f.calls = append(f.calls, "send "+utoa(uint64(token))+" "+string(msg)+" "+map[bool]string{true: "eos", false: "more"}[eos])
		return 0
	}
	hostcall.Fake.GrpcCancel = func(token uint32) uint32 { f.calls = append(f.calls, "cancel "+utoa(uint64(token))); return 0 }
	hostcall.Fake.GrpcClose = func(token uint32) uint32 { f.calls = append(f.calls, "close "+utoa(uint64(token))); return 0 }
	hostcall.Fake.GetStatus = func() (uint32, []byte, uint32) { return 14, []byte("unavailable"), 0 }
}

func TestGrpcCallCallbacksRunOnceInTheCallingContext(t *testing.T) {
	h := newFakeHost(t)
	f := &fakeGrpc{}
	installGrpc(f)
	start(t, h, &testVM{})
	st.onRequestHeaders(2, 0, 1) // context 2 is current
	var got []string
	cb := func(code uint32, size int) {
		got = append(got, utoa(uint64(code))+"/"+utoa(uint64(size))+"@"+utoa(uint64(st.current)))
	}
	ok, err := DispatchGrpcCall("grpc", "pkg.Svc", "Get", [][2]string{{"k", "v"}}, []byte("req"), 100, cb)
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := DispatchGrpcCall("grpc", "pkg.Svc", "Get", [][2]string{{"k", "v"}}, nil, 100, cb)
	if f.calls[0] != "call grpc pkg.Svc/Get req 100 k=v" {
		t.Fatalf("call %q", f.calls[0])
	}
	st.onGrpcReceive(1, ok, 12)
	st.onGrpcReceive(1, ok, 12) // once only
	st.onGrpcClose(1, bad, 14)
	if !reflect.DeepEqual(got, []string{"0/12@2", "14/0@2"}) {
		t.Fatalf("callbacks %q", got)
	}
	if code, msg, err := GetGrpcStatus(); code != 14 || msg != "unavailable" || err != nil {
		t.Fatalf("status %d %q %v", code, msg, err)
	}
}

func TestGrpcStreamHandlers(t *testing.T) {
	h := newFakeHost(t)
	f := &fakeGrpc{}
	installGrpc(f)
	start(t, h, &testVM{})
	var events []string
	token, err := OpenGrpcStream("grpc", "pkg.Svc", "Watch", nil, GrpcStreamHandlers{
		OnInitialMetadata:  func(n int) { events = append(events, "md:"+utoa(uint64(n))) },
		OnMessage:          func(n int) { events = append(events, "msg:"+utoa(uint64(n))) },
		OnTrailingMetadata: func(n int) { events = append(events, "tr:"+utoa(uint64(n))) },
		OnClose:            func(code uint32) { events = append(events, "close:"+utoa(uint64(code))) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = SendGrpcStreamMessage(token, []byte("m1"), false)
	st.onGrpcReceiveInitialMetadata(1, token, 2)
	st.onGrpcReceive(1, token, 5)
	st.onGrpcReceive(1, token, 6)
	st.onGrpcReceiveTrailingMetadata(1, token, 1)
	st.onGrpcClose(1, token, 0)
	st.onGrpcReceive(1, token, 7) // closed: ignored
	want := []string{"md:2", "msg:5", "msg:6", "tr:1", "close:0"}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("events %q", events)
	}
	other, _ := OpenGrpcStream("grpc", "pkg.Svc", "Watch", nil, GrpcStreamHandlers{
		OnMessage: func(int) { t.Fatal("a cancelled stream got a message") },
	})
	_ = CancelGrpcCall(other)
	st.onGrpcReceive(1, other, 1)
	_ = CloseGrpcStream(token)
	wantCalls := []string{"stream grpc pkg.Svc/Watch", "send 1 m1 more", "stream grpc pkg.Svc/Watch", "cancel 2", "close 1"}
	if !reflect.DeepEqual(f.calls, wantCalls) {
		t.Fatalf("hostcalls %q", f.calls)
	}
}
