package docs_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/relayhq/relay/marketplace/template"
	"github.com/relayhq/relay/sdk/manifest"
)

// templates.md's example is a template Relay reads, the same as the
// package's own golden file, and its summary is the one Relay makes of it
// against a status page connector.
func TestTemplatesExample(t *testing.T) {
	blocks := jsonBlocks(t, section(t, "templates.md", "## The format"))
	if len(blocks) != 1 {
		t.Fatalf("templates.md's format section has %d JSON examples, want 1", len(blocks))
	}
	tpl, err := template.Parse([]byte(blocks[0]))
	if err != nil {
		t.Fatalf("templates.md's example: %v", err)
	}
	golden, err := os.ReadFile("../marketplace/template/testdata/valid/incident-kit.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSpace(golden), []byte(strings.TrimSpace(blocks[0]))) {
		t.Error("templates.md's example differs from marketplace/template/testdata/valid/incident-kit.json")
	}
	m, err := manifest.Parse([]byte(`{"name": "statuspage", "version": "0.1.3", "runtime": "wasm", "protocol": 1, "title": "Status page",
	  "config_schema": {"type": "object", "properties": {"base_url": {"type": "string"}, "api_token": {"type": "string", "x-relay-secret": true}},
	    "required": ["base_url", "api_token"]},
	  "actions": [{"name": "open_incident", "title": "Open", "side_effect": "write", "output_schema": {},
	    "input_schema": {"type": "object", "properties": {"title": {"type": "string"}, "message": {"type": "string"}, "component": {"type": "string"}},
	      "required": ["title", "message"]}}],
	  "egress": ["*"]}`))
	if err != nil {
		t.Fatal(err)
	}
	manifests := map[string]*manifest.Manifest{"statuspage": m}
	if err := tpl.Check(manifests); err != nil {
		t.Fatal(err)
	}
	summary := jsonBlocks(t, section(t, "templates.md", "## The permission summary"))
	if len(summary) != 1 {
		t.Fatalf("templates.md's summary section has %d JSON examples, want 1", len(summary))
	}
	var doc, made any
	if err := json.Unmarshal([]byte(summary[0]), &doc); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(tpl.Summarize(manifests))
	_ = json.Unmarshal(data, &made)
	a, _ := json.Marshal(doc)
	b, _ := json.Marshal(made)
	if !bytes.Equal(a, b) {
		t.Errorf("templates.md's summary\n%s\nRelay's\n%s", a, b)
	}
}

// jsonBlocks returns the text of each ```json block of a section.
func jsonBlocks(t *testing.T, text string) []string {
	t.Helper()
	var out []string
	var cur *strings.Builder
	for line := range strings.Lines(text) {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```json":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	return out
}
