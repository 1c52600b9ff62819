// Package studiotest builds the Studio from source and runs its browser
// tests (core/studio/web/e2e) for Go tests.
package studiotest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Web is the Studio's source folder.
func Web() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "web")
}

var build struct {
	once sync.Once
	dir  string
	err  error
}

// Build type-checks the Studio and builds it with vite, once per test
// process, into a folder it returns; a test serves it with os.DirFS. It
// fails the test when node, the Studio's tools (npm ci in core/studio/web)
// or the build fail.
func Build(t testing.TB) string {
	t.Helper()
	web := Web()
	bin := filepath.Join(web, "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(bin, "vite")); err != nil {
		t.Fatalf("the Studio's tools are not installed: run `npm ci` in %s (make test and .ci/run do): %v", web, err)
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "relay-studio-")
		if build.err != nil {
			return
		}
		for _, step := range [][]string{{"tsc", "--noEmit", "-p", "."}, {"vite", "build", "--logLevel", "warn", "--outDir", build.dir, "--emptyOutDir"}} {
			cmd := exec.Command(filepath.Join(bin, step[0]), step[1:]...)
			cmd.Dir = web
			if out, err := cmd.CombinedOutput(); err != nil {
				build.err = fmt.Errorf("%s: %v\n%s", strings.Join(step, " "), err, out)
				return
			}
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.dir
}

// Run runs the browser test e2e/NAME.mjs in Debian's chromium with env
// (NAME=value) and the CHROMIUM and SCREENSHOTS it needs: screenshots go
// to $RELAY_STUDIO_SCREENSHOTS when it is set (CI keeps them). It logs
// what the script printed and fails the test when the script does.
func Run(t testing.TB, name string, env ...string) []byte {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node (20.19 or later) runs the Studio's browser tests: %v", err)
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("Debian's chromium runs the Studio's browser tests (apt-get install chromium; .ci/run does): %v", err)
	}
	shots := os.Getenv("RELAY_STUDIO_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join("e2e", name+".mjs"))
	cmd.Dir = Web()
	cmd.Env = append(append(os.Environ(), "CHROMIUM="+browser, "SCREENSHOTS="+shots), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("e2e/%s.mjs:\n%s", name, out)
	if err != nil {
		t.Fatalf("the Studio's browser test %s failed: %v", name, err)
	}
	return out
}
