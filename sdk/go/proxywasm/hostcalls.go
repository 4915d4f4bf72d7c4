// Package proxywasm is weft's Go SDK for proxy-wasm (ABI 0.2.1) filters,
// built with standard Go (>= 1.24):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o filter.wasm .
//
// A filter implements the context interfaces of package types, installs
// its VMContext with SetVMContext from an init function of package main
// (which also needs an empty func main), and calls the functions of this
// package — headers, bodies, trailers, properties, local responses, HTTP
// calls, ticks, shared data, shared queues, metrics, logging — from its
// callbacks. Every function acts on the context whose callback is running.
//
// Only the standard library is used. On other platforms than wasip1 the
// hostcalls go to a replaceable host — package proxytest provides an
// in-memory one — so filters and the SDK itself test with a plain
// `go test`.
package proxywasm

import (
	"fmt"
	"math"

	"weft.dev/sdk/go/internal/codec"
	"weft.dev/sdk/go/internal/hostcall"
	"weft.dev/sdk/go/proxywasm/types"
)

// Map and buffer selectors, stream types, metric kinds (ABI numbering).
const (
	mapRequestHeaders          uint32 = 0
	mapRequestTrailers         uint32 = 1
	mapResponseHeaders         uint32 = 2
	mapResponseTrailers        uint32 = 3
	mapHttpCallResponseHeaders uint32 = 6
	mapHttpCallResponseTrailer uint32 = 7

	bufRequestBody          uint32 = 0
	bufResponseBody         uint32 = 1
	bufHttpCallResponseBody uint32 = 4
	bufVMConfiguration      uint32 = 6
	bufPluginConfiguration  uint32 = 7

	streamRequest  uint32 = 0
	streamResponse uint32 = 1

	metricCounter   uint32 = 0
	metricGauge     uint32 = 1
	metricHistogram uint32 = 2
)

func toErr(s uint32) error { return types.StatusToError(types.Status(s)) }

// ---------------------------------------------------------------------------
// Logging.

func logAt(l types.LogLevel, msg string) { hostcall.Log(uint32(l), msg) }

func LogTrace(msg string)    { logAt(types.LogLevelTrace, msg) }
func LogDebug(msg string)    { logAt(types.LogLevelDebug, msg) }
func LogInfo(msg string)     { logAt(types.LogLevelInfo, msg) }
func LogWarn(msg string)     { logAt(types.LogLevelWarn, msg) }
func LogError(msg string)    { logAt(types.LogLevelError, msg) }
func LogCritical(msg string) { logAt(types.LogLevelCritical, msg) }

func LogTracef(format string, args ...any) { logAt(types.LogLevelTrace, fmt.Sprintf(format, args...)) }
func LogDebugf(format string, args ...any) { logAt(types.LogLevelDebug, fmt.Sprintf(format, args...)) }
func LogInfof(format string, args ...any)  { logAt(types.LogLevelInfo, fmt.Sprintf(format, args...)) }
func LogWarnf(format string, args ...any)  { logAt(types.LogLevelWarn, fmt.Sprintf(format, args...)) }
func LogErrorf(format string, args ...any) { logAt(types.LogLevelError, fmt.Sprintf(format, args...)) }
func LogCriticalf(format string, args ...any) {
	logAt(types.LogLevelCritical, fmt.Sprintf(format, args...))
}

// GetLogLevel returns the most verbose level the host currently emits.
func GetLogLevel() (types.LogLevel, error) {
	l, s := hostcall.GetLogLevel()
	return types.LogLevel(l), toErr(s)
}

// ---------------------------------------------------------------------------
// Time and ticks.

// GetCurrentTimeNanoseconds returns the host's wall clock in nanoseconds
// since the Unix epoch.
func GetCurrentTimeNanoseconds() (int64, error) {
	t, s := hostcall.GetCurrentTimeNanoseconds()
	return int64(t), toErr(s)
}

// SetTickPeriodMilliSeconds makes the host call the plugin context's OnTick
// every period (0 stops the ticks). Call it from a plugin context callback.
func SetTickPeriodMilliSeconds(period uint32) error {
	return toErr(hostcall.SetTickPeriodMilliseconds(period))
}

