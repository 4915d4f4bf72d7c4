package hostcall

// pinTable keeps every buffer handed to the host through
// proxy_on_memory_allocate reachable, so the garbage collector can neither
// free nor reuse it while the host writes into it. (Go's heap never moves
// objects; reachability is all that matters.)
//
// A buffer is pinned from its allocation until the data-returning hostcall
// during which it was allocated has returned and its result has been taken
// (the caller then holds its own reference), or, for memory the host
// allocates outside such a call, until the end of the callback in progress.
type pinTable struct {
	live map[uintptr][]byte
	// Allocation order, so a hostcall can release exactly what it caused.
	order []uintptr
}

func newPinTable() *pinTable {
	return &pinTable{live: map[uintptr][]byte{}}
}

// alloc makes a zeroed buffer of size bytes (at least one, so every
// allocation has an address of its own), pins it and returns it.
func (t *pinTable) alloc(size uint32, addrOf func([]byte) uintptr) (uintptr, []byte) {
	n := size
	if n == 0 {
		n = 1
	}
	buf := make([]byte, n)
	addr := addrOf(buf)
	t.live[addr] = buf
	t.order = append(t.order, addr)
	return addr, buf
}

// mark is the point a hostcall starts from; releaseFrom(mark) unpins what
// was allocated since.
func (t *pinTable) mark() int { return len(t.order) }

// take returns the first size bytes of the pinned buffer at addr, or false
// when addr is not a pinned buffer or size exceeds it.
func (t *pinTable) take(addr uintptr, size uint32) ([]byte, bool) {
	buf, ok := t.live[addr]
	if !ok || uint64(size) > uint64(len(buf)) {
		return nil, false
	}
	return buf[:size:size], true
}

// releaseFrom unpins every buffer allocated since mark m.
func (t *pinTable) releaseFrom(m int) {
	if m > len(t.order) {
		m = len(t.order)
	}
	for _, a := range t.order[m:] {
		delete(t.live, a)
	}
	clear(t.order[m:])
	t.order = t.order[:m]
}

// pinned reports how many buffers are pinned.
func (t *pinTable) pinned() int { return len(t.live) }
