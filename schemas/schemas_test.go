package schemas

import (
	"bytes"
	"os"
	"testing"

	"github.com/relayhq/relay/sdk/manifest"
)

// The SDK, a module of its own, embeds a copy of the connector manifest
// schema (`make generate` copies it). Both must be the same file, byte for
// byte, or a manifest could pass the SDK and fail the host.
func TestSDKManifestSchemaIsACopy(t *testing.T) {
	canonical, err := os.ReadFile("connector-manifest.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile("../sdk/manifest/connector-manifest.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonical, copied) {
		t.Error("sdk/manifest/connector-manifest.schema.json differs from schemas/connector-manifest.schema.json; run `make generate`")
	}
	if !bytes.Equal(canonical, manifest.SchemaJSON()) {
		t.Error("the schema the SDK embeds differs from schemas/connector-manifest.schema.json; run `make generate`")
	}
}
