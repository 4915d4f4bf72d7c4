package proxywasm

import (
	"weft.dev/sdk/go/internal/hostcall"
	"weft.dev/sdk/go/proxywasm/types"
)

// httpCallback is a pending DispatchHttpCall: the context that made it and
// the function to run with the answer.
type httpCallback struct {
	owner uint32
	fn    func(numHeaders, bodySize, numTrailers int)
}

// state is everything the SDK keeps between callbacks. A proxy-wasm VM is
// single-threaded, so it is never accessed concurrently.
type state struct {
	vm      types.VMContext
	plugins map[uint32]types.PluginContext
	https   map[uint32]types.HttpContext
	tcps    map[uint32]types.TcpContext
	// HTTP context id → the plugin (root) context it belongs to.
	rootOf map[uint32]uint32
	// HTTP call token → callback.
	calls map[uint32]httpCallback
	// gRPC call and stream token → handlers.
	grpcCalls   map[uint32]grpcCall
	grpcStreams map[uint32]grpcStream
	// The context whose callback is running (the host's effective context).
	current uint32
}

func newState() *state {
	return &state{
		plugins: map[uint32]types.PluginContext{},
		https:   map[uint32]types.HttpContext{},
		tcps:    map[uint32]types.TcpContext{},
		rootOf:  map[uint32]uint32{},
		calls:   map[uint32]httpCallback{},

		grpcCalls:   map[uint32]grpcCall{},
		grpcStreams: map[uint32]grpcStream{},
	}
}

var st = newState()

// SetVMContext installs the filter's VMContext. Call it exactly once, from
// an init function of the main package (the host runs init functions
// through _initialize before any proxy-wasm callback).
func SetVMContext(vm types.VMContext) {
	st.vm = vm
}

