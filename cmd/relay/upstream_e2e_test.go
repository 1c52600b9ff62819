//go:build linux

package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry/relaypkg"
)

var registryKeyRE = regexp.MustCompile(`"public_key":"([^"]+)"`)

// TestInstallFromAnotherRegistry runs two servers on loopback: A, a
// `relay serve` process, is the registry; B installs from it
// (--registry-url, --registry-key). A is killed with SIGKILL while B
// downloads a package from it, and B keeps nothing of it: no lock entry,
// no unpacked folder, no blob, no version, no actions. Once A is back, the
// same install succeeds and B runs the connector.
func TestInstallFromAnotherRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs servers and connectors")
	}
	bin := buildRelay(t)
	pkg := vaultPackages(t, "1.0.0")["1.0.0"]
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			a := crashEnv{bin: bin, connectors: t.TempDir(), dataDir: t.TempDir()}
			bCfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir()}
			if db.Name != "sqlite" {
				a.databaseURL, bCfg.DatabaseURL = db.URL(t), db.URL(t)
			}
			as := a.start(t, "")
			key := registryKeyRE.FindStringSubmatch(as.stdout.String())
			if key == nil {
				t.Fatalf("A logs no registry key:\n%s", as.stdout.String())
			}
			if _, err := relaypkg.ParsePublicKey(key[1]); err != nil {
				t.Fatalf("A's registry key %q: %v", key[1], err)
			}
			ha := &httpClient{t: t, base: as.url}
			pub, priv, _ := minisign.GenerateKey(nil)
			var reg struct{ Token string }
			ha.json("POST", "/v1/registry/publishers", keyRE.FindString(as.stdout.String()),
				map[string]string{"name": "acme", "public_key": relaypkg.PublicKeyLine(pub)}, 201, &reg)
			ha.publish(reg.Token, pkg, priv)

			link := newPausingLink(t, strings.TrimPrefix(as.url, "http://"))
			bCfg.RegistryURL, bCfg.RegistryKey = "http://"+link.addr(), key[1]
			b, banner := startMain(t, bCfg, io.Discard)
			hb := &httpClient{t: t, base: b.URL()}
			admin := keyRE.FindString(banner)

			// The download stops after its first MiB; A dies there.
			link.pauseAfter(1 << 20)
			answered := make(chan *http.Response, 1)
			go func() {
				req, _ := http.NewRequest("POST", b.URL()+"/v1/connectors/install", strings.NewReader(`{"package":"acme/vault"}`))
				req.Header.Set("Authorization", "Bearer "+admin)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
				}
				answered <- resp
			}()
			select {
			case <-link.paused:
			case resp := <-answered:
				t.Fatalf("the install answered %v before its download was half way", resp)
			case <-time.After(2 * time.Minute):
				t.Fatal("the download did not start")
			}
			as.kill()
			as.waitExit(t)
			link.resume()
			resp := <-answered
			if resp == nil {
				t.FailNow()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unavailable"`) {
				t.Fatalf("the install with its registry killed: %d %s", resp.StatusCode, body)
			}
			if n := link.downloaded(); n >= int64(len(pkg)) {
				t.Fatalf("B received %d bytes of the %d-byte package: the registry's death cut nothing (socket buffers?)", n, len(pkg))
			} else {
				t.Logf("the registry died with %d of the package's %d bytes sent: %s", n, len(pkg), body)
			}

			var lock struct{ Data []any }
			hb.json("GET", "/v1/connectors/lock", admin, nil, 200, &lock)
			if len(lock.Data) != 0 {
				t.Errorf("B's lock after the failed install: %+v", lock.Data)
			}
			for _, dir := range []string{filepath.Join(bCfg.DataDir, "packages"), filepath.Join(bCfg.DataDir, "registry", "sha256")} {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("%s holds %d entries after the failed install", dir, len(entries))
				}
			}
			for _, table := range []string{"registry_blobs", "registry_mirror", "registry_installs"} {
				var n int
				if err := b.store.DB().Get(&n, `SELECT COUNT(*) FROM `+table); err != nil || n != 0 {
					t.Errorf("%s: %d rows after the failed install (%v)", table, n, err)
				}
			}
			var actions struct {
				Data []struct{ ID, Version string }
			}
			hb.json("GET", "/v1/actions", admin, nil, 200, &actions)
			if hasAction(actions.Data, "vault.keys", "1.0.0") {
				t.Error("the failed install's actions are listed")
			}

			// A back, on the same data: the install succeeds, and B runs
			// the connector from what it downloaded.
			as = a.start(t, "")
			link.retarget(strings.TrimPrefix(as.url, "http://"))
			var inst struct{ Version, Signer string }
			hb.json("POST", "/v1/connectors/install", admin, map[string]string{"package": "acme/vault"}, 201, &inst)
			if inst.Version != "1.0.0" || inst.Signer != relaypkg.KeyID(pub.ID()) {
				t.Fatalf("installed %+v", inst)
			}
			hb.json("POST", "/v1/connections", admin, map[string]any{"connector": "vault", "name": "main",
				"secrets": map[string]string{"token": "t0ken"}}, 201, nil)
			var run struct{ Status, Version, Package string }
			hb.json("POST", "/v1/actions/vault.keys/execute", admin, map[string]any{"params": map[string]any{}}, 200, &run)
			if run.Status != "succeeded" || run.Version != "1.0.0" || run.Package != "acme/vault" {
				t.Fatalf("execute: %+v", run)
			}
			// What B keeps runs without the registry.
			as.kill()
			as.waitExit(t)
			hb.json("POST", "/v1/actions/vault.keys/execute", admin, map[string]any{"params": map[string]any{}}, 200, &run)
			if run.Status != "succeeded" {
				t.Fatalf("execute with the registry down: %+v", run)
			}
		})
	}
}

