package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/studio/studiotest"
)

// The Studio's files as the server serves them: index.html for every app
// path (never cached), hashed assets cached for a year and gzipped for a
// client that takes it, the strict CSP on each; without a build, a page
// that says how to make one.
func TestStudioServing(t *testing.T) {
	js := strings.Repeat("console.log('relay');", 100)
	files := fstest.MapFS{
		"index.html":           {Data: []byte(`<!doctype html><script type="module" src="/studio/assets/app-1a2b.js"></script>`)},
		"assets/app-1a2b.js":   {Data: []byte(js)},
		"assets/tiny-3c4d.css": {Data: []byte("a{}")},
	}
	ts := newTestServerWith(t, "", nil, func(c *Config) { c.Studio = files })
	get := func(path, encoding string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Accept-Encoding", encoding)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, path := range []string{"/studio", "/studio/", "/studio/actions/echo.echo", "/studio/runs"} {
		resp := get(path, "")
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("app-1a2b.js")) || resp.Header.Get("Cache-Control") != "no-cache" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self';") {
			t.Errorf("GET %s: %d %v %s", path, resp.StatusCode, resp.Header, body)
		}
	}
	resp := get("/studio/assets/app-1a2b.js", "br, gzip;q=0.8")
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("the asset is not gzipped: %v %v", err, resp.Header)
	}
	body, _ := io.ReadAll(zr)
	if string(body) != js || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("the asset: %v", resp.Header)
	}
	if resp := get("/studio/assets/app-1a2b.js", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent to a client that refuses it")
	}
	if resp := get("/studio/assets/tiny-3c4d.css", "gzip"); resp.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent where it makes the file larger")
	}
	if resp := get("/studio/assets/nope.js", ""); resp.StatusCode != 404 {
		t.Errorf("a missing asset: %d", resp.StatusCode)
	}

	bare := newTestServerWith(t, "", nil, nil)
	resp, err = http.Get(bare.URL + "/studio/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "make build") {
		t.Errorf("no studio: %d %s", resp.StatusCode, body)
	}
}

// TestStudio builds the Studio from source (core/studio/web) and runs its
// browser test (e2e/studio.mjs: Debian's chromium driven by
// playwright-core, axe on every page) against a real server: sign in,
// forms from schemas, preview, confirm, execute, runs going live, a double
// click that runs once, a viewer's read-only view, the CSP, no secret on
// the page. Screenshots go to $RELAY_STUDIO_SCREENSHOTS (CI keeps them).
func TestStudio(t *testing.T) {
	typeScriptBuilt(t) // the client it is built on, fresh
	dist := studiotest.Build(t)
	ts := newTestServerWith(t, echoConnectors(t), nil, func(c *Config) { c.Studio = os.DirFS(dist) })
	_, keys := ts.workspace("studio")
	const secret = "vault-token-the-page-must-never-see"
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "echo", "name": "echo"})
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "vault", "name": "vault", "secrets": map[string]string{"token": secret}})
	// A workspace with 10,000 runs, for the runs list.
	busy, busyKeys := ts.workspace("busy")
	seedRuns(t, ts.Store, busy.ID, 10_000)
	out := studiotest.Run(t, "studio", "STUDIO_URL="+ts.URL, "ADMIN_KEY="+keys[core.RoleAdmin], "DEVELOPER_KEY="+keys[core.RoleDeveloper],
		"VIEWER_KEY="+keys[core.RoleViewer], "SECRET="+secret, "BUSY_KEY="+busyKeys[core.RoleViewer])
	if m := regexp.MustCompile(`figure: first page interactive (\d+) ms`).FindSubmatch(out); m == nil {
		t.Error("the test did not report the cold load's time")
	}
	if m := regexp.MustCompile(`figure: 10,000 runs, first page shown in (\d+) ms`).FindSubmatch(out); m == nil {
		t.Error("the test did not report the runs list's time")
	}
}

// seedRuns stores n succeeded runs of echo.echo in the workspace, many at
// once (the store writes them in groups).
func seedRuns(t *testing.T, st *sqlstore.Store, workspaceID string, n int) {
	t.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				now := time.Now()
				run := &core.Run{WorkspaceID: workspaceID, Action: "echo.echo", Connector: "echo", Version: "1.0.0", Runtime: "wasm",
					ConnectionID: core.NewID(), ConnectionName: "echo", KeyID: core.NewID(), Status: core.RunSucceeded,
					Params: json.RawMessage(`{"greeting":"hi"}`), Output: json.RawMessage(`{"greeting":"hi"}`),
					StartedAt: &now, FinishedAt: &now}
				if _, err := st.StartExecution(ctx, run, nil, nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
