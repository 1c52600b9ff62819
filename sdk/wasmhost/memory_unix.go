//go:build unix

package wasmhost

import (
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// reservedMemory is a linear memory in address space reserved for its
// ceiling; the first usable bytes of it are readable and writable.
type reservedMemory struct {
	reserved []byte // the whole reservation, mapped with no access
	usable   int    // bytes made readable and writable, a multiple of the page size
}

func allocateMemory(capacity, ceiling uint64) experimental.LinearMemory {
	if ceiling == 0 || ceiling > 1<<32 {
		return &heapMemory{buf: make([]byte, 0, capacity)}
	}
	b, err := syscall.Mmap(-1, 0, int(ceiling), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return &heapMemory{buf: make([]byte, 0, capacity)}
	}
	return &reservedMemory{reserved: b}
}

// Reallocate makes the first size bytes usable and returns them; nil when
// size is over the reservation or the system refuses the pages.
func (m *reservedMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.reserved)) {
		return nil
	}
	if n := int(size); n > m.usable {
		page := syscall.Getpagesize()
		end := min((n+page-1)/page*page, len(m.reserved))
		if err := syscall.Mprotect(m.reserved[m.usable:end], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil
		}
		m.usable = end
	}
	return m.reserved[:size:size]
}

func (m *reservedMemory) Free() {
	if m.reserved != nil {
		_ = syscall.Munmap(m.reserved)
		m.reserved, m.usable = nil, 0
	}
}
