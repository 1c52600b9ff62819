package smtp_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/sdk/manifest"
)

// TestBinary builds the plugin binary and checks what it prints when run by
// hand: `spec` (a valid manifest) and `version`.
func TestBinary(t *testing.T) {
	vdir := catalogtest.Build(t, t.TempDir(), "github.com/relayhq/relay/plugins/smtp/cmd/smtp")
	if filepath.Base(vdir) != "1.0.0" || filepath.Base(filepath.Dir(vdir)) != "smtp" {
		t.Errorf("installed under %s", vdir)
	}
	spec, err := os.ReadFile(filepath.Join(vdir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(spec)
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	if m.Name != "smtp" || m.Version != "1.0.0" || m.Runtime != manifest.RuntimeNative {
		t.Errorf("manifest %s@%s %s", m.Name, m.Version, m.Runtime)
	}
	if got := m.SecretFields(); len(got) != 1 || got[0] != "password" {
		t.Errorf("secret fields %v", got)
	}
	if a := m.Action("send_email"); a == nil || a.SideEffect != manifest.SideEffectWrite || a.Idempotent || a.NeedsConfirmation() {
		t.Errorf("send_email: %+v", a)
	}
	out, err := exec.Command(filepath.Join(vdir, "connector"), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "1.0.0" {
		t.Errorf("version printed %q", out)
	}
}
