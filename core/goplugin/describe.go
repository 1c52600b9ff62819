package goplugin

import (
	"encoding/json"
	"fmt"

	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// CheckDescription checks a connector's answer to Describe against the
// manifest its version was installed with, the catalog's. The host acts on
// that manifest, not on the connector's word: it validates params against
// its schemas (and then tells the connector so, input_validated), and takes
// timeouts, confirmation and egress from it. So a version runs only if the
// connector describes itself as its manifest does, in everything but the
// runtime (manifest.Diff). Both runtimes call it when a connector starts:
// a plugin process, the first instance of a module. artifact names what
// was started ("binary", "module"). The error completes a message that
// begins with the version's ref: "the binary is connector x@1.0.0", "its
// manifest.json differs from what the connector describes: action "send"
// input_schema".
func CheckDescription(installed *manifest.Manifest, resp *connectorv1.DescribeResponse, artifact string) error {
	var described manifest.Manifest
	if err := json.Unmarshal(resp.GetManifestJson(), &described); err != nil {
		return fmt.Errorf("its Describe did not return a manifest: %w", err)
	}
	// The digest pins the artifact, not the folder it sits in: one copied
	// under another connector's name must not answer for it.
	if described.Name != installed.Name || described.Version != installed.Version {
		return fmt.Errorf("the %s is connector %s@%s", artifact, described.Name, described.Version)
	}
	if d := manifest.Diff(installed, &described); d != "" {
		return fmt.Errorf("its %s differs from what the connector describes: %s", catalog.ManifestFile, d)
	}
	return nil
}
