//go:build wasip1

package hostcall

import "unsafe"

// ---------------------------------------------------------------------------
// Imports (module "env"). Every parameter and result is an i32 except the
// metric values (i64). Pointers are wasm32 addresses passed as
// unsafe.Pointer.

//go:wasmimport env proxy_log
func proxyLog(level uint32, msg unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_log_level
func proxyGetLogLevel(ret unsafe.Pointer) uint32

//go:wasmimport env proxy_get_current_time_nanoseconds
func proxyGetCurrentTimeNanoseconds(ret unsafe.Pointer) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
func proxySetTickPeriodMilliseconds(period uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxyGetBufferBytes(bt, start, max uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_get_buffer_status
func proxyGetBufferStatus(bt uint32, retLen, retFlags unsafe.Pointer) uint32

//go:wasmimport env proxy_set_buffer_bytes
func proxySetBufferBytes(bt, start, size uint32, data unsafe.Pointer, dataSize uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
func proxyGetHeaderMapPairs(mt uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_set_header_map_pairs
func proxySetHeaderMapPairs(mt uint32, data unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_header_map_value
func proxyGetHeaderMapValue(mt uint32, key unsafe.Pointer, keySize uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_add_header_map_value
func proxyAddHeaderMapValue(mt uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
func proxyReplaceHeaderMapValue(mt uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
func proxyRemoveHeaderMapValue(mt uint32, key unsafe.Pointer, keySize uint32) uint32

//go:wasmimport env proxy_get_header_map_size
func proxyGetHeaderMapSize(mt uint32, ret unsafe.Pointer) uint32

//go:wasmimport env proxy_get_property
func proxyGetProperty(path unsafe.Pointer, pathSize uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_set_property
func proxySetProperty(path unsafe.Pointer, pathSize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_get_shared_data
func proxyGetSharedData(key unsafe.Pointer, keySize uint32, retData, retSize, retCas unsafe.Pointer) uint32

//go:wasmimport env proxy_set_shared_data
func proxySetSharedData(key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32, cas uint32) uint32

//go:wasmimport env proxy_register_shared_queue
func proxyRegisterSharedQueue(name unsafe.Pointer, nameSize uint32, ret unsafe.Pointer) uint32

//go:wasmimport env proxy_resolve_shared_queue
func proxyResolveSharedQueue(vmID unsafe.Pointer, vmIDSize uint32, name unsafe.Pointer, nameSize uint32, ret unsafe.Pointer) uint32

//go:wasmimport env proxy_dequeue_shared_queue
func proxyDequeueSharedQueue(id uint32, retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_enqueue_shared_queue
func proxyEnqueueSharedQueue(id uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_continue_stream
func proxyContinueStream(streamType uint32) uint32

//go:wasmimport env proxy_close_stream
func proxyCloseStream(streamType uint32) uint32

//go:wasmimport env proxy_send_local_response
func proxySendLocalResponse(status uint32, details unsafe.Pointer, detailsSize uint32,
	body unsafe.Pointer, bodySize uint32, headers unsafe.Pointer, headersSize uint32, grpcStatus int32) uint32

//go:wasmimport env proxy_http_call
func proxyHttpCall(upstream unsafe.Pointer, upstreamSize uint32, headers unsafe.Pointer, headersSize uint32,
	body unsafe.Pointer, bodySize uint32, trailers unsafe.Pointer, trailersSize uint32,
	timeout uint32, retToken unsafe.Pointer) uint32

//go:wasmimport env proxy_set_effective_context
func proxySetEffectiveContext(ctx uint32) uint32

//go:wasmimport env proxy_done
func proxyDone() uint32

//go:wasmimport env proxy_call_foreign_function
func proxyCallForeignFunction(name unsafe.Pointer, nameSize uint32, args unsafe.Pointer, argsSize uint32,
	retData, retSize unsafe.Pointer) uint32

//go:wasmimport env proxy_define_metric
func proxyDefineMetric(kind uint32, name unsafe.Pointer, nameSize uint32, ret unsafe.Pointer) uint32

//go:wasmimport env proxy_increment_metric
func proxyIncrementMetric(id uint32, offset int64) uint32

//go:wasmimport env proxy_record_metric
func proxyRecordMetric(id uint32, value uint64) uint32

//go:wasmimport env proxy_get_metric
func proxyGetMetric(id uint32, ret unsafe.Pointer) uint32

// ---------------------------------------------------------------------------
// Memory handed to the host.

var pins = newPinTable()

// Return slots. Package-level, so they live at fixed addresses outside any
// goroutine stack: the host writes them after calling back into
// proxy_on_memory_allocate, during which the calling goroutine's stack
// could be grown and moved.
var (
	retData uint32
	retSize uint32
	retU32  uint32
	retU32b uint32
	retU64  uint64
)

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	addr, _ := pins.alloc(size, addrOf)
	return uint32(addr)
}

// CallbackStart unpins memory the host allocated outside a data-returning
// hostcall (none is in use between callbacks). Every export calls it.
func CallbackStart() { pins.releaseFrom(0) }

// Pinned reports how many host-bound buffers are pinned (for diagnostics).
func Pinned() int { return pins.pinned() }

// returning runs a hostcall whose result comes back through
// (retData, retSize) and returns the data (nil unless Ok; empty, not nil,
// for an Ok with no data) and the status.
func returning(call func(d, s unsafe.Pointer) uint32) ([]byte, uint32) {
	retData, retSize = 0, 0
	m := pins.mark()
	st := call(unsafe.Pointer(&retData), unsafe.Pointer(&retSize))
	var out []byte
	if st == StatusOK {
		if retData == 0 {
			if retSize == 0 {
				out = []byte{}
			} else {
				st = StatusBadReturn
			}
		} else if buf, ok := pins.take(uintptr(retData), retSize); ok {
			out = buf
		} else {
			st = StatusBadReturn
		}
	}
	pins.releaseFrom(m)
	return out, st
}

func sp(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }
func bp(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }
func sl(s string) uint32         { return uint32(len(s)) }
func bl(b []byte) uint32         { return uint32(len(b)) }

// ---------------------------------------------------------------------------
// Hostcalls with Go types.

func Log(level uint32, msg string) uint32 { return proxyLog(level, sp(msg), sl(msg)) }

func GetLogLevel() (uint32, uint32) {
	retU32 = 0
	st := proxyGetLogLevel(unsafe.Pointer(&retU32))
	return retU32, st
}

func GetCurrentTimeNanoseconds() (uint64, uint32) {
	retU64 = 0
	st := proxyGetCurrentTimeNanoseconds(unsafe.Pointer(&retU64))
	return retU64, st
}

func SetTickPeriodMilliseconds(ms uint32) uint32 { return proxySetTickPeriodMilliseconds(ms) }

func GetBufferBytes(bt, start, max uint32) ([]byte, uint32) {
	return returning(func(d, s unsafe.Pointer) uint32 { return proxyGetBufferBytes(bt, start, max, d, s) })
}

func GetBufferStatus(bt uint32) (uint32, uint32, uint32) {
	retU32, retU32b = 0, 0
	st := proxyGetBufferStatus(bt, unsafe.Pointer(&retU32), unsafe.Pointer(&retU32b))
	return retU32, retU32b, st
}

func SetBufferBytes(bt, start, size uint32, data []byte) uint32 {
	return proxySetBufferBytes(bt, start, size, bp(data), bl(data))
}

func GetHeaderMapPairs(mt uint32) ([]byte, uint32) {
	return returning(func(d, s unsafe.Pointer) uint32 { return proxyGetHeaderMapPairs(mt, d, s) })
}

func SetHeaderMapPairs(mt uint32, data []byte) uint32 {
	return proxySetHeaderMapPairs(mt, bp(data), bl(data))
}

func GetHeaderMapValue(mt uint32, key string) ([]byte, uint32) {
	return returning(func(d, s unsafe.Pointer) uint32 { return proxyGetHeaderMapValue(mt, sp(key), sl(key), d, s) })
}

func AddHeaderMapValue(mt uint32, key, value string) uint32 {
	return proxyAddHeaderMapValue(mt, sp(key), sl(key), sp(value), sl(value))
}

func ReplaceHeaderMapValue(mt uint32, key, value string) uint32 {
	return proxyReplaceHeaderMapValue(mt, sp(key), sl(key), sp(value), sl(value))
}

func RemoveHeaderMapValue(mt uint32, key string) uint32 {
	return proxyRemoveHeaderMapValue(mt, sp(key), sl(key))
}

func GetHeaderMapSize(mt uint32) (uint32, uint32) {
	retU32 = 0
	st := proxyGetHeaderMapSize(mt, unsafe.Pointer(&retU32))
	return retU32, st
}

func GetProperty(path []byte) ([]byte, uint32) {
	return returning(func(d, s unsafe.Pointer) uint32 { return proxyGetProperty(bp(path), bl(path), d, s) })
}

func SetProperty(path, value []byte) uint32 {
	return proxySetProperty(bp(path), bl(path), bp(value), bl(value))
}

func GetSharedData(key string) ([]byte, uint32, uint32) {
	retU32b = 0
	v, st := returning(func(d, s unsafe.Pointer) uint32 {
		return proxyGetSharedData(sp(key), sl(key), d, s, unsafe.Pointer(&retU32b))
	})
	return v, retU32b, st
}

func SetSharedData(key string, value []byte, cas uint32) uint32 {
	return proxySetSharedData(sp(key), sl(key), bp(value), bl(value), cas)
}

func RegisterSharedQueue(name string) (uint32, uint32) {
	retU32 = 0
	st := proxyRegisterSharedQueue(sp(name), sl(name), unsafe.Pointer(&retU32))
	return retU32, st
}

func ResolveSharedQueue(vmID, name string) (uint32, uint32) {
	retU32 = 0
	st := proxyResolveSharedQueue(sp(vmID), sl(vmID), sp(name), sl(name), unsafe.Pointer(&retU32))
	return retU32, st
}

func DequeueSharedQueue(id uint32) ([]byte, uint32) {
	return returning(func(d, s unsafe.Pointer) uint32 { return proxyDequeueSharedQueue(id, d, s) })
}

func EnqueueSharedQueue(id uint32, value []byte) uint32 {
	return proxyEnqueueSharedQueue(id, bp(value), bl(value))
}

func ContinueStream(streamType uint32) uint32 { return proxyContinueStream(streamType) }

func CloseStream(streamType uint32) uint32 { return proxyCloseStream(streamType) }

func SendLocalResponse(status uint32, details string, body, headers []byte, grpcStatus int32) uint32 {
	return proxySendLocalResponse(status, sp(details), sl(details), bp(body), bl(body), bp(headers), bl(headers), grpcStatus)
}

func HttpCall(upstream string, headers, body, trailers []byte, timeoutMs uint32) (uint32, uint32) {
	retU32 = 0
	st := proxyHttpCall(sp(upstream), sl(upstream), bp(headers), bl(headers), bp(body), bl(body),
		bp(trailers), bl(trailers), timeoutMs, unsafe.Pointer(&retU32))
	return retU32, st
}

func SetEffectiveContext(ctx uint32) uint32 { return proxySetEffectiveContext(ctx) }

func Done() uint32 { return proxyDone() }

func CallForeignFunction(name string, args []byte) ([]byte, uint32) {
	return returning(func(d, s unsafe.Pointer) uint32 {
		return proxyCallForeignFunction(sp(name), sl(name), bp(args), bl(args), d, s)
	})
}

func DefineMetric(kind uint32, name string) (uint32, uint32) {
	retU32 = 0
	st := proxyDefineMetric(kind, sp(name), sl(name), unsafe.Pointer(&retU32))
	return retU32, st
}

func IncrementMetric(id uint32, offset int64) uint32 { return proxyIncrementMetric(id, offset) }

func RecordMetric(id uint32, value uint64) uint32 { return proxyRecordMetric(id, value) }

func GetMetric(id uint32) (uint64, uint32) {
	retU64 = 0
	st := proxyGetMetric(id, unsafe.Pointer(&retU64))
	return retU64, st
}

// ---------------------------------------------------------------------------
// gRPC.

//go:wasmimport env proxy_grpc_call
func proxyGrpcCall(upstream unsafe.Pointer, upstreamSize uint32, service unsafe.Pointer, serviceSize uint32,
	method unsafe.Pointer, methodSize uint32, metadata unsafe.Pointer, metadataSize uint32,
	message unsafe.Pointer, messageSize uint32, timeout uint32, retToken unsafe.Pointer) uint32

//go:wasmimport env proxy_grpc_stream
func proxyGrpcStream(upstream unsafe.Pointer, upstreamSize uint32, service unsafe.Pointer, serviceSize uint32,
	method unsafe.Pointer, methodSize uint32, metadata unsafe.Pointer, metadataSize uint32,
	retToken unsafe.Pointer) uint32

//go:wasmimport env proxy_grpc_send
func proxyGrpcSend(token uint32, message unsafe.Pointer, messageSize uint32, endStream uint32) uint32

//go:wasmimport env proxy_grpc_cancel
func proxyGrpcCancel(token uint32) uint32

//go:wasmimport env proxy_grpc_close
func proxyGrpcClose(token uint32) uint32

//go:wasmimport env proxy_get_status
func proxyGetStatus(retCode unsafe.Pointer, retData, retSize unsafe.Pointer) uint32

func GrpcCall(upstream, service, method string, metadata, message []byte, timeoutMs uint32) (uint32, uint32) {
	retU32 = 0
	st := proxyGrpcCall(sp(upstream), sl(upstream), sp(service), sl(service), sp(method), sl(method),
		bp(metadata), bl(metadata), bp(message), bl(message), timeoutMs, unsafe.Pointer(&retU32))
	return retU32, st
}

func GrpcStream(upstream, service, method string, metadata []byte) (uint32, uint32) {
	retU32 = 0
	st := proxyGrpcStream(sp(upstream), sl(upstream), sp(service), sl(service), sp(method), sl(method),
		bp(metadata), bl(metadata), unsafe.Pointer(&retU32))
	return retU32, st
}

func GrpcSend(token uint32, message []byte, endStream bool) uint32 {
	var eos uint32
	if endStream {
		eos = 1
	}
	return proxyGrpcSend(token, bp(message), bl(message), eos)
}

func GrpcCancel(token uint32) uint32 { return proxyGrpcCancel(token) }

func GrpcClose(token uint32) uint32 { return proxyGrpcClose(token) }

func GetStatus() (uint32, []byte, uint32) {
	retU32b = 0
	msg, st := returning(func(d, s unsafe.Pointer) uint32 { return proxyGetStatus(unsafe.Pointer(&retU32b), d, s) })
	return retU32b, msg, st
}
