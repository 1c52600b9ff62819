package wasmhost

import "github.com/tetratelabs/wazero/experimental"

// An instance's linear memory lives outside the Go heap where the system
// allows it (memory_unix.go): its whole ceiling is reserved as address
// space up front, and growing it only makes the next pages usable, which
// the kernel hands out zeroed as they are first touched. Nothing is copied
// or cleared when a guest grows its memory (a Go module grows it many
// times while it starts), and the collector never sees the memory, which
// is given back to the system when the instance closes.
var memoryAllocator experimental.MemoryAllocator = experimental.MemoryAllocatorFunc(allocateMemory)

// heapMemory is a linear memory on the Go heap, as wazero keeps one
// without an allocator: where address space cannot be reserved.
type heapMemory struct{ buf []byte }

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > uint64(cap(m.buf)) {
		grown := make([]byte, size, max(size, 2*uint64(cap(m.buf))))
		copy(grown, m.buf)
		m.buf = grown
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *heapMemory) Free() { m.buf = nil }
