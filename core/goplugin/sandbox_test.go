//go:build linux

package goplugin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol"
)

// attempt is what sandboxconn reports of one try.
type attempt struct {
	Error  string
	Status int
	Body   string
}

func try(t *testing.T, r *Runtime, action string, input any) attempt {
	t.Helper()
	out, err := execute(context.Background(), r, sandboxc, action, input)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	var a attempt
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("%s: %s: %v", action, out, err)
	}
	return a
}

// peers are servers on this machine that count what reaches them: a TCP
// listener on loopback, one on the machine's own private address (when it
// has one: the connection stays on the machine), and an HTTP server on
// loopback. The TCP listeners answer a line with "pong".
type peers struct {
	loopback, private string // host:port; private is "" without such an address
	web               *httptest.Server
	tcpHits, webHits  atomic.Int32
}

func startPeers(t *testing.T) *peers {
	t.Helper()
	p := &peers{}
	listen := func(addr string) string {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				p.tcpHits.Add(1)
				go func() {
					defer c.Close()
					if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
						io.WriteString(c, "pong\n")
					}
				}()
			}
		}()
		return l.Addr().String()
	}
	p.loopback = listen("127.0.0.1:0")
	if a, ok := ownPrivateAddr(); ok {
		p.private = listen(netip.AddrPortFrom(a, 0).String())
	} else {
		t.Log("this machine has no private address of its own: only loopback is tried")
	}
	p.web = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.webHits.Add(1)
		io.WriteString(w, "hello")
	}))
	t.Cleanup(p.web.Close)
	return p
}

// ownPrivateAddr is an address of this machine's own interfaces in a
// private range (a special one otherwise), never loopback: dialling it from
// the host reaches the host itself.
func ownPrivateAddr() (netip.Addr, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	var special netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
			continue
		}
		if ip.IsPrivate() {
			return ip, true
		}
		if _, ok := egress.Special(ip); ok && !special.IsValid() {
			special = ip
		}
	}
	return special, special.IsValid()
}

var loopbackAllowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

// In auto, on this machine, a connector that goes around the host gets
// nowhere, while its Fetch and its egress guard still reach what the
// policy allows, through the host. Each layer holds alone too: the
// network namespace without Landlock, and Landlock's TCP rules without
// the namespace (with the other simulated away, see simulate).
func TestSandboxKeepsTheConnectorOffTheNetwork(t *testing.T) {
	p := startPeers(t)
	for _, tc := range []struct {
		name    string
		without string
		network string
	}{
		{"namespaces and landlock", "", core.NetworkHostOnly},
		{"namespaces alone", "landlock", core.NetworkHostOnly},
		{"landlock alone", "namespaces", core.NetworkTCPRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.without != "" {
				simulate(t, tc.without)
			}
			tcp, web := p.tcpHits.Load(), p.webHits.Load()
			r, _ := newRuntime(t, Config{Sandbox: SandboxAuto, EgressAllow: loopbackAllowed})
			if tc.without != "namespaces" && !r.sandbox.namespaces || tc.without != "landlock" && !r.sandbox.landlock.ok() {
				t.Fatalf("this machine cannot sandbox: %v", r.sandbox.problems)
			}

			targets := []string{p.loopback}
			if p.private != "" {
				targets = append(targets, p.private)
			}
			for _, addr := range targets {
				if a := try(t, r, "dial", map[string]string{"address": addr}); a.Error == "" {
					t.Errorf("net.Dial reached %s", addr)
				} else {
					t.Logf("net.Dial %s: %s", addr, a.Error)
				}
			}
			if a := try(t, r, "http_get", map[string]string{"url": p.web.URL}); a.Error == "" {
				t.Errorf("net/http reached %s: %d %q", p.web.URL, a.Status, a.Body)
			}
			if n, m := p.tcpHits.Load()-tcp, p.webHits.Load()-web; n != 0 || m != 0 {
				t.Fatalf("%d connections and %d requests got through", n, m)
			}

			// The sanctioned ways go through the host, whose guard allows
			// loopback here (the operator's --egress-allow).
			if a := try(t, r, "fetch", map[string]string{"url": p.web.URL}); a.Error != "" || a.Status != 200 || a.Body != "hello" {
				t.Errorf("Fetch: %+v", a)
			}
			if a := try(t, r, "guard_dial", map[string]string{"address": p.loopback}); a.Error != "" || a.Body != "pong\n" {
				t.Errorf("the guard's DialContext: %+v", a)
			}
			// And the host's guard holds: a private address the operator
			// did not allow is refused.
			if p.private != "" {
				if a := try(t, r, "guard_dial", map[string]string{"address": p.private}); !strings.Contains(a.Error, "refused") {
					t.Errorf("the guard's DialContext to %s: %+v, want a refusal", p.private, a)
				}
				if a := try(t, r, "fetch", map[string]string{"url": "http://" + p.private + "/"}); !strings.Contains(a.Error, "refused") {
					t.Errorf("Fetch to %s: %+v, want a refusal", p.private, a)
				}
			}
			if n, m := p.tcpHits.Load()-tcp, p.webHits.Load()-web; n != 1 || m != 1 {
				t.Errorf("%d connections and %d requests through the host, want 1 and 1", n, m)
			}
			if iso := r.Isolation(sandboxc); iso.Network != tc.network || iso.Mode != "auto" {
				t.Errorf("isolation %+v", iso)
			}
		})
	}
}