// ---------------------------------------------------------------------------
// Configuration.

func getBuffer(bt uint32, start, maxSize int) ([]byte, error) {
	if start < 0 || maxSize < 0 {
		return nil, types.ErrorStatusBadArgument
	}
	b, s := hostcall.GetBufferBytes(bt, clamp32(start), clamp32(maxSize))
	return b, toErr(s)
}

func clamp32(v int) uint32 {
	if v > math.MaxInt32 {
		return math.MaxInt32
	}
	return uint32(v)
}

// GetVMConfiguration returns the VM configuration (in OnVMStart).
func GetVMConfiguration() ([]byte, error) {
	return getBuffer(bufVMConfiguration, 0, math.MaxInt32)
}

// GetPluginConfiguration returns the plugin configuration (in
// OnPluginStart); weft passes the plugin's pluginConfig as JSON.
func GetPluginConfiguration() ([]byte, error) {
	return getBuffer(bufPluginConfiguration, 0, math.MaxInt32)
}

// ---------------------------------------------------------------------------
// Header maps.

func getMap(mt uint32) ([][2]string, error) {
	b, s := hostcall.GetHeaderMapPairs(mt)
	if err := toErr(s); err != nil {
		return nil, err
	}
	return codec.DeserializeMap(b)
}

func setMap(mt uint32, headers [][2]string) error {
	return toErr(hostcall.SetHeaderMapPairs(mt, codec.SerializeMap(headers)))
}

func getMapValue(mt uint32, key string) (string, error) {
	b, s := hostcall.GetHeaderMapValue(mt, key)
	if err := toErr(s); err != nil {
		return "", err
	}
	return string(b), nil
}

func addMapValue(mt uint32, key, value string) error {
	return toErr(hostcall.AddHeaderMapValue(mt, key, value))
}

func replaceMapValue(mt uint32, key, value string) error {
	return toErr(hostcall.ReplaceHeaderMapValue(mt, key, value))
}

func removeMapValue(mt uint32, key string) error {
	return toErr(hostcall.RemoveHeaderMapValue(mt, key))
}

// GetHttpRequestHeaders returns every request header, pseudo headers
// (":method", ":path", ":authority", ":scheme") first.
func GetHttpRequestHeaders() ([][2]string, error) { return getMap(mapRequestHeaders) }

// ReplaceHttpRequestHeaders replaces all request headers.
func ReplaceHttpRequestHeaders(headers [][2]string) error { return setMap(mapRequestHeaders, headers) }

// GetHttpRequestHeader returns one request header (ErrorStatusNotFound
// when absent).
func GetHttpRequestHeader(key string) (string, error) { return getMapValue(mapRequestHeaders, key) }

// AddHttpRequestHeader adds a value to a request header.
func AddHttpRequestHeader(key, value string) error { return addMapValue(mapRequestHeaders, key, value) }

// ReplaceHttpRequestHeader sets a request header, replacing its values.
func ReplaceHttpRequestHeader(key, value string) error {
	return replaceMapValue(mapRequestHeaders, key, value)
}

// RemoveHttpRequestHeader removes a request header.
func RemoveHttpRequestHeader(key string) error { return removeMapValue(mapRequestHeaders, key) }

func GetHttpRequestTrailers() ([][2]string, error) { return getMap(mapRequestTrailers) }
func ReplaceHttpRequestTrailers(trailers [][2]string) error {
	return setMap(mapRequestTrailers, trailers)
}
func GetHttpRequestTrailer(key string) (string, error) { return getMapValue(mapRequestTrailers, key) }
func AddHttpRequestTrailer(key, value string) error {
	return addMapValue(mapRequestTrailers, key, value)
}
func ReplaceHttpRequestTrailer(key, value string) error {
	return replaceMapValue(mapRequestTrailers, key, value)
}
func RemoveHttpRequestTrailer(key string) error { return removeMapValue(mapRequestTrailers, key) }

