// Package types holds the vocabulary of a proxy-wasm filter written with
// weft's Go SDK: the context interfaces a filter implements (VMContext,
// PluginContext, HttpContext), the actions its stream callbacks return,
// log levels, and the errors hostcalls report.
//
// A filter embeds the Default* types and overrides only the callbacks it
// needs.
package types

// Action is what a stream callback asks the host to do next.
type Action uint32

const (
	// ActionContinue lets the stream go on to the next filter.
	ActionContinue Action = 0
	// ActionPause stops the stream here until the filter resumes it
	// (ResumeHttpRequest / ResumeHttpResponse), answers it locally
	// (SendHttpResponse), or, for a body chunk with more to come, until the
	// next chunk arrives (the host buffers the body meanwhile).
	ActionPause Action = 1
)

// String names the action.
func (a Action) String() string {
	switch a {
	case ActionContinue:
		return "Continue"
	case ActionPause:
		return "Pause"
	}
	return "Action(" + utoa(uint64(a)) + ")"
}

// OnVMStartStatus is OnVMStart's verdict: false refuses to start the VM.
type OnVMStartStatus bool

// OnPluginStartStatus is OnPluginStart's verdict: false refuses the
// plugin configuration.
type OnPluginStartStatus bool

const (
	VMStartStatusOK           OnVMStartStatus     = true
	VMStartStatusFailed       OnVMStartStatus     = false
	OnPluginStartStatusOK     OnPluginStartStatus = true
	OnPluginStartStatusFailed OnPluginStartStatus = false
)

// LogLevel is a proxy-wasm log level (trace = 0 … critical = 5).
type LogLevel uint32

const (
	LogLevelTrace    LogLevel = 0
	LogLevelDebug    LogLevel = 1
	LogLevelInfo     LogLevel = 2
	LogLevelWarn     LogLevel = 3
	LogLevelError    LogLevel = 4
	LogLevelCritical LogLevel = 5
)

// String names the level.
func (l LogLevel) String() string {
	switch l {
	case LogLevelTrace:
		return "trace"
	case LogLevelDebug:
		return "debug"
	case LogLevelInfo:
		return "info"
	case LogLevelWarn:
		return "warn"
	case LogLevelError:
		return "error"
	case LogLevelCritical:
		return "critical"
	}
	return "LogLevel(" + utoa(uint64(l)) + ")"
}

// VMContext is the filter's per-VM object, set once with
// proxywasm.SetVMContext from the main package's init function.
type VMContext interface {
	// OnVMStart is called once when the VM starts, with the size of the
	// VM configuration (read it with proxywasm.GetVMConfiguration).
	OnVMStart(vmConfigurationSize int) OnVMStartStatus
	// NewPluginContext makes the plugin (root) context with this id.
	NewPluginContext(contextID uint32) PluginContext
}

// PluginContext is one configured plugin (a proxy-wasm root context). It
// receives the configuration, ticks, queue wake-ups, and makes an
// HttpContext for every HTTP stream.
type PluginContext interface {
	// OnPluginStart is called with the size of the plugin configuration
	// (read it with proxywasm.GetPluginConfiguration); false refuses it.
	OnPluginStart(pluginConfigurationSize int) OnPluginStartStatus
	// OnPluginDone is called when the host shuts the plugin down; true
	// means done now, false that the plugin will call proxywasm.PluginDone.
	OnPluginDone() bool
	// OnQueueReady is called when a queue this plugin registered has data.
	OnQueueReady(queueID uint32)
	// OnTick is called every period set with proxywasm.SetTickPeriodMilliSeconds.
	OnTick()
	// NewHttpContext makes the context of one HTTP stream. It is called
	// when the host creates a stream context; nil means the plugin has no
	// HTTP callbacks.
	NewHttpContext(contextID uint32) HttpContext
	// NewTcpContext makes the context of one TCP connection. It is called
	// when the host reports a new connection (proxy_on_new_connection) on
	// a stream context; nil means the plugin has no TCP callbacks.
	NewTcpContext(contextID uint32) TcpContext
}

