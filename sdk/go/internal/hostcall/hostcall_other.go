//go:build !wasip1

package hostcall

// Fake is the host seen by builds for other platforms than wasip1 (unit
// tests on the developer's machine). Each field stands for one hostcall; a
// nil field answers Unimplemented. Tests assign the fields they need.
var Fake FakeHost

// FakeHost is a table of hostcall implementations with Go types.
type FakeHost struct {
	Log                       func(level uint32, msg string) uint32
	GetLogLevel               func() (uint32, uint32)
	GetCurrentTimeNanoseconds func() (uint64, uint32)
	SetTickPeriodMilliseconds func(ms uint32) uint32
	GetBufferBytes            func(bt, start, max uint32) ([]byte, uint32)
	GetBufferStatus           func(bt uint32) (uint32, uint32, uint32)
	SetBufferBytes            func(bt, start, size uint32, data []byte) uint32
	GetHeaderMapPairs         func(mt uint32) ([]byte, uint32)
	SetHeaderMapPairs         func(mt uint32, data []byte) uint32
	GetHeaderMapValue         func(mt uint32, key string) ([]byte, uint32)
	AddHeaderMapValue         func(mt uint32, key, value string) uint32
	ReplaceHeaderMapValue     func(mt uint32, key, value string) uint32
	RemoveHeaderMapValue      func(mt uint32, key string) uint32
	GetHeaderMapSize          func(mt uint32) (uint32, uint32)
	GetProperty               func(path []byte) ([]byte, uint32)
	SetProperty               func(path, value []byte) uint32
	GetSharedData             func(key string) ([]byte, uint32, uint32)
	SetSharedData             func(key string, value []byte, cas uint32) uint32
	RegisterSharedQueue       func(name string) (uint32, uint32)
	ResolveSharedQueue        func(vmID, name string) (uint32, uint32)
	DequeueSharedQueue        func(id uint32) ([]byte, uint32)
	EnqueueSharedQueue        func(id uint32, value []byte) uint32
	ContinueStream            func(streamType uint32) uint32
	CloseStream               func(streamType uint32) uint32
	SendLocalResponse         func(status uint32, details string, body, headers []byte, grpcStatus int32) uint32
	HttpCall                  func(upstream string, headers, body, trailers []byte, timeoutMs uint32) (uint32, uint32)
	SetEffectiveContext       func(ctx uint32) uint32
	Done                      func() uint32
	CallForeignFunction       func(name string, args []byte) ([]byte, uint32)
	DefineMetric              func(kind uint32, name string) (uint32, uint32)
	IncrementMetric           func(id uint32, offset int64) uint32
	RecordMetric              func(id uint32, value uint64) uint32
	GetMetric                 func(id uint32) (uint64, uint32)
	GrpcCall                  func(upstream, service, method string, metadata, message []byte, timeoutMs uint32) (uint32, uint32)
	GrpcStream                func(upstream, service, method string, metadata []byte) (uint32, uint32)
	GrpcSend                  func(token uint32, message []byte, endStream bool) uint32
	GrpcCancel                func(token uint32) uint32
	GrpcClose                 func(token uint32) uint32
	GetStatus                 func() (uint32, []byte, uint32)
}

// CallbackStart does nothing outside wasm: no memory is handed over.
func CallbackStart() {}

// Pinned is always 0 outside wasm.
func Pinned() int { return 0 }

const un = StatusUnimplemented

func Log(level uint32, msg string) uint32 {
	if Fake.Log == nil {
		return un
	}
	return Fake.Log(level, msg)
}

func GetLogLevel() (uint32, uint32) {
	if Fake.GetLogLevel == nil {
		return 0, un
	}
	return Fake.GetLogLevel()
}

func GetCurrentTimeNanoseconds() (uint64, uint32) {
	if Fake.GetCurrentTimeNanoseconds == nil {
		return 0, un
	}
	return Fake.GetCurrentTimeNanoseconds()
}

func SetTickPeriodMilliseconds(ms uint32) uint32 {
	if Fake.SetTickPeriodMilliseconds == nil {
		return un
	}
	return Fake.SetTickPeriodMilliseconds(ms)
}

func GetBufferBytes(bt, start, max uint32) ([]byte, uint32) {
	if Fake.GetBufferBytes == nil {
		return nil, un
	}
	return Fake.GetBufferBytes(bt, start, max)
}

