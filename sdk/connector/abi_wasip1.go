//go:build wasip1

//lint:file-ignore U1000 the host calls the go:wasmexport functions, which staticcheck does not count as uses.

package connector

import (
	"context"
	"fmt"
	"unsafe"

	"github.com/relayhq/relay/sdk/protocol"
)

// The exports of the WASM ABI, version 1 (docs/wasm-abi.md). The host calls
// them one at a time, never concurrently and never re-entering, so they
// share the package's state without locks.
//
// A failure the ABI counts as the host's or the module's fault (a block the
// guest never handed out, bytes that do not decode) panics: the panic is a
// trap, which the host reports as connector_crashed, with the panic's text
// in its log. So does a panic in a handler.

// abiVersion is the ABI this module speaks.
const abiVersion = 1

// pinned holds every block handed to the host, a request block from
// relay_alloc or a response, until the host frees it or the request is
// decoded: the host writes and reads through addresses the GC cannot see.
// The host holds one or two at a time, so a slice searched by address
// does, and costs less than a map in a module.
var pinned [][]byte

func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// pin keeps b, never empty, alive for the host and returns its address.
func pin(b []byte) uint32 {
	pinned = append(pinned, b)
	return addr(b)
}

// unpin releases the block at ptr and returns it; false when no block
// handed out is there.
func unpin(ptr uint32) ([]byte, bool) {
	for i, b := range pinned {
		if addr(b) == ptr {
			last := len(pinned) - 1
			pinned[i], pinned[last] = pinned[last], nil
			pinned = pinned[:last]
			return b, true
		}
	}
	return nil, false
}

// relayABIVersion is the host's first call, once the instance is
// initialized: it also runs main, so that the connector's declaration is
// checked, its schemas compiled and a broken one refused when the instance
// starts, not in the first call's time.
//
//go:wasmexport relay_abi_version
func relayABIVersion() int32 {
	server()
	return abiVersion
}

// relayAlloc reserves a block for a request. A request is never larger than
// the protocol's message limit, so a larger one is refused with 0.
//
//go:wasmexport relay_alloc
func relayAlloc(size uint32) uint32 {
	if size == 0 || size > protocol.MaxMessageSize {
		return 0
	}
	return pin(make([]byte, size))
}

//go:wasmexport relay_free
func relayFree(ptr, size uint32) {
	unpin(ptr)
}

//go:wasmexport relay_describe
func relayDescribe(ptr, size uint32) uint64 {
	mustDecode("relay_describe", "DescribeRequest", decodeEmpty(take("relay_describe", ptr, size)))
	return answer(appendBytesField(nil, 1, server().manifestJSON))
}

//go:wasmexport relay_check_config
func relayCheckConfig(ptr, size uint32) uint64 {
	conn, err := decodeCheckConfigRequest(take("relay_check_config", ptr, size))
	mustDecode("relay_check_config", "CheckConfigRequest", err)
	return answer(appendErrorField(nil, 1, server().checkConfig(context.Background(), conn)))
}

//go:wasmexport relay_preview
func relayPreview(ptr, size uint32) uint64 {
	return runAction("relay_preview", ptr, size, true)
}

//go:wasmexport relay_execute
func relayExecute(ptr, size uint32) uint64 {
	return runAction("relay_execute", ptr, size, false)
}

func runAction(export string, ptr, size uint32, preview bool) uint64 {
	req, err := decodeActionRequest(take(export, ptr, size))
	mustDecode(export, "ActionRequest", err)
	s := server() // runs main, which sets callCtx, on a first call
	out, e := s.run(callCtx, req, preview)
	return answer(appendResult(nil, out, e))
}

// take returns the request the host wrote at ptr, a block from
// relay_alloc, and unpins the block; nil for (0, 0), the empty message.
//
// The decoded input and config point into the block (wire.go): it is
// never written again, and the GC frees it with the last slice that uses
// it. Its secrets stay in the instance's memory until the GC reuses it, as
// copies of them would; the host reuses the instance for calls of other
// connections, of other workspaces too, but only of this connector, whose
// code was handed those secrets anyway.
func take(export string, ptr, size uint32) []byte {
	if size == 0 {
		return nil
	}
	b, ok := unpin(ptr)
	if !ok || int(size) > len(b) {
		panic(fmt.Sprintf("%s(%d, %d): not a block relay_alloc handed out", export, ptr, size))
	}
	return b[:size]
}

// mustDecode panics, a trap, when a request does not decode.
func mustDecode(export, message string, err error) {
	if err != nil {
		panic(fmt.Sprintf("%s: the bytes do not decode as relay.connector.v1.%s: %v", export, message, err))
	}
}

// answer pins an encoded response until the host frees it, and returns
// its address in the high 32 bits and its length in the low 32 bits; 0
// for the empty message.
func answer(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(pin(b))<<32 | uint64(len(b))
}
