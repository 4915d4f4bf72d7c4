//go:build !wasip1

// Package proxytest runs a filter written with weft's Go SDK natively, in
// `go test`, against an in-memory host that behaves like weft's: header
// maps, buffered bodies (paused chunks accumulate), properties, local
// responses, HTTP calls answered by the test, ticks, shared data with CAS,
// shared queues, metrics and logs.
//
//	h := proxytest.NewHost(&myVM{}, proxytest.WithPluginConfiguration([]byte(`{}`)))
//	defer h.Close()
//	if err := h.StartPlugin(); err != nil { t.Fatal(err) }
//	id := h.NewHttpStream()
//	action := h.RequestHeaders(id, [][2]string{{":path", "/"}}, true)
//
// One Host exists at a time (the SDK's state is global, as in a VM). TCP
// streams and gRPC are not emulated.
package proxytest

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"weft.dev/sdk/go/internal/codec"
	"weft.dev/sdk/go/internal/hostcall"
	"weft.dev/sdk/go/proxywasm/types"
)

// RootContextID is the plugin (root) context's id, as in weft.
const RootContextID uint32 = 1

const (
	ok          = uint32(types.StatusOK)
	notFound    = uint32(types.StatusNotFound)
	badArgument = uint32(types.StatusBadArgument)
	empty       = uint32(types.StatusEmpty)
	casMismatch = uint32(types.StatusCasMismatch)
	unimpl      = uint32(types.StatusUnimplemented)
)

// LocalResponse is a reply a filter sent with SendHttpResponse.
type LocalResponse struct {
	StatusCode uint32
	Details    string
	Headers    [][2]string
	Body       []byte
	GrpcStatus int32
}

// HttpCall is an HTTP call a filter made with DispatchHttpCall.
type HttpCall struct {
	Token     uint32
	ContextID uint32
	Cluster   string
	Headers   [][2]string
	Body      []byte
	Trailers  [][2]string
	TimeoutMs uint32
	Answered  bool
}

type stream struct {
	maps          [4][][2]string // request headers, request trailers, response headers, response trailers
	bodies        [2][]byte      // request, response: buffered (held) data
	forwarded     [2][]byte
	props         map[string][]byte
	local         *LocalResponse
	resumed       [2]int
	closed        bool
	done, deleted bool
}

type sharedValue struct {
	value []byte
	cas   uint32
}

type metric struct {
	kind   uint32
	value  int64
	values []uint64
}

type callAnswer struct {
	headers, trailers [][2]string
	body              []byte
}

// Host is the in-memory proxy. Create it with NewHost and Close it at the
// end of the test.
type Host struct {
	vm           types.VMContext
	vmConfig     []byte
	pluginConfig []byte
	pluginName   string
	vmID         string
	props        map[string][]byte

	effective  uint32
	nextID     uint32
	streams    map[uint32]*stream
	logs       [6][]string
	shared     map[string]sharedValue
	queues     map[string]uint32
	queueItems map[uint32][][]byte
	wakes      []uint32
	metrics    map[string]uint32
	metricList []*metric
	tick       uint32
	calls      []*HttpCall
	answer     *callAnswer
	doneCalled bool
}

// Option configures a Host.
type Option func(*Host)

// WithPluginConfiguration sets the plugin configuration (OnPluginStart).
func WithPluginConfiguration(b []byte) Option { return func(h *Host) { h.pluginConfig = b } }

// WithVMConfiguration sets the VM configuration (OnVMStart).
func WithVMConfiguration(b []byte) Option { return func(h *Host) { h.vmConfig = b } }

// WithPluginName sets the plugin_name property (default "test").
func WithPluginName(name string) Option { return func(h *Host) { h.pluginName = name } }

// WithProperty sets a host property, e.g. WithProperty([]string{"source",
// "address"}, []byte("10.0.0.1:4000")).
func WithProperty(path []string, value []byte) Option {
	return func(h *Host) { h.props[string(codec.SerializePropertyPath(path))] = value }
}

// NewHost installs an in-memory host running vm, with fresh SDK state.
func NewHost(vm types.VMContext, opts ...Option) *Host {
	h := &Host{
		vm: vm, pluginName: "test", props: map[string][]byte{},
		nextID: RootContextID + 1, effective: RootContextID,
		streams: map[uint32]*stream{}, shared: map[string]sharedValue{},
		queues: map[string]uint32{}, queueItems: map[uint32][][]byte{}, metrics: map[string]uint32{},
	}
	for _, o := range opts {
		o(h)
	}
	hostcall.Fake = h.table()
	if hostcall.Callbacks.Reset == nil {
		panic("proxytest: package proxywasm is not linked in")
	}
	hostcall.Callbacks.Reset(vm)
	return h
}

