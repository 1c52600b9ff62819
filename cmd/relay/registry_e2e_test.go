package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// TestRegistryOverHTTP is a publisher's path through a real server's
// registry, on SQLite and PostgreSQL: register with an admin key, upload
// a signed package in parts with the publisher's token, publish it, and
// read it back, downloaded byte for byte and listed in an index that the
// minisign tool verifies with the registry's key.
func TestRegistryOverHTTP(t *testing.T) {
	tool, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatalf("the minisign tool is needed: apt-get install minisign (%v)", err)
	}
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir()}
			if db.Name != "sqlite" {
				cfg.DatabaseURL = db.URL(t)
			}
			m, banner := startMain(t, cfg, io.Discard)
			base := m.URL()
			admin := keyRE.FindString(banner)
			call := func(method, path, auth string, body io.Reader, contentType string) (int, []byte) {
				t.Helper()
				req, _ := http.NewRequest(method, base+path, body)
				if auth != "" {
					req.Header.Set("Authorization", "Bearer "+auth)
				}
				if contentType != "" {
					req.Header.Set("Content-Type", contentType)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, data
			}
			jsonBody := func(v any) io.Reader { b, _ := json.Marshal(v); return bytes.NewReader(b) }

			pub, priv, _ := minisign.GenerateKey(nil)
			status, body := call("POST", "/v1/registry/publishers", admin, jsonBody(map[string]string{
				"name": "acme", "public_key": relaypkg.PublicKeyLine(pub)}), "application/json")
			var reg struct{ Token string }
			json.Unmarshal(body, &reg)
			if status != http.StatusCreated || !strings.HasPrefix(reg.Token, "rpt_") {
				t.Fatalf("register: %d %s", status, body)
			}
			if status, _ := call("POST", "/v1/registry/uploads", admin, nil, ""); status != http.StatusUnauthorized {
				t.Errorf("an API key for a publisher's token: %d", status)
			}

			pkg, index, err := relaypkg.PackBytes("acme/notes", map[string][]byte{
				relaypkg.ManifestPath: []byte(`{"name": "notes", "version": "0.1.0", "runtime": "wasm", "protocol": 1, "title": "Notes",
					"actions": [{"name": "add", "title": "Add", "side_effect": "write", "input_schema": {"type": "object"}, "output_schema": true}]}`),
				relaypkg.WASMPath:    append([]byte("\x00asm\x01\x00\x00\x00"), randomBytes(700<<10)...), // over one part, compressed
				relaypkg.ReadmePath:  []byte("# Notes"),
				relaypkg.LicensePath: []byte("MIT"),
			})
			if err != nil {
				t.Fatal(err)
			}
			sig, _ := relaypkg.Sign(priv, index)

			status, body = call("POST", "/v1/registry/uploads", reg.Token, nil, "")
			var up struct{ ID string }
			json.Unmarshal(body, &up)
			if status != http.StatusCreated {
				t.Fatalf("start upload: %d %s", status, body)
			}
			parts := 0
			for i := 0; i < len(pkg); i += 512 << 10 {
				part := pkg[i:min(i+512<<10, len(pkg))]
				if status, body := call("PUT", fmt.Sprintf("/v1/registry/uploads/%s/parts/%d", up.ID, parts), reg.Token, bytes.NewReader(part), "application/octet-stream"); status != http.StatusOK {
					t.Fatalf("part %d: %d %s", parts, status, body)
				}
				parts++
			}
			if parts < 2 {
				t.Fatalf("the package fit in %d part; the test wants several", parts)
			}
			status, body = call("POST", "/v1/registry/packages/acme/notes/versions", reg.Token,
				jsonBody(map[string]string{"upload": up.ID, "signature": string(sig)}), "application/json")
			if status != http.StatusCreated {
				t.Fatalf("publish: %d %s", status, body)
			}

			if status, body := call("GET", "/v1/registry/packages?q=note", "", nil, ""); status != http.StatusOK || !strings.Contains(string(body), `"latest":"0.1.0"`) {
				t.Errorf("search: %d %s", status, body)
			}
			status, got := call("GET", "/v1/registry/packages/acme/notes/versions/0.1.0/download", "", nil, "")
			if status != http.StatusOK || !bytes.Equal(got, pkg) {
				t.Fatalf("download: %d, %d bytes of %d", status, len(got), len(pkg))
			}
			_, doc := call("GET", "/v1/registry/index", "", nil, "")
			_, docSig := call("GET", "/v1/registry/index.minisig", "", nil, "")
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "index.json"), doc, 0o644)
			os.WriteFile(filepath.Join(dir, "index.json.minisig"), docSig, 0o644)
			out, err := exec.Command(tool, "-V", "-P", relaypkg.PublicKeyLine(m.registry.PublicKey()), "-m", filepath.Join(dir, "index.json")).CombinedOutput()
			if err != nil || !strings.Contains(string(doc), `"acme/notes"`) {
				t.Fatalf("minisign -V of the index: %v\n%s\n%s", err, out, doc)
			}
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
