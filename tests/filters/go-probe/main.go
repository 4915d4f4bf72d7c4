//go:build wasip1

// go-probe is a proxy-wasm (ABI 0.2.1) HTTP filter written against the ABI
// directly with standard Go's //go:wasmimport and //go:wasmexport (Go >= 1.24),
// built with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
// It exists to prove that weft's host runs standard-Go modules; it uses the
// standard library only.
//
// Behaviour:
//   - proxy_on_vm_start logs "go-probe vm started" (info) and defines the
//     counter metric go_probe_requests.
//   - proxy_on_configure parses the plugin configuration as JSON
//     ({"header_value":"..."}); invalid JSON is logged and rejected (returns 0).
//     An empty configuration is accepted with the default header value.
//   - request headers: if x-go-deny is present, answer locally with 403
//     (details "go-probe-denied", body "denied by go-probe\n", header
//     x-denied-by: go-probe) and pause; otherwise add x-go-probe:
//     <header_value>, set x-go-path: <property request.path>, count the
//     request in go_probe_requests and continue.
//   - response headers: add x-go-probe-response: ok and continue.
package main

import (
	"encoding/binary"
	"encoding/json"
	"unsafe"
)

// c-shared modules need a main package with a main function; it is never
// run. The host calls the exported _initialize instead, which runs the Go
// runtime's initialisation and the package init functions, then returns.
func main() {}

// ---------------------------------------------------------------------------
// ABI 0.2.1 constants.

const (
	logTrace    uint32 = 0
	logDebug    uint32 = 1
	logInfo     uint32 = 2
	logWarn     uint32 = 3
	logError    uint32 = 4
	logCritical uint32 = 5
)

const (
	statusOK       uint32 = 0
	statusNotFound uint32 = 1
	// Not an ABI status: used locally when the host hands back memory that
	// this module did not allocate, or a size larger than the allocation.
	statusBadReturn uint32 = 0xffff_ffff
)

const (
	mapHTTPRequestHeaders  uint32 = 0
	mapHTTPResponseHeaders uint32 = 2
)

const bufferPluginConfiguration uint32 = 7

const metricCounter uint32 = 0

const (
	actionContinue int32 = 0
	actionPause    int32 = 1
)

// ---------------------------------------------------------------------------
// Host functions (module "env"). Every parameter and result is an i32 except
// proxy_increment_metric's offset (i64). Pointers are plain wasm32 addresses,
// passed as unsafe.Pointer (i32) or as uint32.

