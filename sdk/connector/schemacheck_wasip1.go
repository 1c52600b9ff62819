//go:build wasip1

package connector

import (
	"encoding/json"

	"github.com/relayhq/relay/sdk/manifest"
)

// A module leaves the JSON Schema checks to others, and leaves the JSON
// Schema compiler out: it was most of a module's start (compiling the
// metaschemas in the library's package initialization) and a large part
// of its code, which the host decodes and validates at every load. The
// checks still happen. The same source's native build checks the
// declaration (`spec wasm` writes the module's manifest.json), the host
// checks manifest.json when it installs the version and refuses a module
// that describes itself otherwise, and a host validates each input against
// the manifest's input_schema before a call (docs/wasm-abi.md). What does
// reach a handler unvalidated still goes through its typed decode, which
// refuses unknown fields and wrong types.

func inputValidator(json.RawMessage) (func([]byte) error, error) { return nil, nil }

func checkManifest(*manifest.Manifest) error { return nil }

func checkDerived(json.RawMessage) error { return nil }
