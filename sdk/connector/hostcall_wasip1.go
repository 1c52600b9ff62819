//go:build wasip1

package connector

// The host functions of the WASM ABI, module "relay" (docs/wasm-abi.md).

// hostLog writes one line to the host's log at a level from 1 (trace) to
// 5 (error).
//
//go:wasmimport relay log
func hostLog(level uint32, ptr *byte, size uint32)

// hostHTTPRequest makes the HTTP request encoded as an HttpRequest at ptr
// and returns the length of the encoded HttpResponse it left pending, or -1.
//
//go:wasmimport relay http_request
func hostHTTPRequest(ptr *byte, size uint32) int32

// hostResultRead copies the pending result to ptr and clears it; it returns
// the number of bytes copied, or -1.
//
//go:wasmimport relay result_read
func hostResultRead(ptr *byte, size uint32) int32