//go:wasmimport env proxy_log
func proxyLog(level uint32, messageData unsafe.Pointer, messageSize uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(bufferType uint32, start uint32, maxSize uint32,
	returnBufferData unsafe.Pointer, returnBufferSize unsafe.Pointer) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(mapType uint32, keyData unsafe.Pointer, keySize uint32,
	returnValueData unsafe.Pointer, returnValueSize unsafe.Pointer) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(mapType uint32, keyData unsafe.Pointer, keySize uint32,
	valueData unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
func proxyReplaceHeaderMapValue(mapType uint32, keyData unsafe.Pointer, keySize uint32,
	valueData unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_get_property
func proxyGetProperty(pathData unsafe.Pointer, pathSize uint32,
	returnValueData unsafe.Pointer, returnValueSize unsafe.Pointer) uint32

//go:wasmimport env proxy_send_local_response
func proxySendLocalResponse(statusCode uint32,
	statusCodeDetailsData unsafe.Pointer, statusCodeDetailsSize uint32,
	bodyData unsafe.Pointer, bodySize uint32,
	headersData unsafe.Pointer, headersSize uint32,
	grpcStatus int32) uint32

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(metricType uint32, nameData unsafe.Pointer, nameSize uint32,
	returnMetricID unsafe.Pointer) uint32

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(metricID uint32, offset int64) uint32

// ---------------------------------------------------------------------------
// Memory handed to the host.
//
// The host writes values it returns (header values, buffers, properties)
// into memory it obtains from proxy_on_memory_allocate, during the host call
// that returns them. Go's heap does not move objects, but the GC frees any
// object nothing refers to, so every allocation is kept in `allocations`
// until the host call that caused it has returned and its result has been
// taken (see hostReturn). Memory the host allocates but does not hand back
// is released at the same point.

var (
	allocations = map[uint32][]byte{}
	// Addresses allocated since the current data-returning host call began.
	callAllocations []uint32
)

// Return slots for data-returning host calls. Package-level so they live in
// the data segment: their addresses are fixed even if the goroutine stack is
// copied while the host calls back into proxy_on_memory_allocate.
var (
	retData uint32
	retSize uint32
)

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	n := size
	if n == 0 {
		// make([]byte, 0) may share one address among all empty slices;
		// give every allocation its own address.
		n = 1
	}
	buf := make([]byte, n)
	addr := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	allocations[addr] = buf
	callAllocations = append(callAllocations, addr)
	return addr
}

// hostReturn runs a host call whose result comes back through the
// (return_data, return_size) slots and gives back the data (nil unless
// the status is OK; empty, not nil, for an OK with no data) and the status.
func hostReturn(call func(data, size unsafe.Pointer) uint32) ([]byte, uint32) {
	retData, retSize = 0, 0
	callAllocations = callAllocations[:0]
	status := call(unsafe.Pointer(&retData), unsafe.Pointer(&retSize))

	var out []byte
	if status == statusOK {
		if retData == 0 {
			out = []byte{}
		} else if buf, ok := allocations[retData]; ok && uint64(retSize) <= uint64(len(buf)) {
			out = buf[:retSize:retSize]
		} else {
			status = statusBadReturn
		}
	}
	// Nothing the host allocated during this call is needed any more except
	// through `out`, which keeps its own reference.
	for _, a := range callAllocations {
		delete(allocations, a)
	}
	callAllocations = callAllocations[:0]
	if status == statusBadReturn {
		logMsg(logError, "go-probe: host returned memory that was not allocated by proxy_on_memory_allocate")
	}
	return out, status
}

// ---------------------------------------------------------------------------
// Host call helpers.

func strPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func logMsg(level uint32, msg string) {
	proxyLog(level, strPtr(msg), uint32(len(msg)))
}

func getBuffer(bufferType, start, maxSize uint32) ([]byte, uint32) {
	return hostReturn(func(data, size unsafe.Pointer) uint32 {
		return proxyGetBufferBytes(bufferType, start, maxSize, data, size)
	})
}

// getHeader returns a header's value and whether the header is present.
func getHeader(mapType uint32, key string) (string, bool) {
	v, st := hostReturn(func(data, size unsafe.Pointer) uint32 {
		return proxyGetHeaderMapValue(mapType, strPtr(key), uint32(len(key)), data, size)
	})
	if st != statusOK {
		return "", false
	}
	return string(v), true
}

func addHeader(mapType uint32, key, value string) uint32 {
	return proxyAddHeaderMapValue(mapType, strPtr(key), uint32(len(key)), strPtr(value), uint32(len(value)))
}

func replaceHeader(mapType uint32, key, value string) uint32 {
	return proxyReplaceHeaderMapValue(mapType, strPtr(key), uint32(len(key)), strPtr(value), uint32(len(value)))
}

// getProperty looks up a property by its path segments, which the ABI
// takes joined by NUL bytes ("request\x00path").
func getProperty(path ...string) ([]byte, uint32) {
	var p []byte
	for i, seg := range path {
		if i > 0 {
			p = append(p, 0)
		}
		p = append(p, seg...)
	}
	return hostReturn(func(data, size unsafe.Pointer) uint32 {
		return proxyGetProperty(bytesPtr(p), uint32(len(p)), data, size)
	})
}

// serializePairs encodes header pairs in the proxy-wasm map format:
// u32 count, then (u32 key length, u32 value length) per pair, then each
// key and value followed by a NUL byte; integers little-endian.
func serializePairs(pairs [][2]string) []byte {
	size := 4
	for _, kv := range pairs {
		size += 8 + len(kv[0]) + 1 + len(kv[1]) + 1
	}
	b := make([]byte, 0, size)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pairs)))
	for _, kv := range pairs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[0])))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv[1])))
	}
	for _, kv := range pairs {
		b = append(b, kv[0]...)
		b = append(b, 0)
		b = append(b, kv[1]...)
		b = append(b, 0)
	}
	return b
}

func sendLocalResponse(status uint32, details, body string, headers [][2]string, grpcStatus int32) uint32 {
	h := serializePairs(headers)
	return proxySendLocalResponse(status,
		strPtr(details), uint32(len(details)),
		strPtr(body), uint32(len(body)),
		bytesPtr(h), uint32(len(h)),
		grpcStatus)
}

func defineMetric(metricType uint32, name string) (uint32, uint32) {
	var id uint32
	st := proxyDefineMetric(metricType, strPtr(name), uint32(len(name)), unsafe.Pointer(&id))
	return id, st
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var buf [10]byte
	i := len(buf)
	for v > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return string(buf[i:])
}

// ---------------------------------------------------------------------------
// Filter state.

const defaultHeaderValue = "go-probe"

type pluginConfig struct {
	HeaderValue *string `json:"header_value"`
}

var (
	// context id -> parent (root) context id; 0 for root contexts.
	contexts = map[uint32]uint32{}
	// root context id -> configured x-go-probe value.
	headerValues = map[uint32]string{}

	requestsMetric        uint32
	requestsMetricDefined bool
)

func headerValueFor(ctx uint32) string {
	root := ctx
	if parent := contexts[ctx]; parent != 0 {
		root = parent
	}
	if v, ok := headerValues[root]; ok {
		return v
	}
	return defaultHeaderValue
}