// Close uninstalls the host and clears the SDK's state.
func (h *Host) Close() {
	hostcall.Fake = hostcall.FakeHost{}
	hostcall.Callbacks.Reset(nil)
}

// StartPlugin creates the root context and runs OnVMStart and
// OnPluginStart, as weft does when it loads a plugin; the error says
// which one refused (with the last warning or error the filter logged).
func (h *Host) StartPlugin() error {
	cb := hostcall.Callbacks
	h.effective = RootContextID
	cb.OnContextCreate(RootContextID, 0)
	if cb.OnVMStart(RootContextID, int32(len(h.vmConfig))) == 0 {
		return errors.New("OnVMStart refused" + h.lastComplaint())
	}
	if cb.OnConfigure(RootContextID, int32(len(h.pluginConfig))) == 0 {
		return errors.New("OnPluginStart refused" + h.lastComplaint())
	}
	return nil
}

func (h *Host) lastComplaint() string {
	for l := len(h.logs) - 1; l >= int(types.LogLevelWarn); l-- {
		if n := len(h.logs[l]); n > 0 {
			return ": " + h.logs[l][n-1]
		}
	}
	return ""
}

// NewHttpStream creates an HTTP stream context and returns its id.
func (h *Host) NewHttpStream() uint32 {
	id := h.nextID
	h.nextID++
	h.streams[id] = &stream{props: map[string][]byte{}}
	h.effective = id
	hostcall.Callbacks.OnContextCreate(id, RootContextID)
	return id
}

func (h *Host) stream(id uint32) *stream {
	s, found := h.streams[id]
	if !found {
		panic("proxytest: no HTTP stream " + strconv.FormatUint(uint64(id), 10))
	}
	return s
}

func (h *Host) headersPhase(id uint32, m int, headers [][2]string, eos bool,
	call func(uint32, int32, int32) int32) types.Action {
	s := h.stream(id)
	s.maps[m] = append([][2]string(nil), headers...)
	h.effective = id
	return types.Action(call(id, int32(len(headers)), boolI32(eos)))
}

func (h *Host) bodyPhase(id uint32, b int, chunk []byte, eos bool, call func(uint32, int32, int32) int32) types.Action {
	s := h.stream(id)
	s.bodies[b] = append(s.bodies[b], chunk...)
	h.effective = id
	a := types.Action(call(id, int32(len(s.bodies[b])), boolI32(eos)))
	if a == types.ActionContinue {
		s.forwarded[b] = append(s.forwarded[b], s.bodies[b]...)
		s.bodies[b] = nil
	}
	return a
}

// RequestHeaders runs OnHttpRequestHeaders with these headers.
func (h *Host) RequestHeaders(id uint32, headers [][2]string, endOfStream bool) types.Action {
	return h.headersPhase(id, 0, headers, endOfStream, hostcall.Callbacks.OnRequestHeaders)
}

// RequestBody adds a chunk to the buffered request body and runs
// OnHttpRequestBody with the buffered size; on Continue the buffered body
// is forwarded (see ForwardedRequestBody), on Pause it stays buffered.
func (h *Host) RequestBody(id uint32, chunk []byte, endOfStream bool) types.Action {
	return h.bodyPhase(id, 0, chunk, endOfStream, hostcall.Callbacks.OnRequestBody)
}

// RequestTrailers runs OnHttpRequestTrailers.
func (h *Host) RequestTrailers(id uint32, trailers [][2]string) types.Action {
	s := h.stream(id)
	s.maps[1] = append([][2]string(nil), trailers...)
	h.effective = id
	return types.Action(hostcall.Callbacks.OnRequestTrailers(id, int32(len(trailers))))
}

// ResponseHeaders runs OnHttpResponseHeaders (include ":status").
func (h *Host) ResponseHeaders(id uint32, headers [][2]string, endOfStream bool) types.Action {
	return h.headersPhase(id, 2, headers, endOfStream, hostcall.Callbacks.OnResponseHeaders)
}