func GetHttpResponseHeaders() ([][2]string, error) { return getMap(mapResponseHeaders) }
func ReplaceHttpResponseHeaders(headers [][2]string) error {
	return setMap(mapResponseHeaders, headers)
}
func GetHttpResponseHeader(key string) (string, error) { return getMapValue(mapResponseHeaders, key) }
func AddHttpResponseHeader(key, value string) error {
	return addMapValue(mapResponseHeaders, key, value)
}
func ReplaceHttpResponseHeader(key, value string) error {
	return replaceMapValue(mapResponseHeaders, key, value)
}
func RemoveHttpResponseHeader(key string) error { return removeMapValue(mapResponseHeaders, key) }

func GetHttpResponseTrailers() ([][2]string, error) { return getMap(mapResponseTrailers) }
func ReplaceHttpResponseTrailers(trailers [][2]string) error {
	return setMap(mapResponseTrailers, trailers)
}
func GetHttpResponseTrailer(key string) (string, error) {
	return getMapValue(mapResponseTrailers, key)
}
func AddHttpResponseTrailer(key, value string) error {
	return addMapValue(mapResponseTrailers, key, value)
}
func ReplaceHttpResponseTrailer(key, value string) error {
	return replaceMapValue(mapResponseTrailers, key, value)
}
func RemoveHttpResponseTrailer(key string) error { return removeMapValue(mapResponseTrailers, key) }

// ---------------------------------------------------------------------------
// Bodies.

// GetHttpRequestBody returns up to maxSize bytes of the buffered request
// body from start.
func GetHttpRequestBody(start, maxSize int) ([]byte, error) {
	return getBuffer(bufRequestBody, start, maxSize)
}

// AppendHttpRequestBody appends data to the buffered request body.
func AppendHttpRequestBody(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufRequestBody, math.MaxInt32, 0, data))
}

// PrependHttpRequestBody inserts data before the buffered request body.
func PrependHttpRequestBody(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufRequestBody, 0, 0, data))
}

// ReplaceHttpRequestBody replaces the buffered request body.
func ReplaceHttpRequestBody(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufRequestBody, 0, math.MaxInt32, data))
}

func GetHttpResponseBody(start, maxSize int) ([]byte, error) {
	return getBuffer(bufResponseBody, start, maxSize)
}
func AppendHttpResponseBody(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufResponseBody, math.MaxInt32, 0, data))
}
func PrependHttpResponseBody(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufResponseBody, 0, 0, data))
}
func ReplaceHttpResponseBody(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufResponseBody, 0, math.MaxInt32, data))
}

// ---------------------------------------------------------------------------
// Stream control and local responses.

// ResumeHttpRequest resumes a request paused with ActionPause.
func ResumeHttpRequest() error { return toErr(hostcall.ContinueStream(streamRequest)) }

// ResumeHttpResponse resumes a response paused with ActionPause.
func ResumeHttpResponse() error { return toErr(hostcall.ContinueStream(streamResponse)) }

// CloseHttpStream ends the current HTTP stream without a response.
func CloseHttpStream() error { return toErr(hostcall.CloseStream(streamRequest)) }

// SendHttpResponse answers the current stream locally: the request does not
// go upstream. Return ActionPause from the callback that calls it.
// grpcStatus -1 means "not gRPC".
func SendHttpResponse(statusCode uint32, headers [][2]string, body []byte, grpcStatus int32) error {
	return SendHttpResponseWithDetails(statusCode, "", headers, body, grpcStatus)
}

// SendHttpResponseWithDetails is SendHttpResponse with the response code
// details (shown in weft's access log).
func SendHttpResponseWithDetails(statusCode uint32, details string, headers [][2]string, body []byte, grpcStatus int32) error {
	return toErr(hostcall.SendLocalResponse(statusCode, details, body, codec.SerializeMap(headers), grpcStatus))
}

// ---------------------------------------------------------------------------
// HTTP calls.