// ---------------------------------------------------------------------------
// Callbacks (exports). i32 parameters and results are uint32/int32 in Go.

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion021() {}

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(ctx, parent uint32) {
	contexts[ctx] = parent
}

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(ctx uint32, vmConfigSize int32) int32 {
	logMsg(logInfo, "go-probe vm started")
	if !requestsMetricDefined {
		id, st := defineMetric(metricCounter, "go_probe_requests")
		if st == statusOK {
			requestsMetric, requestsMetricDefined = id, true
		} else {
			logMsg(logError, "go-probe: proxy_define_metric(go_probe_requests) failed with status "+itoa(st))
		}
	}
	return 1
}

//go:wasmexport proxy_on_configure
func proxyOnConfigure(ctx uint32, configSize int32) int32 {
	value := defaultHeaderValue
	if configSize > 0 {
		data, st := getBuffer(bufferPluginConfiguration, 0, uint32(configSize))
		if st != statusOK {
			logMsg(logError, "go-probe: cannot read the plugin configuration: proxy_get_buffer_bytes status "+itoa(st))
			return 0
		}
		var cfg pluginConfig
		if err := json.Unmarshal(data, &cfg); err != nil {
			logMsg(logError, "go-probe: invalid plugin configuration (want JSON like {\"header_value\":\"...\"}): "+err.Error())
			return 0
		}
		if cfg.HeaderValue != nil {
			value = *cfg.HeaderValue
		}
	}
	headerValues[ctx] = value
	return 1
}

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(ctx uint32, numHeaders int32, endOfStream int32) int32 {
	if _, deny := getHeader(mapHTTPRequestHeaders, "x-go-deny"); deny {
		st := sendLocalResponse(403, "go-probe-denied", "denied by go-probe\n",
			[][2]string{{"x-denied-by", "go-probe"}}, -1)
		if st != statusOK {
			logMsg(logError, "go-probe: proxy_send_local_response failed with status "+itoa(st))
		}
		return actionPause
	}

	if st := addHeader(mapHTTPRequestHeaders, "x-go-probe", headerValueFor(ctx)); st != statusOK {
		logMsg(logWarn, "go-probe: adding x-go-probe failed with status "+itoa(st))
	}
	if path, st := getProperty("request", "path"); st == statusOK {
		// replace, not add: a client-sent x-go-path must not survive.
		if st := replaceHeader(mapHTTPRequestHeaders, "x-go-path", string(path)); st != statusOK {
			logMsg(logWarn, "go-probe: setting x-go-path failed with status "+itoa(st))
		}
	} else {
		logMsg(logWarn, "go-probe: property request.path unavailable: status "+itoa(st))
	}
	if requestsMetricDefined {
		if st := proxyIncrementMetric(requestsMetric, 1); st != statusOK {
			logMsg(logWarn, "go-probe: proxy_increment_metric failed with status "+itoa(st))
		}
	}
	return actionContinue
}

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(ctx uint32, numHeaders int32, endOfStream int32) int32 {
	if st := addHeader(mapHTTPResponseHeaders, "x-go-probe-response", "ok"); st != statusOK {
		logMsg(logWarn, "go-probe: adding x-go-probe-response failed with status "+itoa(st))
	}
	return actionContinue
}

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(ctx uint32, bodySize int32, endOfStream int32) int32 {
	return actionContinue
}

//go:wasmexport proxy_on_response_body
func proxyOnResponseBody(ctx uint32, bodySize int32, endOfStream int32) int32 {
	return actionContinue
}

//go:wasmexport proxy_on_request_trailers
func proxyOnRequestTrailers(ctx uint32, numTrailers int32) int32 {
	return actionContinue
}

//go:wasmexport proxy_on_response_trailers
func proxyOnResponseTrailers(ctx uint32, numTrailers int32) int32 {
	return actionContinue
}

//go:wasmexport proxy_on_log
func proxyOnLog(ctx uint32) {}

//go:wasmexport proxy_on_done
func proxyOnDone(ctx uint32) int32 {
	return 1
}

//go:wasmexport proxy_on_delete
func proxyOnDelete(ctx uint32) {
	delete(contexts, ctx)
	delete(headerValues, ctx)
}

//go:wasmexport proxy_on_tick
func proxyOnTick(ctx uint32) {}

//go:wasmexport proxy_on_http_call_response
func proxyOnHTTPCallResponse(ctx, token uint32, numHeaders, bodySize, numTrailers int32) {}

//go:wasmexport proxy_on_queue_ready
func proxyOnQueueReady(ctx, queueID uint32) {}

// No result: the Rust and C++ SDKs and Envoy declare this callback void.
//
//go:wasmexport proxy_on_foreign_function
func proxyOnForeignFunction(ctx, functionID uint32, dataSize int32) {}