// ResponseBody is RequestBody for the response.
func (h *Host) ResponseBody(id uint32, chunk []byte, endOfStream bool) types.Action {
	return h.bodyPhase(id, 1, chunk, endOfStream, hostcall.Callbacks.OnResponseBody)
}

// ResponseTrailers runs OnHttpResponseTrailers.
func (h *Host) ResponseTrailers(id uint32, trailers [][2]string) types.Action {
	s := h.stream(id)
	s.maps[3] = append([][2]string(nil), trailers...)
	h.effective = id
	return types.Action(hostcall.Callbacks.OnResponseTrailers(id, int32(len(trailers))))
}

// CompleteStream ends a stream: proxy_on_done, proxy_on_log, proxy_on_delete.
func (h *Host) CompleteStream(id uint32) {
	s := h.stream(id)
	h.effective = id
	hostcall.Callbacks.OnDone(id)
	hostcall.Callbacks.OnLog(id)
	hostcall.Callbacks.OnDelete(id)
	s.done, s.deleted = true, true
}

// Tick runs the plugin context's OnTick once.
func (h *Host) Tick() {
	h.effective = RootContextID
	hostcall.Callbacks.OnTick(RootContextID)
}

// FlushQueues delivers pending queue wake-ups (OnQueueReady), as weft does
// after a callback that enqueued, and returns how many it delivered.
func (h *Host) FlushQueues() int {
	n := 0
	for len(h.wakes) > 0 && n < 10000 {
		id := h.wakes[0]
		h.wakes = h.wakes[1:]
		h.effective = RootContextID
		hostcall.Callbacks.OnQueueReady(RootContextID, id)
		n++
	}
	return n
}

// HttpCalls returns the HTTP calls made so far.
func (h *Host) HttpCalls() []HttpCall {
	out := make([]HttpCall, 0, len(h.calls))
	for _, c := range h.calls {
		out = append(out, *c)
	}
	return out
}

// AnswerHttpCall delivers an answer to a call (proxy_on_http_call_response
// in the context that made it). headers usually include ":status".
func (h *Host) AnswerHttpCall(token uint32, headers [][2]string, body []byte, trailers [][2]string) error {
	for _, c := range h.calls {
		if c.Token != token {
			continue
		}
		if c.Answered {
			return errors.New("proxytest: call " + strconv.FormatUint(uint64(token), 10) + " already answered")
		}
		c.Answered = true
		h.answer = &callAnswer{headers: headers, body: body, trailers: trailers}
		h.effective = c.ContextID
		hostcall.Callbacks.OnHttpCallResponse(c.ContextID, token, int32(len(headers)), int32(len(body)), int32(len(trailers)))
		h.answer = nil
		return nil
	}
	return errors.New("proxytest: no HTTP call with token " + strconv.FormatUint(uint64(token), 10))
}

// RequestHeadersOf returns a stream's request headers as the filter left them.
func (h *Host) RequestHeadersOf(id uint32) [][2]string { return h.stream(id).maps[0] }

// RequestTrailersOf returns a stream's request trailers.
func (h *Host) RequestTrailersOf(id uint32) [][2]string { return h.stream(id).maps[1] }

// ResponseHeadersOf returns a stream's response headers.
func (h *Host) ResponseHeadersOf(id uint32) [][2]string { return h.stream(id).maps[2] }

// ResponseTrailersOf returns a stream's response trailers.
func (h *Host) ResponseTrailersOf(id uint32) [][2]string { return h.stream(id).maps[3] }

// ForwardedRequestBody returns the request body passed on so far.
func (h *Host) ForwardedRequestBody(id uint32) []byte { return h.stream(id).forwarded[0] }

// ForwardedResponseBody returns the response body passed on so far.
func (h *Host) ForwardedResponseBody(id uint32) []byte { return h.stream(id).forwarded[1] }

// LocalResponse returns the stream's local reply, or nil.
func (h *Host) LocalResponse(id uint32) *LocalResponse { return h.stream(id).local }

// ResumedRequest counts ResumeHttpRequest calls for the stream.
func (h *Host) ResumedRequest(id uint32) int { return h.stream(id).resumed[0] }

// ResumedResponse counts ResumeHttpResponse calls for the stream.
func (h *Host) ResumedResponse(id uint32) int { return h.stream(id).resumed[1] }

// Closed reports whether the filter closed the stream.
func (h *Host) Closed(id uint32) bool { return h.stream(id).closed }

