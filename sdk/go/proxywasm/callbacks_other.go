//go:build !wasip1

package proxywasm

import (
	"weft.dev/sdk/go/internal/hostcall"
	"weft.dev/sdk/go/proxywasm/types"
)

// Outside wasm there are no exports: the callbacks are offered to a test
// host (package proxytest) through hostcall.Callbacks instead. Each entry
// reads the package state when called, so Reset takes effect at once.
func init() {
	hostcall.Callbacks = hostcall.CallbackTable{
		Reset: func(vm any) {
			st = newState()
			if v, ok := vm.(types.VMContext); ok {
				st.vm = v
			}
		},
		OnContextCreate:   func(ctx, parent uint32) { st.onContextCreate(ctx, parent) },
		OnVMStart:         func(ctx uint32, size int32) int32 { return st.onVMStart(ctx, size) },
		OnConfigure:       func(ctx uint32, size int32) int32 { return st.onConfigure(ctx, size) },
		OnRequestHeaders:  func(ctx uint32, n, eos int32) int32 { return st.onRequestHeaders(ctx, n, eos) },
		OnRequestBody:     func(ctx uint32, size, eos int32) int32 { return st.onRequestBody(ctx, size, eos) },
		OnRequestTrailers: func(ctx uint32, n int32) int32 { return st.onRequestTrailers(ctx, n) },
		OnResponseHeaders: func(ctx uint32, n, eos int32) int32 { return st.onResponseHeaders(ctx, n, eos) },
		OnResponseBody:    func(ctx uint32, size, eos int32) int32 { return st.onResponseBody(ctx, size, eos) },
		OnResponseTrailers: func(ctx uint32, n int32) int32 {
			return st.onResponseTrailers(ctx, n)
		},
		OnDone:       func(ctx uint32) int32 { return st.onDone(ctx) },
		OnLog:        func(ctx uint32) { st.onLog(ctx) },
		OnDelete:     func(ctx uint32) { st.onDelete(ctx) },
		OnTick:       func(ctx uint32) { st.onTick(ctx) },
		OnQueueReady: func(ctx, id uint32) { st.onQueueReady(ctx, id) },
		OnHttpCallResponse: func(ctx, token uint32, nh, bs, nt int32) {
			st.onHttpCallResponse(ctx, token, nh, bs, nt)
		},
		OnNewConnection:   func(ctx uint32) int32 { return st.onNewConnection(ctx) },
		OnDownstreamData:  func(ctx uint32, size, eos int32) int32 { return st.onDownstreamData(ctx, size, eos) },
		OnDownstreamClose: func(ctx, peer uint32) { st.onDownstreamClose(ctx, peer) },
		OnUpstreamData:    func(ctx uint32, size, eos int32) int32 { return st.onUpstreamData(ctx, size, eos) },
		OnUpstreamClose:   func(ctx, peer uint32) { st.onUpstreamClose(ctx, peer) },
		OnGrpcReceiveInitialMetadata: func(ctx, token, n uint32) {
			st.onGrpcReceiveInitialMetadata(ctx, token, n)
		},
		OnGrpcReceiveTrailingMetadata: func(ctx, token, n uint32) {
			st.onGrpcReceiveTrailingMetadata(ctx, token, n)
		},
		OnGrpcReceive: func(ctx, token uint32, size int32) { st.onGrpcReceive(ctx, token, size) },
		OnGrpcClose:   func(ctx, token, code uint32) { st.onGrpcClose(ctx, token, code) },
	}
}