// pausingLink is a TCP relay between a server and its registry, the
// network between them. Its connections to the registry take in little at
// a time (a 64 KiB receive buffer), so that the registry's writes wait on
// it; armed with pauseAfter, it stops passing the registry's bytes on once
// that many have passed (signalling paused) until resume.
type pausingLink struct {
	t  *testing.T
	ln net.Listener

	mu       sync.Mutex
	target   string
	limit    int64 // 0: not armed
	passed   int64 // the registry's bytes passed on since armed
	paused   chan struct{}
	resumed  chan struct{}
	isPaused bool
}

func newPausingLink(t *testing.T, target string) *pausingLink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &pausingLink{t: t, ln: ln, target: target, paused: make(chan struct{}), resumed: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go l.accept()
	return l
}

func (l *pausingLink) addr() string { return l.ln.Addr().String() }

func (l *pausingLink) retarget(target string) {
	l.mu.Lock()
	l.target = target
	l.mu.Unlock()
}

func (l *pausingLink) pauseAfter(n int64) {
	l.mu.Lock()
	l.limit, l.passed = n, 0
	l.mu.Unlock()
}

func (l *pausingLink) resume() { close(l.resumed) }

func (l *pausingLink) downloaded() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.passed
}

func (l *pausingLink) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		go l.relay(c)
	}
}

func (l *pausingLink) relay(c net.Conn) {
	defer c.Close()
	l.mu.Lock()
	target := l.target
	l.mu.Unlock()
	d := net.Dialer{Control: func(_, _ string, raw syscall.RawConn) error {
		var serr error
		err := raw.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	up, err := d.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		io.Copy(up, c)
		up.(*net.TCPConn).CloseWrite()
	}()
	buf := make([]byte, 16<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			l.count(int64(n))
		}
		if err != nil {
			return
		}
	}
}

// count adds n bytes passed on, and holds the link once past its limit
// until resume.
func (l *pausingLink) count(n int64) {
	l.mu.Lock()
	if l.limit == 0 {
		l.mu.Unlock()
		return
	}
	l.passed += n
	hold := l.passed >= l.limit && !l.isPaused
	if hold {
		l.isPaused = true
		close(l.paused)
	}
	l.mu.Unlock()
	if hold {
		<-l.resumed
	}
}
