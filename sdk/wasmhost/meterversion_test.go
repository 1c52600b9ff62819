package wasmhost

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

// meteredProbe is the SHA-256 of testdata/meterprobe.wasm (testdata/meter.wat
// built with `wat2wasm --debug-names`, committed so that this test needs
// no wabt) as meter version meterVersion rewrites it.
const meteredProbe = "bb376907f18503b257a60876ad1232a56a3c73b547d319202b917c4d4deffcfb"

// The metered modules kept in the compilation cache are reused by every
// later start with the same meterVersion (meteredcache.go): a change to
// what meter writes must come with a new meterVersion, or a restart would
// run modules metered the old way. This notices such a change.
func TestMeterVersion(t *testing.T) {
	probe, err := os.ReadFile("testdata/meterprobe.wasm")
	if err != nil {
		t.Fatal(err)
	}
	metered, err := meter(probe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(metered)
	if got := hex.EncodeToString(sum[:]); got != meteredProbe {
		t.Fatalf("meter writes other bytes than meter version %d did (SHA-256 %s): raise meterVersion and set meteredProbe to the new digest", meterVersion, got)
	}
}