// StreamProperty returns a property the filter set on the stream.
func (h *Host) StreamProperty(id uint32, path ...string) ([]byte, bool) {
	v, found := h.stream(id).props[string(codec.SerializePropertyPath(path))]
	return v, found
}

// Logs returns the messages logged at one level.
func (h *Host) Logs(level types.LogLevel) []string {
	if int(level) >= len(h.logs) {
		return nil
	}
	return append([]string(nil), h.logs[level]...)
}

// TickPeriod returns the tick period the filter set, in milliseconds.
func (h *Host) TickPeriod() uint32 { return h.tick }

// SharedData returns a shared value and its CAS token.
func (h *Host) SharedData(key string) ([]byte, uint32, bool) {
	v, found := h.shared[key]
	return v.value, v.cas, found
}

// QueueLength returns how many items wait in a named queue.
func (h *Host) QueueLength(name string) int {
	id, found := h.queues[name]
	if !found {
		return 0
	}
	return len(h.queueItems[id])
}

// MetricValue returns a counter's or gauge's value.
func (h *Host) MetricValue(name string) (int64, bool) {
	id, found := h.metrics[name]
	if !found {
		return 0, false
	}
	return h.metricList[id-1].value, true
}

// HistogramValues returns the values recorded in a histogram.
func (h *Host) HistogramValues(name string) []uint64 {
	id, found := h.metrics[name]
	if !found {
		return nil
	}
	return append([]uint64(nil), h.metricList[id-1].values...)
}

// PluginDoneCalled reports whether the filter called PluginDone.
func (h *Host) PluginDoneCalled() bool { return h.doneCalled }