// Off is what it says: the connector's code is trusted with the host's
// network.
func TestSandboxOffTrustsTheConnector(t *testing.T) {
	p := startPeers(t)
	r, logs := newRuntime(t, Config{Sandbox: SandboxOff})
	if a := try(t, r, "dial", map[string]string{"address": p.loopback}); a.Error != "" {
		t.Errorf("net.Dial: %s", a.Error)
	}
	if a := try(t, r, "http_get", map[string]string{"url": p.web.URL}); a.Error != "" || a.Body != "hello" {
		t.Errorf("net/http: %+v", a)
	}
	if !strings.Contains(logs.String(), "not sandboxed (--native-sandbox=off)") {
		t.Errorf("the log does not say the sandbox is off:\n%s", logs)
	}
	iso := r.Isolation(sandboxc)
	if iso.Network != core.NetworkOpen || iso.Filesystem != core.FilesystemOpen || len(iso.Notes) == 0 {
		t.Errorf("isolation %+v", iso)
	}
}

// The sandboxed process works in an empty directory of its own, sees no
// variable but go-plugin's, the egress exceptions and TMPDIR, and cannot
// read what the server keeps: a stand-in data dir with a master key,
// beside the connector's own folder, holding its manifest.
func TestSandboxedProcessCannotReadTheServersFiles(t *testing.T) {
	t.Setenv("RELAY_TEST_HOST_SECRET", "hunter2")
	data := t.TempDir()
	key := filepath.Join(data, "master.key")
	if err := os.WriteFile(key, []byte("the master key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, root := testCatalog(t)
	manifest := filepath.Join(root, "sandboxconn", "0.1.0", "manifest.json")

	r, _ := newRuntime(t, Config{Sandbox: SandboxAuto})
	if !r.sandbox.landlock.ok() {
		t.Fatalf("this machine has no Landlock: %v", r.sandbox.problems)
	}
	denied := []string{key, manifest, "/etc/passwd"}
	// TLS private keys live beside the CA certificates a connector may read.
	if keys, _ := filepath.Glob("/etc/ssl/private/*"); len(keys) > 0 {
		denied = append(denied, keys[0])
	}
	for _, path := range denied {
		a := try(t, r, "read_file", map[string]string{"path": path})
		if !strings.Contains(a.Error, "permission denied") {
			t.Errorf("reading %s: %+v, want permission denied", path, a)
		}
	}
	// What a connector may need still reads: the CA certificates.
	if a := try(t, r, "read_file", map[string]string{"path": "/etc/ssl/certs/ca-certificates.crt"}); a.Error != "" && !strings.Contains(a.Error, "no such file") {
		t.Errorf("reading the CA certificates: %s", a.Error)
	}

	out, err := execute(context.Background(), r, sandboxc, "self", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var self struct {
		Dir     string
		Entries []string
		Env     []string
	}
	if err := json.Unmarshal(out, &self); err != nil {
		t.Fatal(err)
	}
	if len(self.Entries) != 0 || !strings.HasPrefix(filepath.Base(filepath.Dir(self.Dir)), "relay-connector-") {
		t.Errorf("working directory %s holds %v", self.Dir, self.Entries)
	}
	for _, kv := range self.Env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == protocol.EnvEgressAllow, k == protocol.Handshake.MagicCookieKey, strings.HasPrefix(k, "PLUGIN_"):
		case k == "TMPDIR" && strings.HasPrefix(v, filepath.Dir(self.Dir)):
		default:
			t.Errorf("the plugin sees %s", kv)
		}
	}
	iso := r.Isolation(sandboxc)
	if iso.Filesystem != core.FilesystemRestricted {
		t.Errorf("isolation %+v", iso)
	}

	// The private directory goes with the process.
	r.Close()
	if _, err := os.Stat(filepath.Dir(self.Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the private directory is left behind: %v", err)
	}
}

// simulate makes the kernel probes fail, as they do on a host without
// user namespaces, Landlock, or ("both") either, for the test's duration.
// Nothing else changes: the runtime believes the probes.
func simulate(t *testing.T, without string) {
	ns, ll := probeNamespaces, probeLandlock
	if without == "namespaces" || without == "both" {
		probeNamespaces = func() error { return errors.New("simulated: this kernel refuses user namespaces") }
	}
	if without == "landlock" || without == "both" {
		probeLandlock = func() landlockSupport { return landlockSupport{missing: "simulated: this kernel has no Landlock"} }
	}
	t.Cleanup(func() { probeNamespaces, probeLandlock = ns, ll })
}

func TestSandboxRequiredRefusesWhatItCannotSandbox(t *testing.T) {
	simulate(t, "both")
	r, logs := newRuntime(t, Config{Sandbox: SandboxRequired})
	if !strings.Contains(logs.String(), "native connectors will not start") || !strings.Contains(logs.String(), "simulated: this kernel refuses user namespaces") {
		t.Errorf("the start-up log does not say it cannot sandbox:\n%s", logs)
	}
	for range 3 { // each call the same, not a backoff
		_, err := execute(context.Background(), r, sandboxc, "self", map[string]any{})
		wantCode(t, err, core.EConnectorUnavailable, "sandboxconn@0.1.0 was not started", "--native-sandbox=required", "refuses user namespaces")
	}
	if strings.Contains(logs.String(), "starting plugin") {
		t.Errorf("a process was started:\n%s", logs)
	}
	if iso := r.Isolation(sandboxc); iso.Network != core.NetworkOpen || !strings.Contains(strings.Join(iso.Notes, "; "), "not started") {
		t.Errorf("isolation %+v", iso)
	}
}

// In auto, a host that cannot sandbox runs connectors as before, and says
// so at start and in the API.
func TestSandboxAutoRunsUnsandboxedWhereItCannot(t *testing.T) {
	simulate(t, "both")
	p := startPeers(t)
	r, logs := newRuntime(t, Config{})
	if !strings.Contains(logs.String(), "only partly sandboxed") {
		t.Errorf("the start-up log does not say it cannot sandbox:\n%s", logs)
	}
	if a := try(t, r, "dial", map[string]string{"address": p.loopback}); a.Error != "" {
		t.Errorf("net.Dial: %s", a.Error)
	}
	iso := r.Isolation(sandboxc)
	if iso.Network != core.NetworkOpen || iso.Filesystem != core.FilesystemOpen || len(iso.Notes) != 2 {
		t.Errorf("isolation %+v", iso)
	}
}

// A connector whose SDK predates Connector.OpenHost still runs in the
// sandbox, without a network; the log and the API say why.
func TestSandboxRunsAConnectorThatPredatesTheHostNetwork(t *testing.T) {
	r, logs := newRuntime(t, Config{Sandbox: SandboxAuto})
	if pid := pidOf(t, r, rawconn); pid == 0 {
		t.Fatal("no pid")
	}
	if !strings.Contains(logs.String(), "does not take the host's network (its SDK predates it)") {
		t.Errorf("the log does not say it:\n%s", logs)
	}
	iso := r.Isolation(rawconn)
	if notes := strings.Join(iso.Notes, "; "); !strings.Contains(notes, "no network") {
		t.Errorf("isolation %+v", iso)
	}
	if iso := r.Isolation(sandboxc); len(iso.Notes) != 0 {
		t.Errorf("another version's isolation: %+v", iso)
	}
}

func ExampleParseSandboxMode() {
	for _, s := range []string{"", "required", "sometimes"} {
		m, err := ParseSandboxMode(s)
		fmt.Println(m, err)
	}
	// Output:
	// auto <nil>
	// required <nil>
	//  --native-sandbox "sometimes": want auto, required or off
}