// DispatchHttpCall sends an HTTP request to a cluster of the proxy. headers
// must include ":method", ":path" and ":authority". When the answer comes
// (or the call fails: then with no headers and no body), callback runs in
// the calling context, where GetHttpCallResponseHeaders/Body/Trailers read
// the answer; a request paused for the call is resumed with
// ResumeHttpRequest. Returns the call's token.
func DispatchHttpCall(cluster string, headers [][2]string, body []byte, trailers [][2]string,
	timeoutMilliseconds uint32, callback func(numHeaders, bodySize, numTrailers int)) (uint32, error) {
	token, s := hostcall.HttpCall(cluster, codec.SerializeMap(headers), body, codec.SerializeMap(trailers), timeoutMilliseconds)
	if err := toErr(s); err != nil {
		return 0, err
	}
	if callback != nil {
		st.calls[token] = httpCallback{owner: st.current, fn: callback}
	}
	return token, nil
}

// GetHttpCallResponseHeaders returns the headers of the answer (in an HTTP
// call callback), ":status" included.
func GetHttpCallResponseHeaders() ([][2]string, error) { return getMap(mapHttpCallResponseHeaders) }

// GetHttpCallResponseHeader returns one header of the answer.
func GetHttpCallResponseHeader(key string) (string, error) {
	return getMapValue(mapHttpCallResponseHeaders, key)
}

// GetHttpCallResponseBody returns up to maxSize bytes of the answer's body
// from start.
func GetHttpCallResponseBody(start, maxSize int) ([]byte, error) {
	return getBuffer(bufHttpCallResponseBody, start, maxSize)
}

// GetHttpCallResponseTrailers returns the trailers of the answer.
func GetHttpCallResponseTrailers() ([][2]string, error) {
	return getMap(mapHttpCallResponseTrailer)
}

// ---------------------------------------------------------------------------
// Properties.

// GetProperty returns a property by path, e.g. []string{"request", "path"}
// or []string{"source", "address"}. Strings are raw bytes; integers 8
// bytes little-endian (see PropertyInt64); maps in the pairs format (see
// DeserializeMap).
func GetProperty(path []string) ([]byte, error) {
	b, s := hostcall.GetProperty(codec.SerializePropertyPath(path))
	if err := toErr(s); err != nil {
		return nil, err
	}
	return b, nil
}

// GetPropertyString returns a property as a string.
func GetPropertyString(path []string) (string, error) {
	b, err := GetProperty(path)
	return string(b), err
}

// GetPropertyInt64 returns an integer property.
func GetPropertyInt64(path []string) (int64, error) {
	b, err := GetProperty(path)
	if err != nil {
		return 0, err
	}
	return codec.PropertyInt64(b)
}

// GetPropertyMap returns a map property (such as request.headers).
func GetPropertyMap(path []string) ([][2]string, error) {
	b, err := GetProperty(path)
	if err != nil {
		return nil, err
	}
	return codec.DeserializeMap(b)
}

// SetProperty sets a property of the current stream; weft reads the
// weft.* properties (weft.cluster, weft.timeout_ms, …) to steer routing.
func SetProperty(path []string, value []byte) error {
	return toErr(hostcall.SetProperty(codec.SerializePropertyPath(path), value))
}

// PropertyInt64 decodes an integer property value.
func PropertyInt64(b []byte) (int64, error) { return codec.PropertyInt64(b) }

// SerializeMap encodes header pairs in the proxy-wasm map format.
func SerializeMap(pairs [][2]string) []byte { return codec.SerializeMap(pairs) }

// DeserializeMap decodes the proxy-wasm map format.
func DeserializeMap(data []byte) ([][2]string, error) { return codec.DeserializeMap(data) }

// ---------------------------------------------------------------------------
// Shared data.

// GetSharedData returns a value shared by every VM of the same vm id and
// its CAS token (ErrorStatusNotFound when the key is absent).
func GetSharedData(key string) ([]byte, uint32, error) {
	v, cas, s := hostcall.GetSharedData(key)
	if err := toErr(s); err != nil {
		return nil, 0, err
	}
	return v, cas, nil
}

// SetSharedData stores a shared value. With cas != 0 the store happens
// only if the value's token still equals cas (else ErrorStatusCasMismatch);
// with cas 0 it always happens.
func SetSharedData(key string, value []byte, cas uint32) error {
	return toErr(hostcall.SetSharedData(key, value, cas))
}

// ---------------------------------------------------------------------------
// Shared queues.