func boolToI32(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

func (s *state) enter(ctx uint32) {
	hostcall.CallbackStart()
	s.current = ctx
}

func (s *state) onContextCreate(ctx, parent uint32) {
	s.enter(ctx)
	if parent == 0 {
		if s.vm == nil {
			msg := "proxywasm: no VMContext: call proxywasm.SetVMContext from an init function of package main"
			hostcall.Log(uint32(types.LogLevelCritical), msg)
			panic(msg)
		}
		s.plugins[ctx] = s.vm.NewPluginContext(ctx)
		return
	}
	root, ok := s.plugins[parent]
	if !ok || root == nil {
		msg := "proxywasm: context " + utoa(uint64(ctx)) + " created under unknown plugin context " + utoa(uint64(parent))
		hostcall.Log(uint32(types.LogLevelCritical), msg)
		panic(msg)
	}
	if h := root.NewHttpContext(ctx); h != nil {
		s.https[ctx] = h
	}
	s.rootOf[ctx] = parent
}

func (s *state) onVMStart(ctx uint32, size int32) int32 {
	s.enter(ctx)
	if s.vm == nil {
		return 0
	}
	return boolToI32(bool(s.vm.OnVMStart(int(size))))
}

func (s *state) onConfigure(ctx uint32, size int32) int32 {
	s.enter(ctx)
	p, ok := s.plugins[ctx]
	if !ok || p == nil {
		return 0
	}
	return boolToI32(bool(p.OnPluginStart(int(size))))
}

func action(a types.Action) int32 { return int32(a) }

func (s *state) http(ctx uint32) types.HttpContext {
	s.enter(ctx)
	return s.https[ctx]
}

func (s *state) onRequestHeaders(ctx uint32, n, eos int32) int32 {
	if h := s.http(ctx); h != nil {
		return action(h.OnHttpRequestHeaders(int(n), eos != 0))
	}
	return 0
}

func (s *state) onRequestBody(ctx uint32, size, eos int32) int32 {
	if h := s.http(ctx); h != nil {
		return action(h.OnHttpRequestBody(int(size), eos != 0))
	}
	return 0
}

func (s *state) onRequestTrailers(ctx uint32, n int32) int32 {
	if h := s.http(ctx); h != nil {
		return action(h.OnHttpRequestTrailers(int(n)))
	}
	return 0
}

func (s *state) onResponseHeaders(ctx uint32, n, eos int32) int32 {
	if h := s.http(ctx); h != nil {
		return action(h.OnHttpResponseHeaders(int(n), eos != 0))
	}
	return 0
}

func (s *state) onResponseBody(ctx uint32, size, eos int32) int32 {
	if h := s.http(ctx); h != nil {
		return action(h.OnHttpResponseBody(int(size), eos != 0))
	}
	return 0
}

func (s *state) onResponseTrailers(ctx uint32, n int32) int32 {
	if h := s.http(ctx); h != nil {
		return action(h.OnHttpResponseTrailers(int(n)))
	}
	return 0
}

func (s *state) onDone(ctx uint32) int32 {
	s.enter(ctx)
	if p, ok := s.plugins[ctx]; ok && p != nil {
		return boolToI32(p.OnPluginDone())
	}
	return 1
}

func (s *state) onLog(ctx uint32) {
	if t, ok := s.tcps[ctx]; ok && t != nil {
		t.OnStreamDone()
		return
	}
	if h := s.http(ctx); h != nil {
		h.OnHttpStreamDone()
	}
}

func (s *state) onDelete(ctx uint32) {
	s.enter(ctx)
	delete(s.https, ctx)
	delete(s.tcps, ctx)
	delete(s.rootOf, ctx)
	delete(s.plugins, ctx)
	for token, cb := range s.calls {
		if cb.owner == ctx {
			delete(s.calls, token)
		}
	}
	for token, c := range s.grpcCalls {
		if c.owner == ctx {
			delete(s.grpcCalls, token)
		}
	}
	for token, g := range s.grpcStreams {
		if g.owner == ctx {
			delete(s.grpcStreams, token)
		}
	}
}

// ---------------------------------------------------------------------------
// TCP streams. The TCP context is made at proxy_on_new_connection, the
// first callback of a connection; an HTTP context made for the same id at
// proxy_on_context_create is dropped then.

func (s *state) onNewConnection(ctx uint32) int32 {
	s.enter(ctx)
	root, ok := s.plugins[s.rootOf[ctx]]
	if !ok || root == nil {
		return 0
	}
	delete(s.https, ctx)
	t := root.NewTcpContext(ctx)
	if t == nil {
		return 0
	}
	s.tcps[ctx] = t
	return action(t.OnNewConnection())
}

func (s *state) tcp(ctx uint32) types.TcpContext {
	s.enter(ctx)
	return s.tcps[ctx]
}

func (s *state) onDownstreamData(ctx uint32, size, eos int32) int32 {
	if t := s.tcp(ctx); t != nil {
		return action(t.OnDownstreamData(int(size), eos != 0))
	}
	return 0
}

func (s *state) onDownstreamClose(ctx, peer uint32) {
	if t := s.tcp(ctx); t != nil {
		t.OnDownstreamClose(types.PeerType(peer))
	}
}

func (s *state) onUpstreamData(ctx uint32, size, eos int32) int32 {
	if t := s.tcp(ctx); t != nil {
		return action(t.OnUpstreamData(int(size), eos != 0))
	}
	return 0
}

func (s *state) onUpstreamClose(ctx, peer uint32) {
	if t := s.tcp(ctx); t != nil {
		t.OnUpstreamClose(types.PeerType(peer))
	}
}

// ---------------------------------------------------------------------------
// gRPC.

// grpcCall is a pending DispatchGrpcCall.
type grpcCall struct {
	owner uint32
	fn    func(statusCode uint32, responseSize int)
}

// grpcStream is an open OpenGrpcStream.
type grpcStream struct {
	owner    uint32
	handlers GrpcStreamHandlers
}

// switchTo makes owner the current context when a host reports an answer
// with another context as the effective one.
func (s *state) switchTo(ctx, owner uint32) {
	if owner != ctx {
		hostcall.SetEffectiveContext(owner)
		s.current = owner
	}
}

func (s *state) onGrpcReceiveInitialMetadata(ctx, token, numHeaders uint32) {
	s.enter(ctx)
	if g, ok := s.grpcStreams[token]; ok && g.handlers.OnInitialMetadata != nil {
		s.switchTo(ctx, g.owner)
		g.handlers.OnInitialMetadata(int(numHeaders))
	}
}

func (s *state) onGrpcReceiveTrailingMetadata(ctx, token, numTrailers uint32) {
	s.enter(ctx)
	if g, ok := s.grpcStreams[token]; ok && g.handlers.OnTrailingMetadata != nil {
		s.switchTo(ctx, g.owner)
		g.handlers.OnTrailingMetadata(int(numTrailers))
	}
}

func (s *state) onGrpcReceive(ctx, token uint32, size int32) {
	s.enter(ctx)
	if c, ok := s.grpcCalls[token]; ok {
		delete(s.grpcCalls, token)
		s.switchTo(ctx, c.owner)
		c.fn(0, int(size))
		return
	}
	if g, ok := s.grpcStreams[token]; ok && g.handlers.OnMessage != nil {
		s.switchTo(ctx, g.owner)
		g.handlers.OnMessage(int(size))
	}
}

func (s *state) onGrpcClose(ctx, token, statusCode uint32) {
	s.enter(ctx)
	if c, ok := s.grpcCalls[token]; ok {
		delete(s.grpcCalls, token)
		s.switchTo(ctx, c.owner)
		c.fn(statusCode, 0)
		return
	}
	if g, ok := s.grpcStreams[token]; ok {
		delete(s.grpcStreams, token)
		if g.handlers.OnClose != nil {
			s.switchTo(ctx, g.owner)
			g.handlers.OnClose(statusCode)
		}
	}
}

func (s *state) onTick(ctx uint32) {
	s.enter(ctx)
	if p, ok := s.plugins[ctx]; ok && p != nil {
		p.OnTick()
	}
}

func (s *state) onQueueReady(ctx, queueID uint32) {
	s.enter(ctx)
	if p, ok := s.plugins[ctx]; ok && p != nil {
		p.OnQueueReady(queueID)
	}
}

func (s *state) onHttpCallResponse(ctx, token uint32, numHeaders, bodySize, numTrailers int32) {
	s.enter(ctx)
	cb, ok := s.calls[token]
	if !ok {
		return
	}
	delete(s.calls, token)
	// The host names the owner as the effective context; make sure.
	s.switchTo(ctx, cb.owner)
	cb.fn(int(numHeaders), int(bodySize), int(numTrailers))
}

func utoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for v > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return string(buf[i:])
}
