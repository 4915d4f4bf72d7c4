//go:build !wasip1

package proxywasm

import (
	"strings"
	"testing"

	"weft.dev/sdk/go/internal/codec"
	"weft.dev/sdk/go/internal/hostcall"
)

// fakeHost is an in-memory proxy-wasm host for the SDK's tests, with the
// semantics of weft's host (wasm-host/src/host.rs) for the calls it
// implements.
type fakeHost struct {
	t         *testing.T
	effective uint32
	logs      []string
	maps      map[uint32][][2]string // per map type, current stream
	buffers   map[uint32][]byte
	props     map[string][]byte
	shared    map[string]sharedValue
	queues    map[string]uint32
	queueData map[uint32][][]byte
	metrics   map[string]uint32
	values    map[uint32]int64
	kinds     map[uint32]uint32
	tick      uint32
	resumed   []uint32
	local     *localReply
	calls     []fakeCall
	nextToken uint32
}

type sharedValue struct {
	value []byte
	cas   uint32
}

type localReply struct {
	status  uint32
	details string
	body    string
	headers [][2]string
}

type fakeCall struct {
	cluster string
	headers [][2]string
	body    string
	timeout uint32
	token   uint32
}

func newFakeHost(t *testing.T) *fakeHost {
	h := &fakeHost{
		t: t, maps: map[uint32][][2]string{}, buffers: map[uint32][]byte{},
		props: map[string][]byte{}, shared: map[string]sharedValue{}, queues: map[string]uint32{},
		queueData: map[uint32][][]byte{}, metrics: map[string]uint32{}, values: map[uint32]int64{},
		kinds: map[uint32]uint32{},
	}
	const (
		ok       = hostcall.StatusOK
		notFound = hostcall.StatusNotFound
		bad      = hostcall.StatusBadArgument
	)
	find := func(mt uint32, key string) int {
		for i, kv := range h.maps[mt] {
			if strings.EqualFold(kv[0], key) {
				return i
			}
		}
		return -1
	}
	hostcall.Fake = hostcall.FakeHost{
		Log: func(level uint32, msg string) uint32 {
			h.logs = append(h.logs, msg)
			return ok
		},
		SetTickPeriodMilliseconds: func(ms uint32) uint32 { h.tick = ms; return ok },
		GetBufferBytes: func(bt, start, max uint32) ([]byte, uint32) {
			b, found := h.buffers[bt]
			if !found {
				return nil, notFound
			}
			s := min(int(start), len(b))
			e := min(s+int(max), len(b))
			return append([]byte{}, b[s:e]...), ok
		},
		SetBufferBytes: func(bt, start, size uint32, data []byte) uint32 {
			b := h.buffers[bt]
			s := min(int(start), len(b))
			e := min(s+int(size), len(b))
			nb := append(append(append([]byte{}, b[:s]...), data...), b[e:]...)
			h.buffers[bt] = nb
			return ok
		},
		GetHeaderMapPairs: func(mt uint32) ([]byte, uint32) { return codec.SerializeMap(h.maps[mt]), ok },
		SetHeaderMapPairs: func(mt uint32, data []byte) uint32 {
			pairs, err := codec.DeserializeMap(data)
			if err != nil {
				return bad
			}
			h.maps[mt] = pairs
			return ok
		},
		GetHeaderMapValue: func(mt uint32, key string) ([]byte, uint32) {
			if i := find(mt, key); i >= 0 {
				return []byte(h.maps[mt][i][1]), ok
			}
			return nil, notFound
		},
		AddHeaderMapValue: func(mt uint32, key, value string) uint32 {
			h.maps[mt] = append(h.maps[mt], [2]string{key, value})
			return ok
		},
		ReplaceHeaderMapValue: func(mt uint32, key, value string) uint32 {
			if i := find(mt, key); i >= 0 {
				h.maps[mt][i][1] = value
				return ok
			}
			h.maps[mt] = append(h.maps[mt], [2]string{key, value})
			return ok
		},
		RemoveHeaderMapValue: func(mt uint32, key string) uint32 {
			for i := find(mt, key); i >= 0; i = find(mt, key) {
				h.maps[mt] = append(h.maps[mt][:i], h.maps[mt][i+1:]...)
			}
			return ok
		},
		GetProperty: func(path []byte) ([]byte, uint32) {
			v, found := h.props[string(path)]
			if !found {
				return nil, notFound
			}
			return v, ok
		},
		SetProperty: func(path, value []byte) uint32 { h.props[string(path)] = value; return ok },
		GetSharedData: func(key string) ([]byte, uint32, uint32) {
			v, found := h.shared[key]
			if !found {
				return nil, 0, notFound
			}
			return v.value, v.cas, ok
		},
		SetSharedData: func(key string, value []byte, cas uint32) uint32 {
			v, found := h.shared[key]
			if cas != 0 && (!found || cas != v.cas) {
				return 8 // CasMismatch
			}
			h.shared[key] = sharedValue{value: value, cas: v.cas + 1}
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
			if id, found := h.queues[name]; found && vmID == "" {
				return id, ok
			}
			return 0, notFound
		},
		EnqueueSharedQueue: func(id uint32, value []byte) uint32 {
			h.queueData[id] = append(h.queueData[id], value)
			return ok
		},
		DequeueSharedQueue: func(id uint32) ([]byte, uint32) {
			q := h.queueData[id]
			if len(q) == 0 {
				return nil, 7 // Empty
			}
			h.queueData[id] = q[1:]
			return q[0], ok
		},
		ContinueStream: func(st uint32) uint32 { h.resumed = append(h.resumed, st); return ok },
		SendLocalResponse: func(status uint32, details string, body, headers []byte, grpc int32) uint32 {
			pairs, err := codec.DeserializeMap(headers)
			if err != nil {
				return bad
			}
			h.local = &localReply{status, details, string(body), pairs}
			return ok
		},
		HttpCall: func(upstream string, headers, body, trailers []byte, timeout uint32) (uint32, uint32) {
			pairs, err := codec.DeserializeMap(headers)
			if err != nil {
				return 0, bad
			}
			h.nextToken++
			h.calls = append(h.calls, fakeCall{upstream, pairs, string(body), timeout, h.nextToken})
			return h.nextToken, ok
		},
		SetEffectiveContext: func(ctx uint32) uint32 { h.effective = ctx; return ok },
		DefineMetric: func(kind uint32, name string) (uint32, uint32) {
			if kind > 2 {
				return 0, bad
			}
			if id, found := h.metrics[name]; found {
				if h.kinds[id] != kind {
					return 0, bad
				}
				return id, ok
			}
			id := uint32(len(h.metrics) + 1)
			h.metrics[name] = id
			h.kinds[id] = kind
			return id, ok
		},
		IncrementMetric: func(id uint32, offset int64) uint32 {
			if _, found := h.kinds[id]; !found {
				return notFound
			}
			if h.kinds[id] == 0 && offset < 0 {
				return bad
			}
			h.values[id] += offset
			return ok
		},
		RecordMetric: func(id uint32, value uint64) uint32 { h.values[id] = int64(value); return ok },
		GetMetric: func(id uint32) (uint64, uint32) {
			if _, found := h.kinds[id]; !found {
				return 0, notFound
			}
			return uint64(h.values[id]), ok
		},
	}
	// Fresh SDK state for every test.
	st = newState()
	t.Cleanup(func() {
		hostcall.Fake = hostcall.FakeHost{}
		st = newState()
	})
	return h
}
