package proxywasm

import (
	"math"

	"weft.dev/sdk/go/internal/codec"
	"weft.dev/sdk/go/internal/hostcall"
)

// Buffer and map selectors and stream types for TCP and gRPC.
const (
	bufDownstreamData uint32 = 2
	bufUpstreamData   uint32 = 3
	bufGrpcReceive    uint32 = 5

	mapGrpcInitialMetadata  uint32 = 4
	mapGrpcTrailingMetadata uint32 = 5

	streamDownstream uint32 = 2
	streamUpstream   uint32 = 3
)

// ---------------------------------------------------------------------------
// TCP streams (network filters). weft itself is an HTTP proxy and never
// calls the TCP callbacks; these serve hosts that do (Envoy).

// GetDownstreamData returns up to maxSize bytes of buffered client data.
func GetDownstreamData(start, maxSize int) ([]byte, error) {
	return getBuffer(bufDownstreamData, start, maxSize)
}

// AppendDownstreamData appends to the buffered client data.
func AppendDownstreamData(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufDownstreamData, math.MaxInt32, 0, data))
}

// PrependDownstreamData inserts before the buffered client data.
func PrependDownstreamData(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufDownstreamData, 0, 0, data))
}

// ReplaceDownstreamData replaces the buffered client data.
func ReplaceDownstreamData(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufDownstreamData, 0, math.MaxInt32, data))
}

// GetUpstreamData returns up to maxSize bytes of buffered upstream data.
func GetUpstreamData(start, maxSize int) ([]byte, error) {
	return getBuffer(bufUpstreamData, start, maxSize)
}

// AppendUpstreamData appends to the buffered upstream data.
func AppendUpstreamData(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufUpstreamData, math.MaxInt32, 0, data))
}

// PrependUpstreamData inserts before the buffered upstream data.
func PrependUpstreamData(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufUpstreamData, 0, 0, data))
}

// ReplaceUpstreamData replaces the buffered upstream data.
func ReplaceUpstreamData(data []byte) error {
	return toErr(hostcall.SetBufferBytes(bufUpstreamData, 0, math.MaxInt32, data))
}

// ResumeDownstream resumes client data paused with ActionPause.
func ResumeDownstream() error { return toErr(hostcall.ContinueStream(streamDownstream)) }

// ResumeUpstream resumes upstream data paused with ActionPause.
func ResumeUpstream() error { return toErr(hostcall.ContinueStream(streamUpstream)) }

// CloseDownstream closes the client connection.
func CloseDownstream() error { return toErr(hostcall.CloseStream(streamDownstream)) }

// CloseUpstream closes the upstream connection.
func CloseUpstream() error { return toErr(hostcall.CloseStream(streamUpstream)) }

// ---------------------------------------------------------------------------
// gRPC calls and streams. weft's host answers these hostcalls with
// Unimplemented (its HTTP calls cover unary requests); they serve hosts
// that implement them.

// GrpcStreamHandlers are the callbacks of a gRPC stream; nil ones are
// skipped. Each runs in the context that opened the stream.
type GrpcStreamHandlers struct {
	// OnInitialMetadata: read it with GetGrpcInitialMetadata.
	OnInitialMetadata func(numHeaders int)
	// OnMessage: read it with GetGrpcReceiveBuffer.
	OnMessage func(size int)
	// OnTrailingMetadata: read it with GetGrpcTrailingMetadata.
	OnTrailingMetadata func(numTrailers int)
	// OnClose: the stream ended with this gRPC status; GetGrpcStatus
	// gives the message.
	OnClose func(statusCode uint32)
}

// DispatchGrpcCall makes a unary gRPC call to a cluster. callback runs in
// the calling context with the gRPC status (0 with the response's size
// when it succeeded; read the response with GetGrpcReceiveBuffer).
func DispatchGrpcCall(cluster, service, method string, initialMetadata [][2]string, message []byte,
	timeoutMilliseconds uint32, callback func(statusCode uint32, responseSize int)) (uint32, error) {
	token, s := hostcall.GrpcCall(cluster, service, method, codec.SerializeMap(initialMetadata), message, timeoutMilliseconds)
	if err := toErr(s); err != nil {
		return 0, err
	}
	if callback != nil {
		st.grpcCalls[token] = grpcCall{owner: st.current, fn: callback}
	}
	return token, nil
}

// OpenGrpcStream opens a gRPC stream to a cluster.
func OpenGrpcStream(cluster, service, method string, initialMetadata [][2]string, handlers GrpcStreamHandlers) (uint32, error) {
	token, s := hostcall.GrpcStream(cluster, service, method, codec.SerializeMap(initialMetadata))
	if err := toErr(s); err != nil {
		return 0, err
	}
	st.grpcStreams[token] = grpcStream{owner: st.current, handlers: handlers}
	return token, nil
}

// SendGrpcStreamMessage sends a message on a stream; endStream half-closes it.
func SendGrpcStreamMessage(token uint32, message []byte, endStream bool) error {
	return toErr(hostcall.GrpcSend(token, message, endStream))
}

// CancelGrpcCall cancels a call or stream; its callbacks will not run.
func CancelGrpcCall(token uint32) error {
	delete(st.grpcCalls, token)
	delete(st.grpcStreams, token)
	return toErr(hostcall.GrpcCancel(token))
}

// CloseGrpcStream closes a stream gracefully.
func CloseGrpcStream(token uint32) error { return toErr(hostcall.GrpcClose(token)) }

// GetGrpcReceiveBuffer returns up to maxSize bytes of the received message.
func GetGrpcReceiveBuffer(start, maxSize int) ([]byte, error) {
	return getBuffer(bufGrpcReceive, start, maxSize)
}

// GetGrpcInitialMetadata returns a stream's initial metadata.
func GetGrpcInitialMetadata() ([][2]string, error) { return getMap(mapGrpcInitialMetadata) }

// GetGrpcTrailingMetadata returns a stream's trailing metadata.
func GetGrpcTrailingMetadata() ([][2]string, error) { return getMap(mapGrpcTrailingMetadata) }

// GetGrpcStatus returns the status code and message of the gRPC call or
// stream that just closed.
func GetGrpcStatus() (uint32, string, error) {
	code, msg, s := hostcall.GetStatus()
	if err := toErr(s); err != nil {
		return 0, "", err
	}
	return code, string(msg), nil
}