// RegisterSharedQueue creates (or takes over) a named queue; the calling
// plugin context's OnQueueReady runs when data is enqueued.
func RegisterSharedQueue(name string) (uint32, error) {
	id, s := hostcall.RegisterSharedQueue(name)
	return id, toErr(s)
}

// ResolveSharedQueue finds a queue another VM registered; vmID "" means
// this VM's id.
func ResolveSharedQueue(vmID, queueName string) (uint32, error) {
	id, s := hostcall.ResolveSharedQueue(vmID, queueName)
	return id, toErr(s)
}

// EnqueueSharedQueue appends data to a queue.
func EnqueueSharedQueue(queueID uint32, data []byte) error {
	return toErr(hostcall.EnqueueSharedQueue(queueID, data))
}

// DequeueSharedQueue takes the oldest item (ErrorStatusEmpty when none).
func DequeueSharedQueue(queueID uint32) ([]byte, error) {
	b, s := hostcall.DequeueSharedQueue(queueID)
	if err := toErr(s); err != nil {
		return nil, err
	}
	return b, nil
}

// ---------------------------------------------------------------------------
// Metrics. weft shows them on its admin /metrics as
// weft_filter_<name>{plugin="<plugin name>"}.

// MetricCounter is a monotonically increasing metric.
type MetricCounter uint32

// MetricGauge is a metric that goes up and down.
type MetricGauge uint32

// MetricHistogram records a distribution of values.
type MetricHistogram uint32

// DefineCounterMetric defines (or finds) a counter.
func DefineCounterMetric(name string) (MetricCounter, error) {
	id, s := hostcall.DefineMetric(metricCounter, name)
	return MetricCounter(id), toErr(s)
}

// Increment adds offset to the counter.
func (m MetricCounter) Increment(offset uint64) error {
	if offset > math.MaxInt64 {
		return types.ErrorStatusBadArgument
	}
	return toErr(hostcall.IncrementMetric(uint32(m), int64(offset)))
}

// Value returns the counter's current value.
func (m MetricCounter) Value() (uint64, error) {
	v, s := hostcall.GetMetric(uint32(m))
	return v, toErr(s)
}

// DefineGaugeMetric defines (or finds) a gauge.
func DefineGaugeMetric(name string) (MetricGauge, error) {
	id, s := hostcall.DefineMetric(metricGauge, name)
	return MetricGauge(id), toErr(s)
}

// Add adds offset (possibly negative) to the gauge.
func (m MetricGauge) Add(offset int64) error {
	return toErr(hostcall.IncrementMetric(uint32(m), offset))
}

// Set sets the gauge.
func (m MetricGauge) Set(value int64) error {
	return toErr(hostcall.RecordMetric(uint32(m), uint64(value)))
}

// Value returns the gauge's current value.
func (m MetricGauge) Value() (int64, error) {
	v, s := hostcall.GetMetric(uint32(m))
	return int64(v), toErr(s)
}

// DefineHistogramMetric defines (or finds) a histogram.
func DefineHistogramMetric(name string) (MetricHistogram, error) {
	id, s := hostcall.DefineMetric(metricHistogram, name)
	return MetricHistogram(id), toErr(s)
}

// Record adds one observation to the histogram.
func (m MetricHistogram) Record(value uint64) error {
	return toErr(hostcall.RecordMetric(uint32(m), value))
}

// ---------------------------------------------------------------------------
// Contexts and foreign functions.

// SetEffectiveContext makes later hostcalls act on another context (e.g.
// to resume a stream from a tick of the plugin context).
func SetEffectiveContext(contextID uint32) error {
	if err := toErr(hostcall.SetEffectiveContext(contextID)); err != nil {
		return err
	}
	st.current = contextID
	return nil
}

// PluginDone tells the host the plugin finished its shutdown (after
// OnPluginDone returned false).
func PluginDone() error { return toErr(hostcall.Done()) }

// CallForeignFunction calls a function the host offers by name.
func CallForeignFunction(name string, param []byte) ([]byte, error) {
	b, s := hostcall.CallForeignFunction(name, param)
	if err := toErr(s); err != nil {
		return nil, err
	}
	return b, nil
}
