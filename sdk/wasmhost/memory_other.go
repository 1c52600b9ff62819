//go:build !unix

package wasmhost

import "github.com/tetratelabs/wazero/experimental"

func allocateMemory(capacity, _ uint64) experimental.LinearMemory {
	return &heapMemory{buf: make([]byte, 0, capacity)}
}
