package hostcall

import (
	"runtime"
	"testing"
	"unsafe"
)

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestAllocationsHaveTheirOwnAddressesEvenWhenEmpty(t *testing.T) {
	p := newPinTable()
	a, bufA := p.alloc(0, addr)
	b, bufB := p.alloc(0, addr)
	if a == b {
		t.Fatal("two zero-size allocations share an address")
	}
	if len(bufA) != 1 || len(bufB) != 1 {
		t.Fatalf("zero-size allocations should get one byte, got %d and %d", len(bufA), len(bufB))
	}
	if p.pinned() != 2 {
		t.Fatalf("pinned = %d, want 2", p.pinned())
	}
}

func TestTakeChecksAddressAndSize(t *testing.T) {
	p := newPinTable()
	a, buf := p.alloc(4, addr)
	copy(buf, "abcd")
	got, ok := p.take(a, 3)
	if !ok || string(got) != "abc" || cap(got) != 3 {
		t.Fatalf("take(a, 3) = %q (cap %d), %v", got, cap(got), ok)
	}
	if _, ok := p.take(a, 5); ok {
		t.Fatal("take accepted a size larger than the allocation")
	}
	if _, ok := p.take(a+1, 1); ok {
		t.Fatal("take accepted an address that was never allocated")
	}
}

func TestReleaseFromUnpinsOnlyWhatCameAfterTheMark(t *testing.T) {
	p := newPinTable()
	before, _ := p.alloc(8, addr)
	m := p.mark()
	during1, _ := p.alloc(8, addr)
	during2, _ := p.alloc(8, addr)
	p.releaseFrom(m)
	if _, ok := p.take(before, 8); !ok {
		t.Fatal("an allocation from before the mark was released")
	}
	for _, a := range []uintptr{during1, during2} {
		if _, ok := p.take(a, 8); ok {
			t.Fatal("an allocation after the mark is still pinned")
		}
	}
	p.releaseFrom(0)
	if p.pinned() != 0 || p.mark() != 0 {
		t.Fatalf("after releaseFrom(0): pinned %d, mark %d", p.pinned(), p.mark())
	}
	p.releaseFrom(10) // a stale mark past the end is harmless
}

func TestPinnedMemorySurvivesGarbageCollection(t *testing.T) {
	p := newPinTable()
	var addrs []uintptr
	for i := 0; i < 64; i++ {
		a, buf := p.alloc(1024, addr)
		for j := range buf {
			buf[j] = byte(i)
		}
		addrs = append(addrs, a)
	}
	// Churn the heap so freed memory would be reused.
	for i := 0; i < 20; i++ {
		runtime.GC()
		junk := make([][]byte, 256)
		for j := range junk {
			junk[j] = make([]byte, 1024)
			for k := range junk[j] {
				junk[j][k] = 0xAA
			}
		}
		runtime.KeepAlive(junk)
	}
	for i, a := range addrs {
		buf, ok := p.take(a, 1024)
		if !ok {
			t.Fatalf("allocation %d no longer pinned", i)
		}
		for _, b := range buf {
			if b != byte(i) {
				t.Fatalf("allocation %d was overwritten after GC", i)
			}
		}
	}
}
