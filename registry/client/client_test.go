package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A publisher's whole path through a real registry, and the registry's
// refusals coming back with their codes.
func TestPublishAndRead(t *testing.T) {
	eachDB(t, func(t *testing.T, r *testRegistry) {
		ctx := context.Background()
		pubKey, _, _ := minisign.GenerateKey(nil)
		_, _, err := r.client(t, Config{}).RegisterPublisher(ctx, "acme", "", relaypkg.PublicKeyLine(pubKey))
		wantCode(t, err, core.EUnauthenticated) // no API key: refused before it is sent
		_, _, err = r.client(t, Config{APIKey: "rly_nope"}).RegisterPublisher(ctx, "acme", "", relaypkg.PublicKeyLine(pubKey))
		wantCode(t, err, core.EUnauthenticated)
		_, _, err = r.client(t, Config{APIKey: r.AdminKey}).RegisterPublisher(ctx, "relay", "", relaypkg.PublicKeyLine(pubKey))
		wantCode(t, err, core.EConflict)

		acme, key := r.publisher(t, "acme")
		data, sig := pack(t, "acme/notes", "0.1.0", randomBytes(700<<10), key)
		if len(data) <= 512<<10 {
			t.Fatalf("the package has %d bytes; the test wants several parts", len(data))
		}
		v, err := acme.Publish(ctx, data, sig)
		if err != nil {
			t.Fatal(err)
		}
		if v.Package != "acme/notes" || v.Version != "0.1.0" || v.SHA256 != sha256Hex(data) || v.Size != int64(len(data)) ||
			v.Signer != relaypkg.KeyID(key.ID()) || v.Signature != string(sig) || len(v.Capabilities.Actions) != 1 {
			t.Fatalf("published %+v", v)
		}
		_, err = acme.Publish(ctx, data, sig)
		wantCode(t, err, core.EConflict)

		_, err = r.client(t, Config{Token: "rpt_nope"}).Publish(ctx, data, sig)
		wantCode(t, err, core.EUnauthenticated)
		_, err = r.client(t, Config{}).Publish(ctx, data, sig)
		wantCode(t, err, core.EUnauthenticated)
		_, err = acme.Publish(ctx, []byte("not a package"), sig)
		wantCode(t, err, core.EPackageCorrupt)
		other, _ := pack(t, "other/notes", "0.1.0", nil, key)
		_, err = acme.Publish(ctx, other, sig)
		wantCode(t, err, core.EForbidden)

		// A key the publisher does not have signs nothing, until it is
		// added; the old one, revoked, signs nothing more.
		newPub, newKey, _ := minisign.GenerateKey(nil)
		data2, sig2 := pack(t, "acme/notes", "0.2.0", nil, newKey)
		_, err = acme.Publish(ctx, data2, sig2)
		wantCode(t, err, core.ESignerUnknown)
		pubFile, _ := newPub.MarshalText() // a minisign .pub file, comment line and all
		k, err := acme.AddKey(ctx, "acme", string(pubFile))
		if err != nil || k.ID != relaypkg.KeyID(newKey.ID()) {
			t.Fatalf("add key: %+v %v", k, err)
		}
		if v2, err := acme.Publish(ctx, data2, sig2); err != nil || v2.Signer != k.ID {
			t.Fatalf("publish with the new key: %+v %v", v2, err)
		}
		if err := acme.RevokeKey(ctx, "acme", relaypkg.KeyID(key.ID())); err != nil {
			t.Fatal(err)
		}
		data3, sig3 := pack(t, "acme/notes", "0.3.0", nil, key)
		_, err = acme.Publish(ctx, data3, sig3)
		wantCode(t, err, core.ESignerRevoked)
		wantCode(t, acme.RevokeKey(ctx, "acme", k.ID), core.EConflict)
		wantCode(t, acme.RevokeKey(ctx, "other", k.ID), core.EForbidden)
		p, err := r.client(t, Config{}).Publisher(ctx, "acme")
		if err != nil || len(p.Keys) != 2 || p.Keys[0].RevokedAt == nil || p.Keys[1].RevokedAt != nil {
			t.Fatalf("publisher %+v %v", p, err)
		}

		wantCode(t, acme.Yank(ctx, "acme/notes", "0.1.0", ""), core.EInvalid)
		if err := acme.Yank(ctx, "acme/notes", "0.1.0", "loses notes"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, acme.Yank(ctx, "acme/notes", "0.1.0", "again"), core.ENotFound)
		wantCode(t, acme.Yank(ctx, "acme/notes", "1.0", "no such version"), core.EInvalid)
		if err := acme.Deprecate(ctx, "acme/notes", "use acme/notebook"); err != nil {
			t.Fatal(err)
		}

		reader := r.client(t, Config{})
		pkg, err := reader.Package(ctx, "acme/notes")
		if err != nil {
			t.Fatal(err)
		}
		if pkg.Latest != "0.2.0" || pkg.Deprecated != "use acme/notebook" || len(pkg.Versions) != 2 || pkg.Versions[0].Version != "0.2.0" ||
			pkg.Versions[1].Yanked == nil || pkg.Versions[1].Yanked.Reason != "loses notes" || pkg.Capabilities == nil {
			t.Fatalf("package %+v", pkg)
		}
		if v, err := reader.Version(ctx, "acme/notes", "0.1.0"); err != nil || v.Yanked == nil || v.Deprecated == "" {
			t.Fatalf("version %+v %v", v, err)
		}
		_, err = reader.Package(ctx, "acme/none")
		wantCode(t, err, core.ENotFound)
		_, err = reader.Package(ctx, "../keys")
		wantCode(t, err, core.EInvalid)

		page, err := reader.Search(ctx, SearchOptions{Query: "NOTE"})
		if err != nil || len(page.Data) != 1 || page.Data[0].Name != "acme/notes" || page.NextCursor != "" {
			t.Fatalf("search: %+v %v", page, err)
		}
		if page, err := reader.Search(ctx, SearchOptions{Publisher: "nobody"}); err != nil || len(page.Data) != 0 {
			t.Fatalf("search of another publisher: %+v %v", page, err)
		}
		_, err = reader.Search(ctx, SearchOptions{Limit: 1000})
		wantCode(t, err, core.EInvalid)

		d, err := reader.Download(ctx, "acme/notes", "0.2.0", "")
		if err != nil || !bytes.Equal(d.Data, data2) || d.Package.Index.String() != "acme/notes@0.2.0" || d.Version.SHA256 != sha256Hex(data2) {
			t.Fatalf("download: %v", err)
		}
		if err := relaypkg.Verify(newPub, d.Package.IndexBytes, []byte(d.Version.Signature)); err != nil {
			t.Fatalf("the downloaded package's signature: %v", err)
		}
	})
}