func boolI32(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// ---------------------------------------------------------------------------
// The hostcalls.

func (h *Host) current() *stream { return h.streams[h.effective] }

func (h *Host) headerMap(mt uint32) (*[][2]string, uint32) {
	switch mt {
	case 6, 7:
		if h.answer == nil {
			return nil, notFound
		}
		if mt == 6 {
			return &h.answer.headers, ok
		}
		return &h.answer.trailers, ok
	case 0, 1, 2, 3:
		s := h.current()
		if s == nil {
			return nil, notFound
		}
		return &s.maps[mt], ok
	case 4, 5:
		return nil, notFound
	}
	return nil, badArgument
}

func (h *Host) buffer(bt uint32) (*[]byte, uint32) {
	switch bt {
	case 0, 1:
		s := h.current()
		if s == nil {
			return nil, notFound
		}
		return &s.bodies[bt], ok
	case 4:
		if h.answer == nil {
			return nil, notFound
		}
		return &h.answer.body, ok
	case 6:
		return &h.vmConfig, ok
	case 7:
		return &h.pluginConfig, ok
	case 2, 3, 5, 8:
		return nil, notFound
	}
	return nil, badArgument
}

func find(m [][2]string, key string) int {
	for i, kv := range m {
		if strings.EqualFold(kv[0], key) {
			return i
		}
	}
	return -1
}

func (h *Host) property(path []byte) ([]byte, uint32) {
	key := string(path)
	if s := h.current(); s != nil {
		if v, found := s.props[key]; found {
			return v, ok
		}
		pseudo := map[string]string{
			"request\x00path": ":path", "request\x00method": ":method",
			"request\x00host": ":authority", "request\x00scheme": ":scheme",
		}
		if p, found := pseudo[key]; found {
			if i := find(s.maps[0], p); i >= 0 {
				return []byte(s.maps[0][i][1]), ok
			}
			return nil, notFound
		}
	}
	if v, found := h.props[key]; found {
		return v, ok
	}
	switch key {
	case "plugin_name":
		return []byte(h.pluginName), ok
	case "plugin_vm_id":
		return []byte(h.vmID), ok
	}
	return nil, notFound
}

func (h *Host) table() hostcall.FakeHost {
	return hostcall.FakeHost{
		Log: func(level uint32, msg string) uint32 {
			if level >= uint32(len(h.logs)) {
				level = uint32(types.LogLevelError)
			}
			h.logs[level] = append(h.logs[level], msg)
			return ok
		},
		GetLogLevel:               func() (uint32, uint32) { return uint32(types.LogLevelTrace), ok },
		GetCurrentTimeNanoseconds: func() (uint64, uint32) { return uint64(time.Now().UnixNano()), ok },
		SetTickPeriodMilliseconds: func(ms uint32) uint32 { h.tick = ms; return ok },
		GetBufferBytes: func(bt, start, max uint32) ([]byte, uint32) {
			b, st := h.buffer(bt)
			if st != ok {
				return nil, st
			}
			s := min(uint64(start), uint64(len(*b)))
			e := min(s+uint64(max), uint64(len(*b)))
			return append([]byte{}, (*b)[s:e]...), ok
		},
		GetBufferStatus: func(bt uint32) (uint32, uint32, uint32) {
			b, st := h.buffer(bt)
			if st != ok {
				return 0, 0, st
			}
			return uint32(len(*b)), 0, ok
		},
		SetBufferBytes: func(bt, start, size uint32, data []byte) uint32 {
			if bt != 0 && bt != 1 {
				if bt == 4 || bt == 6 || bt == 7 {
					return badArgument
				}
				return notFound
			}
			b, st := h.buffer(bt)
			if st != ok {
				return st
			}
			s := min(uint64(start), uint64(len(*b)))
			e := min(s+uint64(size), uint64(len(*b)))
			nb := append(append(append([]byte{}, (*b)[:s]...), data...), (*b)[e:]...)
			*b = nb
			return ok
		},
		GetHeaderMapPairs: func(mt uint32) ([]byte, uint32) {
			m, st := h.headerMap(mt)
			if st != ok {
				return nil, st
			}
			return codec.SerializeMap(*m), ok
		},
		SetHeaderMapPairs: func(mt uint32, data []byte) uint32 {
			m, st := h.headerMap(mt)
			if st != ok {
				return st
			}
			pairs, err := codec.DeserializeMap(data)
			if err != nil {
				return badArgument
			}
			*m = pairs
			return ok
		},
		GetHeaderMapValue: func(mt uint32, key string) ([]byte, uint32) {
			m, st := h.headerMap(mt)
			if st != ok {
				return nil, st
			}
			if i := find(*m, key); i >= 0 {
				return []byte((*m)[i][1]), ok
			}
			return nil, notFound
		},
		AddHeaderMapValue: func(mt uint32, key, value string) uint32 {
			m, st := h.headerMap(mt)
			if st != ok {
				return st
			}
			*m = append(*m, [2]string{strings.ToLower(key), value})
			return ok
		},
		ReplaceHeaderMapValue: func(mt uint32, key, value string) uint32 {
			m, st := h.headerMap(mt)
			if st != ok {
				return st
			}
			i := find(*m, key)
			if i < 0 {
				*m = append(*m, [2]string{strings.ToLower(key), value})
				return ok
			}
			(*m)[i][1] = value
			for j := find((*m)[i+1:], key); j >= 0; j = find((*m)[i+1:], key) {
				*m = append((*m)[:i+1+j], (*m)[i+2+j:]...)
			}
			return ok
		},
		RemoveHeaderMapValue: func(mt uint32, key string) uint32 {
			m, st := h.headerMap(mt)
			if st != ok {
				return st
			}
			for i := find(*m, key); i >= 0; i = find(*m, key) {
				*m = append((*m)[:i], (*m)[i+1:]...)
			}
			return ok
		},
		GetHeaderMapSize: func(mt uint32) (uint32, uint32) {
			m, st := h.headerMap(mt)
			if st != ok {
				return 0, st
			}
			n := 0
			for _, kv := range *m {
				n += len(kv[0]) + len(kv[1])
			}
			return uint32(n), ok
		},
		GetProperty: func(path []byte) ([]byte, uint32) { return h.property(path) },
		SetProperty: func(path, value []byte) uint32 {
			if len(path) == 0 {
				return badArgument
			}
			s := h.current()
			if s == nil {
				return notFound
			}
			s.props[string(path)] = append([]byte(nil), value...)
			return ok
		},
		GetSharedData: func(key string) ([]byte, uint32, uint32) {
			v, found := h.shared[key]
			if !found {
				return nil, 0, notFound
			}
			return append([]byte(nil), v.value...), v.cas, ok
		},
		SetSharedData: func(key string, value []byte, cas uint32) uint32 {
			v, found := h.shared[key]
			if cas != 0 && (!found || cas != v.cas) {
				return casMismatch
			}
			next := v.cas + 1
			if next == 0 {
				next = 1
			}
			h.shared[key] = sharedValue{value: append([]byte(nil), value...), cas: next}
			return ok
		},
		RegisterSharedQueue: func(name string) (uint32, uint32) {
			if id, found := h.queues[name]; found {
				return id, ok
			}
			id := uint32(len(h.queues) + 1)
			h.queues[name] = id
			return id, ok
		},
		ResolveSharedQueue: func(vmID, name string) (uint32, uint32) {
			if vmID != "" && vmID != h.vmID {
				return 0, notFound
			}
			if id, found := h.queues[name]; found {
				return id, ok
			}
			return 0, notFound
		},
		EnqueueSharedQueue: func(id uint32, value []byte) uint32 {
			if id == 0 || id > uint32(len(h.queues)) {
				return notFound
			}
			h.queueItems[id] = append(h.queueItems[id], append([]byte(nil), value...))
			h.wakes = append(h.wakes, id)
			return ok
		},
		DequeueSharedQueue: func(id uint32) ([]byte, uint32) {
			if id == 0 || id > uint32(len(h.queues)) {
				return nil, notFound
			}
			q := h.queueItems[id]
			if len(q) == 0 {
				return nil, empty
			}
			h.queueItems[id] = q[1:]
			return q[0], ok
		},
		ContinueStream: func(which uint32) uint32 {
			s := h.current()
			if s == nil {
				return notFound
			}
			if which > 1 {
				return unimpl
			}
			s.resumed[which]++
			return ok
		},
		CloseStream: func(which uint32) uint32 {
			s := h.current()
			if s == nil {
				return notFound
			}
			if which > 1 {
				return unimpl
			}
			s.closed = true
			return ok
		},
		SendLocalResponse: func(status uint32, details string, body, headers []byte, grpc int32) uint32 {
			s := h.current()
			if s == nil {
				return notFound
			}
			pairs, err := codec.DeserializeMap(headers)
			if err != nil || status < 200 || status > 599 {
				return badArgument
			}
			s.local = &LocalResponse{StatusCode: status, Details: details, Headers: pairs,
				Body: append([]byte(nil), body...), GrpcStatus: grpc}
			return ok
		},
		HttpCall: func(upstream string, headers, body, trailers []byte, timeout uint32) (uint32, uint32) {
			hp, err := codec.DeserializeMap(headers)
			if err != nil {
				return 0, badArgument
			}
			tp, err := codec.DeserializeMap(trailers)
			if err != nil {
				return 0, badArgument
			}
			for _, required := range []string{":method", ":path", ":authority"} {
				if find(hp, required) < 0 {
					return 0, badArgument
				}
			}
			token := uint32(len(h.calls) + 1)
			h.calls = append(h.calls, &HttpCall{Token: token, ContextID: h.effective, Cluster: upstream,
				Headers: hp, Body: append([]byte(nil), body...), Trailers: tp, TimeoutMs: timeout})
			return token, ok
		},
		SetEffectiveContext: func(ctx uint32) uint32 {
			if _, found := h.streams[ctx]; ctx != RootContextID && !found {
				return badArgument
			}
			h.effective = ctx
			return ok
		},
		Done: func() uint32 { h.doneCalled = true; return ok },
		CallForeignFunction: func(string, []byte) ([]byte, uint32) {
			return nil, notFound
		},
		DefineMetric: func(kind uint32, name string) (uint32, uint32) {
			if kind > 2 {
				return 0, badArgument
			}
			if id, found := h.metrics[name]; found {
				if h.metricList[id-1].kind != kind {
					return 0, badArgument
				}
				return id, ok
			}
			h.metricList = append(h.metricList, &metric{kind: kind})
			id := uint32(len(h.metricList))
			h.metrics[name] = id
			return id, ok
		},
		IncrementMetric: func(id uint32, offset int64) uint32 {
			m := h.metric(id)
			switch {
			case m == nil:
				return notFound
			case m.kind == 2, m.kind == 0 && offset < 0:
				return badArgument
			}
			m.value += offset
			return ok
		},
		RecordMetric: func(id uint32, value uint64) uint32 {
			m := h.metric(id)
			if m == nil {
				return notFound
			}
			if m.kind == 2 {
				m.values = append(m.values, value)
			} else {
				m.value = int64(value)
			}
			return ok
		},
		GetMetric: func(id uint32) (uint64, uint32) {
			m := h.metric(id)
			if m == nil {
				return 0, notFound
			}
			if m.kind == 2 {
				return 0, badArgument
			}
			return uint64(m.value), ok
		},
	}
}

func (h *Host) metric(id uint32) *metric {
	if id == 0 || id > uint32(len(h.metricList)) {
		return nil
	}
	return h.metricList[id-1]
}