// HttpContext is one HTTP stream (request and response) through the filter.
type HttpContext interface {
	// OnHttpRequestHeaders: the request head (numHeaders headers, including
	// pseudo headers); endOfStream when the request has no body.
	OnHttpRequestHeaders(numHeaders int, endOfStream bool) Action
	// OnHttpRequestBody: a request body chunk; bodySize is the size of the
	// body buffered so far (all of it if earlier chunks were paused).
	OnHttpRequestBody(bodySize int, endOfStream bool) Action
	// OnHttpRequestTrailers: the request trailers.
	OnHttpRequestTrailers(numTrailers int) Action
	// OnHttpResponseHeaders: the response head.
	OnHttpResponseHeaders(numHeaders int, endOfStream bool) Action
	// OnHttpResponseBody: a response body chunk, as for the request.
	OnHttpResponseBody(bodySize int, endOfStream bool) Action
	// OnHttpResponseTrailers: the response trailers.
	OnHttpResponseTrailers(numTrailers int) Action
	// OnHttpStreamDone: the stream is over (proxy_on_log); properties of
	// the finished stream can still be read here.
	OnHttpStreamDone()
}

// PeerType says which side closed a TCP connection.
type PeerType uint32

const (
	PeerTypeUnknown PeerType = 0
	PeerTypeLocal   PeerType = 1
	PeerTypeRemote  PeerType = 2
)

// TcpContext is one TCP connection through a network filter.
type TcpContext interface {
	// OnNewConnection: a downstream connection was accepted.
	OnNewConnection() Action
	// OnDownstreamData: data from the client (dataSize bytes buffered).
	OnDownstreamData(dataSize int, endOfStream bool) Action
	// OnDownstreamClose: the client side closed.
	OnDownstreamClose(peerType PeerType)
	// OnUpstreamData: data from the upstream (dataSize bytes buffered).
	OnUpstreamData(dataSize int, endOfStream bool) Action
	// OnUpstreamClose: the upstream side closed.
	OnUpstreamClose(peerType PeerType)
	// OnStreamDone: the connection is over (proxy_on_log).
	OnStreamDone()
}

// DefaultVMContext starts and makes DefaultPluginContexts; embed it and
// override what you need.
type DefaultVMContext struct{}

func (*DefaultVMContext) OnVMStart(int) OnVMStartStatus { return VMStartStatusOK }
func (*DefaultVMContext) NewPluginContext(uint32) PluginContext {
	return &DefaultPluginContext{}
}

// DefaultPluginContext accepts any configuration, makes
// DefaultHttpContexts and no TCP contexts; embed it and override what you
// need.
type DefaultPluginContext struct{}

func (*DefaultPluginContext) OnPluginStart(int) OnPluginStartStatus { return OnPluginStartStatusOK }
func (*DefaultPluginContext) OnPluginDone() bool                    { return true }
func (*DefaultPluginContext) OnQueueReady(uint32)                   {}
func (*DefaultPluginContext) OnTick()                               {}
func (*DefaultPluginContext) NewHttpContext(uint32) HttpContext     { return &DefaultHttpContext{} }
func (*DefaultPluginContext) NewTcpContext(uint32) TcpContext       { return nil }

// DefaultHttpContext continues every phase; embed it and override what
// you need.
type DefaultHttpContext struct{}

func (*DefaultHttpContext) OnHttpRequestHeaders(int, bool) Action  { return ActionContinue }
func (*DefaultHttpContext) OnHttpRequestBody(int, bool) Action     { return ActionContinue }
func (*DefaultHttpContext) OnHttpRequestTrailers(int) Action       { return ActionContinue }
func (*DefaultHttpContext) OnHttpResponseHeaders(int, bool) Action { return ActionContinue }
func (*DefaultHttpContext) OnHttpResponseBody(int, bool) Action    { return ActionContinue }
func (*DefaultHttpContext) OnHttpResponseTrailers(int) Action      { return ActionContinue }
func (*DefaultHttpContext) OnHttpStreamDone()                      {}

// DefaultTcpContext continues every event; embed it and override what
// you need.
type DefaultTcpContext struct{}

func (*DefaultTcpContext) OnNewConnection() Action           { return ActionContinue }
func (*DefaultTcpContext) OnDownstreamData(int, bool) Action { return ActionContinue }
func (*DefaultTcpContext) OnDownstreamClose(PeerType)        {}
func (*DefaultTcpContext) OnUpstreamData(int, bool) Action   { return ActionContinue }
func (*DefaultTcpContext) OnUpstreamClose(PeerType)          {}
func (*DefaultTcpContext) OnStreamDone()                     {}

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