// tamper changes the blob of a published package in the registry's
// storage: its file on SQLite, its row on PostgreSQL.
func (r *testRegistry) tamper(t *testing.T, sum string, change func([]byte) []byte) {
	t.Helper()
	if r.BlobDir != "" {
		path := filepath.Join(r.BlobDir, "sha256", sum)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, 0o600)
		if err := os.WriteFile(path, change(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	db := r.Store.DB()
	var data []byte
	if err := db.Get(&data, db.Rebind(`SELECT data FROM registry_blobs WHERE sha256 = ?`), sum); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(db.Rebind(`UPDATE registry_blobs SET data = ? WHERE sha256 = ?`), change(data), sum); err != nil {
		t.Fatal(err)
	}
}

// A download whose bytes are not the ones published is refused, however
// they changed, and so is a version whose digest is not the one the
// caller trusts.
func TestDownloadRefusesTampered(t *testing.T) {
	eachDB(t, func(t *testing.T, r *testRegistry) {
		ctx := context.Background()
		acme, key := r.publisher(t, "acme")
		data, sig := pack(t, "acme/notes", "0.1.0", randomBytes(100<<10), key)
		v, err := acme.Publish(ctx, data, sig)
		if err != nil {
			t.Fatal(err)
		}
		reader := r.client(t, Config{})
		if _, err := reader.Download(ctx, "acme/notes", "0.1.0", v.SHA256); err != nil {
			t.Fatal(err)
		}
		_, err = reader.Download(ctx, "acme/notes", "0.1.0", sha256Hex([]byte("another package")))
		wantCode(t, err, core.EPackageTampered)

		r.tamper(t, v.SHA256, func(b []byte) []byte {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0x20
			return b
		})
		_, err = reader.Download(ctx, "acme/notes", "0.1.0", "")
		wantCode(t, err, core.EPackageTampered)
		if !strings.Contains(err.Error(), "SHA-256") {
			t.Errorf("a flipped byte is refused for %v, not its digest", err)
		}
		r.tamper(t, v.SHA256, func([]byte) []byte { return append(bytes.Clone(data), 0) })
		_, err = reader.Download(ctx, "acme/notes", "0.1.0", "")
		wantCode(t, err, core.EPackageTampered)
		r.tamper(t, v.SHA256, func([]byte) []byte { return data[:len(data)-1] })
		_, err = reader.Download(ctx, "acme/notes", "0.1.0", "")
		wantCode(t, err, core.EPackageTampered)
	})
}

// The index is trusted only with the registry's pinned key, and only as
// new as the newest seen and before its expiry.
func TestIndexVerification(t *testing.T) {
	eachDB(t, func(t *testing.T, r *testRegistry) {
		ctx := context.Background()
		acme, key := r.publisher(t, "acme")
		data, sig := pack(t, "acme/notes", "0.1.0", nil, key)
		v, err := acme.Publish(ctx, data, sig)
		if err != nil {
			t.Fatal(err)
		}
		reader := r.client(t, Config{})
		x, err := reader.Index(ctx, r.Key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if iv := x.FindVersion("acme/notes", "0.1.0"); iv == nil || iv.SHA256 != v.SHA256 || iv.Signer != v.Signer {
			t.Fatalf("the index lists %+v for the version published as %+v", iv, v)
		}
		if p := x.FindPublisher("acme"); p == nil || len(p.Keys) != 1 || p.Keys[0].ID != relaypkg.KeyID(key.ID()) {
			t.Fatalf("the index lists publisher %+v", p)
		}
		if !minisign.Verify(r.Key, x.Doc, x.Signature) {
			t.Error("the index's bytes are not the ones signed")
		}
		if _, err := reader.Index(ctx, r.Key, x.Version); err != nil {
			t.Errorf("the same version again: %v", err)
		}

		wrong, _, _ := minisign.GenerateKey(nil)
		_, err = reader.Index(ctx, wrong, 0)
		wantCode(t, err, core.ESignerUnknown)
		_, err = reader.Index(ctx, r.Key, x.Version+1)
		wantCode(t, err, core.EIndexRollback)
		later := r.client(t, Config{Now: func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }})
		_, err = later.Index(ctx, r.Key, 0)
		wantCode(t, err, core.EIndexExpired)
	})
}

// flakyNetwork is a real HTTP proxy in front of the registry that fails
// the requests fail picks, by path and attempt (1, 2, …): "502" answers
// a plain 502 of its own, "drop" passes the request on and then cuts the
// connection before the answer, "stall" answers nothing until the client
// gives up.
type flakyNetwork struct {
	*httptest.Server
	mu       sync.Mutex
	attempts map[string]int
	fail     func(path string, attempt int) string
}

func newFlakyNetwork(t *testing.T, registryURL string, fail func(path string, attempt int) string) *flakyNetwork {
	target, _ := url.Parse(registryURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	f := &flakyNetwork{attempts: map[string]int{}, fail: fail}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f.mu.Lock()
		f.attempts[req.Method+" "+req.URL.Path]++
		n := f.attempts[req.Method+" "+req.URL.Path]
		f.mu.Unlock()
		switch f.fail(req.URL.Path, n) {
		case "502":
			http.Error(w, "bad gateway", http.StatusBadGateway)
		case "drop":
			proxy.ServeHTTP(httptest.NewRecorder(), req)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
		case "stall":
			// Read whole, the request's context ends when the client
			// hangs up; a minute is the test's own bound.
			io.Copy(io.Discard, req.Body)
			select {
			case <-req.Context().Done():
			case <-time.After(time.Minute):
				t.Error("the client waited a minute for an answer")
			}
		default:
			proxy.ServeHTTP(w, req)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *flakyNetwork) count(method, path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[method+" "+path]
}

// A part that fails on the way (a 502 from a proxy, a connection cut
// after the registry stored it, no answer in time) is sent again, and the
// package published is the one sent; a refusal is not sent again, and
// retries end.
func TestUploadRetriesParts(t *testing.T) {
	eachDB(t, func(t *testing.T, r *testRegistry) {
		ctx := context.Background()
		acme, key := r.publisher(t, "acme")
		var phase atomic.Value // what the network does to parts
		phase.Store("flaky")
		modes := map[string]string{"/parts/0": "502", "/parts/1": "drop", "/parts/2": "stall"}
		flaky := newFlakyNetwork(t, r.URL, func(path string, attempt int) string {
			switch phase.Load() {
			case "flaky":
				for suffix, mode := range modes {
					if strings.HasSuffix(path, suffix) && attempt == 1 {
						return mode
					}
				}
			case "down":
				if strings.Contains(path, "/parts/") {
					return "502"
				}
			}
			return ""
		})
		// The stalled part costs the client's Timeout: long enough that a
		// part's upload on a loaded machine (race detector, a busy CI)
		// does not time out as well, which would send it a third time.
		c := r.client(t, Config{URL: flaky.URL, Token: acme.cfg.Token, RetryWait: 10 * time.Millisecond, Timeout: 5 * time.Second})
		data, sig := pack(t, "acme/notes", "0.1.0", randomBytes(1200<<10), key)
		if len(data) <= 2*512<<10 {
			t.Fatalf("the package has %d bytes; the test wants three parts", len(data))
		}
		u, err := c.Upload(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		partPath := func(id string, n int) string { return fmt.Sprintf("/v1/registry/uploads/%s/parts/%d", id, n) }
		for n := range 3 {
			if got := flaky.count(http.MethodPut, partPath(u.ID, n)); got != 2 {
				t.Errorf("part %d was sent %d times, want 2", n, got)
			}
		}
		// Publishing reads the whole package again: the default timeout.
		publisher := r.client(t, Config{URL: flaky.URL, Token: acme.cfg.Token})
		if _, err := publisher.PublishUpload(ctx, "acme/notes", u.ID, sig); err != nil {
			t.Fatal(err)
		}
		if d, err := publisher.Download(ctx, "acme/notes", "0.1.0", sha256Hex(data)); err != nil || !bytes.Equal(d.Data, data) {
			t.Fatalf("the package published is not the one sent: %v", err)
		}

		// A refusal (another publisher's upload) is not sent again.
		phase.Store("fine")
		u2, err := c.Upload(ctx, bytes.NewReader(data[:100]))
		if err != nil {
			t.Fatal(err)
		}
		other, _ := r.publisher(t, "beta")
		beta := r.client(t, Config{URL: flaky.URL, Token: other.cfg.Token, RetryWait: time.Millisecond})
		_, err = beta.putPart(ctx, u2.ID, 0, []byte("x"))
		wantCode(t, err, core.ENotFound)
		if got := flaky.count(http.MethodPut, partPath(u2.ID, 0)); got != 2 {
			t.Errorf("a refused part was sent %d times, want once", got-1)
		}

		// Retries end.
		phase.Store("down")
		few := r.client(t, Config{URL: flaky.URL, Token: acme.cfg.Token, RetryWait: time.Millisecond, Retries: 2})
		_, err = few.Upload(ctx, bytes.NewReader(data))
		wantCode(t, err, core.EUnavailable)
		if !strings.Contains(err.Error(), "sent 3 times") {
			t.Errorf("after its retries: %v", err)
		}
	})
}
