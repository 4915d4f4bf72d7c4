//go:build wasip1

package proxywasm

// The proxy-wasm 0.2.1 callbacks, exported with //go:wasmexport. Each one
// hands over to the SDK's dispatcher (dispatch.go), which is plain Go and
// tested on the host platform.

//go:wasmexport proxy_abi_version_0_2_1
func proxyABIVersion021() {}

//go:wasmexport proxy_on_context_create
func proxyOnContextCreate(ctx, parent uint32) { st.onContextCreate(ctx, parent) }

//go:wasmexport proxy_on_vm_start
func proxyOnVMStart(ctx uint32, size int32) int32 { return st.onVMStart(ctx, size) }

//go:wasmexport proxy_on_configure
func proxyOnConfigure(ctx uint32, size int32) int32 { return st.onConfigure(ctx, size) }

//go:wasmexport proxy_on_request_headers
func proxyOnRequestHeaders(ctx uint32, n, eos int32) int32 { return st.onRequestHeaders(ctx, n, eos) }

//go:wasmexport proxy_on_request_body
func proxyOnRequestBody(ctx uint32, size, eos int32) int32 { return st.onRequestBody(ctx, size, eos) }

//go:wasmexport proxy_on_request_trailers
func proxyOnRequestTrailers(ctx uint32, n int32) int32 { return st.onRequestTrailers(ctx, n) }

//go:wasmexport proxy_on_response_headers
func proxyOnResponseHeaders(ctx uint32, n, eos int32) int32 { return st.onResponseHeaders(ctx, n, eos) }

//go:wasmexport proxy_on_response_body
func proxyOnResponseBody(ctx uint32, size, eos int32) int32 { return st.onResponseBody(ctx, size, eos) }

//go:wasmexport proxy_on_response_trailers
func proxyOnResponseTrailers(ctx uint32, n int32) int32 { return st.onResponseTrailers(ctx, n) }

//go:wasmexport proxy_on_done
func proxyOnDone(ctx uint32) int32 { return st.onDone(ctx) }

//go:wasmexport proxy_on_log
func proxyOnLog(ctx uint32) { st.onLog(ctx) }

//go:wasmexport proxy_on_delete
func proxyOnDelete(ctx uint32) { st.onDelete(ctx) }

//go:wasmexport proxy_on_tick
func proxyOnTick(ctx uint32) { st.onTick(ctx) }

//go:wasmexport proxy_on_queue_ready
func proxyOnQueueReady(ctx, queueID uint32) { st.onQueueReady(ctx, queueID) }

//go:wasmexport proxy_on_http_call_response
func proxyOnHttpCallResponse(ctx, token uint32, numHeaders, bodySize, numTrailers int32) {
	st.onHttpCallResponse(ctx, token, numHeaders, bodySize, numTrailers)
}

//go:wasmexport proxy_on_new_connection
func proxyOnNewConnection(ctx uint32) int32 { return st.onNewConnection(ctx) }

//go:wasmexport proxy_on_downstream_data
func proxyOnDownstreamData(ctx uint32, size, eos int32) int32 {
	return st.onDownstreamData(ctx, size, eos)
}

//go:wasmexport proxy_on_downstream_connection_close
func proxyOnDownstreamConnectionClose(ctx, peer uint32) { st.onDownstreamClose(ctx, peer) }

//go:wasmexport proxy_on_upstream_data
func proxyOnUpstreamData(ctx uint32, size, eos int32) int32 { return st.onUpstreamData(ctx, size, eos) }

//go:wasmexport proxy_on_upstream_connection_close
func proxyOnUpstreamConnectionClose(ctx, peer uint32) { st.onUpstreamClose(ctx, peer) }

//go:wasmexport proxy_on_grpc_receive_initial_metadata
func proxyOnGrpcReceiveInitialMetadata(ctx, token, numHeaders uint32) {
	st.onGrpcReceiveInitialMetadata(ctx, token, numHeaders)
}

//go:wasmexport proxy_on_grpc_receive_trailing_metadata
func proxyOnGrpcReceiveTrailingMetadata(ctx, token, numTrailers uint32) {
	st.onGrpcReceiveTrailingMetadata(ctx, token, numTrailers)
}

//go:wasmexport proxy_on_grpc_receive
func proxyOnGrpcReceive(ctx, token uint32, size int32) { st.onGrpcReceive(ctx, token, size) }

//go:wasmexport proxy_on_grpc_close
func proxyOnGrpcClose(ctx, token, statusCode uint32) { st.onGrpcClose(ctx, token, statusCode) }

// No foreign functions are offered to the host; declared void as in the
// Rust and C++ SDKs.
//
//go:wasmexport proxy_on_foreign_function
func proxyOnForeignFunction(ctx, functionID uint32, dataSize int32) { st.enter(ctx) }
