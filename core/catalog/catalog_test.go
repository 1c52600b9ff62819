package catalog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/catalog/catalogtest"
)

func writeVersion(t *testing.T, dir, name, version, manifest string, files ...string) {
	t.Helper()
	vdir := filepath.Join(dir, name, version)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vdir, catalog.ManifestFile), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(files); i += 2 {
		if err := os.WriteFile(filepath.Join(vdir, files[i]), []byte(files[i+1]), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func manifestFor(name, version string) string {
	return `{"name":"` + name + `","version":"` + version + `","runtime":"native","protocol":1,"title":"T",
	"actions":[{"name":"a","title":"A","input_schema":{"type":"object"},"output_schema":{},"side_effect":"none"}]}`
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	echoDir := catalogtest.Build(t, dir, "github.com/relayhq/relay/plugins/echo/cmd/echo")
	digest := strings.Repeat("ab", 32)
	for _, v := range []string{"1.2.0", "1.10.0", "1.9.3", "2.0.0-beta.1"} {
		writeVersion(t, dir, "multi", v, manifestFor("multi", v), "connector", "#!", "connector.sha256", digest+"  connector\n")
	}
	// Each of these is skipped and reported, and spoils nothing else.
	writeVersion(t, dir, "broken", "1.0.0", `{"name":"broken"`)
	writeVersion(t, dir, "renamed", "1.0.0", manifestFor("other", "1.0.0"), "connector", "#!", "connector.sha256", digest)
	writeVersion(t, dir, "nodigest", "1.0.0", manifestFor("nodigest", "1.0.0"), "connector", "#!")
	writeVersion(t, dir, "baddigest", "1.0.0", manifestFor("baddigest", "1.0.0"), "connector", "#!", "connector.sha256", "xyz")
	writeVersion(t, dir, "nobinary", "1.0.0", manifestFor("nobinary", "1.0.0"), "connector.sha256", digest)

	c, problems := catalog.Load(dir)
	if len(problems) != 5 {
		t.Fatalf("%d problems, want 5: %v", len(problems), problems)
	}
	var got []string
	for _, e := range c.List() {
		got = append(got, e.Ref.String())
	}
	want := "echo@1.0.0 multi@2.0.0-beta.1 multi@1.10.0 multi@1.9.3 multi@1.2.0"
	if strings.Join(got, " ") != want {
		t.Fatalf("List = %v, want %s", got, want)
	}
	e, err := c.Get(core.ConnectorRef{Name: "echo", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Native == nil || e.Native.Path != filepath.Join(echoDir, "connector") || len(e.Native.SHA256) != 32 {
		t.Fatalf("echo's artifact: %+v", e.Native)
	}
	if e.Manifest.Action("echo") == nil {
		t.Fatal("echo's manifest has no echo action")
	}
	if _, err := c.Get(core.ConnectorRef{Name: "echo", Version: "9.9.9"}); core.ErrorCode(err) != core.ENotFound {
		t.Fatalf("unknown version: %v", err)
	}
}

func TestLoadMissingDir(t *testing.T) {
	c, problems := catalog.Load(filepath.Join(t.TempDir(), "none"))
	if len(problems) != 0 || len(c.List()) != 0 {
		t.Fatalf("a missing dir: %v, %v", c.List(), problems)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	digest := strings.Repeat("ab", 32)
	for _, v := range []string{"1.2.0", "1.10.0", "1.9.3", "2.0.0-beta.1", "0.9.0"} {
		writeVersion(t, dir, "multi", v, manifestFor("multi", v), "connector", "#!", "connector.sha256", digest)
	}
	c, problems := catalog.Load(dir)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for constraint, want := range map[string]string{
		"":              "1.10.0",
		"^1.2":          "1.10.0",
		"~1.9":          "1.9.3",
		"1.2.0":         "1.2.0",
		"<1":            "0.9.0",
		">=2.0.0-beta":  "2.0.0-beta.1",
		">=1.0, <1.9.3": "1.2.0",
	} {
		e, err := c.Resolve("multi", constraint)
		if err != nil || e.Ref.Version != want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", constraint, e, err, want)
		}
	}
	for constraint, code := range map[string]string{"^3": core.ENotFound, "not a version": core.EInvalid} {
		if _, err := c.Resolve("multi", constraint); core.ErrorCode(err) != code {
			t.Errorf("Resolve(%q): %v, want %s", constraint, err, code)
		}
	}
	if _, err := c.Resolve("nope", ""); core.ErrorCode(err) != core.ENotFound {
		t.Errorf("unknown connector: %v", err)
	}
}

// Built-ins (Relay's own packages) are every workspace's under their
// short names, newest first, and take their names from the connectors
// dir, saying so.
func TestAddBuiltins(t *testing.T) {
	dir := t.TempDir()
	digest := strings.Repeat("ab", 32)
	writeVersion(t, dir, "echo", "0.9.0", manifestFor("echo", "0.9.0"), "connector", "#!", "connector.sha256", digest)
	writeVersion(t, dir, "local", "1.0.0", manifestFor("local", "1.0.0"), "connector", "#!", "connector.sha256", digest)
	c, problems := catalog.Load(dir)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	files := func(pkg, name, version string) *core.ConnectorFiles {
		return &core.ConnectorFiles{Ref: core.ConnectorRef{Name: pkg, Version: version}, Dir: "/cache/" + version,
			Manifest: []byte(manifestFor(name, version)),
			Native:   &core.ArtifactFile{Path: "/cache/" + version + "/native/connector", SHA256: make([]byte, 32)}}
	}
	problems = c.AddBuiltins([]*core.ConnectorFiles{
		files("relay/echo", "echo", "1.0.0"),
		files("relay/echo", "echo", "1.1.0"),
		files("relay/smtp", "webhook", "1.0.0"), // a manifest of another name
	})
	if len(problems) != 2 || !strings.Contains(problems[0].Error()+problems[1].Error(), "echo@0.9.0") {
		t.Fatalf("problems %v: want the shadowed echo@0.9.0 and the misnamed smtp", problems)
	}
	var got []string
	for _, e := range c.List() {
		got = append(got, e.Ref.String()+"("+e.Builtin+")")
	}
	if want := "echo@1.1.0(relay/echo) echo@1.0.0(relay/echo) local@1.0.0()"; strings.Join(got, " ") != want {
		t.Fatalf("List = %v, want %s", got, want)
	}
	e, err := c.Get(core.ConnectorRef{Name: "echo", Version: "1.0.0"})
	if err != nil || e.Native.Path != "/cache/1.0.0/native/connector" || e.Package != "" {
		t.Fatalf("Get(echo@1.0.0) = %+v, %v", e, err)
	}
	if _, err := c.Get(core.ConnectorRef{Name: "echo", Version: "0.9.0"}); core.ErrorCode(err) != core.ENotFound {
		t.Fatalf("the shadowed version: %v", err)
	}
	if e, err := c.Resolve("echo", "^1.0"); err != nil || e.Ref.Version != "1.1.0" {
		t.Fatalf("Resolve(echo, ^1.0) = %v, %v", e, err)
	}
	if len(c.Versions("smtp")) != 0 {
		t.Fatal("the misnamed smtp was loaded")
	}
}