func GetBufferStatus(bt uint32) (uint32, uint32, uint32) {
	if Fake.GetBufferStatus == nil {
		return 0, 0, un
	}
	return Fake.GetBufferStatus(bt)
}

func SetBufferBytes(bt, start, size uint32, data []byte) uint32 {
	if Fake.SetBufferBytes == nil {
		return un
	}
	return Fake.SetBufferBytes(bt, start, size, data)
}

func GetHeaderMapPairs(mt uint32) ([]byte, uint32) {
	if Fake.GetHeaderMapPairs == nil {
		return nil, un
	}
	return Fake.GetHeaderMapPairs(mt)
}

func SetHeaderMapPairs(mt uint32, data []byte) uint32 {
	if Fake.SetHeaderMapPairs == nil {
		return un
	}
	return Fake.SetHeaderMapPairs(mt, data)
}

func GetHeaderMapValue(mt uint32, key string) ([]byte, uint32) {
	if Fake.GetHeaderMapValue == nil {
		return nil, un
	}
	return Fake.GetHeaderMapValue(mt, key)
}

func AddHeaderMapValue(mt uint32, key, value string) uint32 {
	if Fake.AddHeaderMapValue == nil {
		return un
	}
	return Fake.AddHeaderMapValue(mt, key, value)
}

func ReplaceHeaderMapValue(mt uint32, key, value string) uint32 {
	if Fake.ReplaceHeaderMapValue == nil {
		return un
	}
	return Fake.ReplaceHeaderMapValue(mt, key, value)
}

func RemoveHeaderMapValue(mt uint32, key string) uint32 {
	if Fake.RemoveHeaderMapValue == nil {
		return un
	}
	return Fake.RemoveHeaderMapValue(mt, key)
}

func GetHeaderMapSize(mt uint32) (uint32, uint32) {
	if Fake.GetHeaderMapSize == nil {
		return 0, un
	}
	return Fake.GetHeaderMapSize(mt)
}

func GetProperty(path []byte) ([]byte, uint32) {
	if Fake.GetProperty == nil {
		return nil, un
	}
	return Fake.GetProperty(path)
}

func SetProperty(path, value []byte) uint32 {
	if Fake.SetProperty == nil {
		return un
	}
	return Fake.SetProperty(path, value)
}

func GetSharedData(key string) ([]byte, uint32, uint32) {
	if Fake.GetSharedData == nil {
		return nil, 0, un
	}
	return Fake.GetSharedData(key)
}

func SetSharedData(key string, value []byte, cas uint32) uint32 {
	if Fake.SetSharedData == nil {
		return un
	}
	return Fake.SetSharedData(key, value, cas)
}

func RegisterSharedQueue(name string) (uint32, uint32) {
	if Fake.RegisterSharedQueue == nil {
		return 0, un
	}
	return Fake.RegisterSharedQueue(name)
}

func ResolveSharedQueue(vmID, name string) (uint32, uint32) {
	if Fake.ResolveSharedQueue == nil {
		return 0, un
	}
	return Fake.ResolveSharedQueue(vmID, name)
}

func DequeueSharedQueue(id uint32) ([]byte, uint32) {
	if Fake.DequeueSharedQueue == nil {
		return nil, un
	}
	return Fake.DequeueSharedQueue(id)
}

func EnqueueSharedQueue(id uint32, value []byte) uint32 {
	if Fake.EnqueueSharedQueue == nil {
		return un
	}
	return Fake.EnqueueSharedQueue(id, value)
}

func ContinueStream(streamType uint32) uint32 {
	if Fake.ContinueStream == nil {
		return un
	}
	return Fake.ContinueStream(streamType)
}

func CloseStream(streamType uint32) uint32 {
	if Fake.CloseStream == nil {
		return un
	}
	return Fake.CloseStream(streamType)
}

func SendLocalResponse(status uint32, details string, body, headers []byte, grpcStatus int32) uint32 {
	if Fake.SendLocalResponse == nil {
		return un
	}
	return Fake.SendLocalResponse(status, details, body, headers, grpcStatus)
}

func HttpCall(upstream string, headers, body, trailers []byte, timeoutMs uint32) (uint32, uint32) {
	if Fake.HttpCall == nil {
		return 0, un
	}
	return Fake.HttpCall(upstream, headers, body, trailers, timeoutMs)
}

