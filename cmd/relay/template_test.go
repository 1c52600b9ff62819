package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
)

// relay template init writes a template that relay template validate
// takes, and never writes over one.
func TestTemplateInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kit")
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	if out, err := cli("template", "init", "acme/order-alerts", "--dir", dir); err != nil || !strings.Contains(out, "wrote "+filepath.Join(dir, "template.json")) {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, doc := range []string{"README.md", "CHANGELOG.md"} {
		if data, err := os.ReadFile(filepath.Join(dir, doc)); err != nil || len(data) == 0 {
			t.Errorf("init wrote no %s: %v", doc, err)
		}
	}
	// A folder's own README is kept.
	own := t.TempDir()
	if err := os.WriteFile(filepath.Join(own, "README.md"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := cli("template", "init", "acme/mine", "--dir", own); err != nil || !strings.Contains(out, "kept "+filepath.Join(own, "README.md")) {
		t.Errorf("init beside a README: %v\n%s", err, out)
	}
	if data, _ := os.ReadFile(filepath.Join(own, "README.md")); string(data) != "mine" {
		t.Error("init wrote over a README")
	}
	out, err := cli("template", "validate", filepath.Join(dir, "template.json"), "--offline", "-o", "json")
	var v struct{ Valid bool }
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || !v.Valid {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	if _, err := cli("template", "init", "acme/order-alerts", "--dir", dir); core.ErrorCode(err) != core.EConflict {
		t.Errorf("init over a template: %v", err)
	}
	if _, err := cli("template", "init", "Acme/x", "--dir", t.TempDir()); core.ErrorCode(err) != core.EInvalid {
		t.Errorf("init of a bad name: %v", err)
	}
	if _, err := cli("template", "init"); exitCode(err) != 2 {
		t.Errorf("init without a name: %v", err)
	}
	if _, err := cli("template", "validate", filepath.Join(t.TempDir(), "none.json"), "--offline"); err == nil {
		t.Error("validate of a file that is not there")
	}
}