func SetEffectiveContext(ctx uint32) uint32 {
	if Fake.SetEffectiveContext == nil {
		return un
	}
	return Fake.SetEffectiveContext(ctx)
}

func Done() uint32 {
	if Fake.Done == nil {
		return un
	}
	return Fake.Done()
}

func CallForeignFunction(name string, args []byte) ([]byte, uint32) {
	if Fake.CallForeignFunction == nil {
		return nil, un
	}
	return Fake.CallForeignFunction(name, args)
}

func DefineMetric(kind uint32, name string) (uint32, uint32) {
	if Fake.DefineMetric == nil {
		return 0, un
	}
	return Fake.DefineMetric(kind, name)
}

func IncrementMetric(id uint32, offset int64) uint32 {
	if Fake.IncrementMetric == nil {
		return un
	}
	return Fake.IncrementMetric(id, offset)
}

func RecordMetric(id uint32, value uint64) uint32 {
	if Fake.RecordMetric == nil {
		return un
	}
	return Fake.RecordMetric(id, value)
}

func GetMetric(id uint32) (uint64, uint32) {
	if Fake.GetMetric == nil {
		return 0, un
	}
	return Fake.GetMetric(id)
}

func GrpcCall(upstream, service, method string, metadata, message []byte, timeoutMs uint32) (uint32, uint32) {
	if Fake.GrpcCall == nil {
		return 0, un
	}
	return Fake.GrpcCall(upstream, service, method, metadata, message, timeoutMs)
}

func GrpcStream(upstream, service, method string, metadata []byte) (uint32, uint32) {
	if Fake.GrpcStream == nil {
		return 0, un
	}
	return Fake.GrpcStream(upstream, service, method, metadata)
}

func GrpcSend(token uint32, message []byte, endStream bool) uint32 {
	if Fake.GrpcSend == nil {
		return un
	}
	return Fake.GrpcSend(token, message, endStream)
}

func GrpcCancel(token uint32) uint32 {
	if Fake.GrpcCancel == nil {
		return un
	}
	return Fake.GrpcCancel(token)
}

func GrpcClose(token uint32) uint32 {
	if Fake.GrpcClose == nil {
		return un
	}
	return Fake.GrpcClose(token)
}

func GetStatus() (uint32, []byte, uint32) {
	if Fake.GetStatus == nil {
		return 0, nil, un
	}
	return Fake.GetStatus()
}

// Callbacks is the SDK's callback table outside wasm: package proxywasm
// fills it in at init, and a test host (package proxytest) calls it the way
// a proxy calls the module's exports.
var Callbacks CallbackTable

// CallbackTable mirrors the proxy_on_* exports, plus Reset, which gives
// the SDK fresh state with the given VM context.
type CallbackTable struct {
	Reset                         func(vm any)
	OnContextCreate               func(ctx, parent uint32)
	OnVMStart                     func(ctx uint32, size int32) int32
	OnConfigure                   func(ctx uint32, size int32) int32
	OnRequestHeaders              func(ctx uint32, n, eos int32) int32
	OnRequestBody                 func(ctx uint32, size, eos int32) int32
	OnRequestTrailers             func(ctx uint32, n int32) int32
	OnResponseHeaders             func(ctx uint32, n, eos int32) int32
	OnResponseBody                func(ctx uint32, size, eos int32) int32
	OnResponseTrailers            func(ctx uint32, n int32) int32
	OnDone                        func(ctx uint32) int32
	OnLog                         func(ctx uint32)
	OnDelete                      func(ctx uint32)
	OnTick                        func(ctx uint32)
	OnQueueReady                  func(ctx, queueID uint32)
	OnHttpCallResponse            func(ctx, token uint32, numHeaders, bodySize, numTrailers int32)
	OnNewConnection               func(ctx uint32) int32
	OnDownstreamData              func(ctx uint32, size, eos int32) int32
	OnDownstreamClose             func(ctx, peer uint32)
	OnUpstreamData                func(ctx uint32, size, eos int32) int32
	OnUpstreamClose               func(ctx, peer uint32)
	OnGrpcReceiveInitialMetadata  func(ctx, token, n uint32)
	OnGrpcReceiveTrailingMetadata func(ctx, token, n uint32)
	OnGrpcReceive                 func(ctx, token uint32, size int32)
	OnGrpcClose                   func(ctx, token, code uint32)
}
