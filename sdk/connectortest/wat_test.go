package connectortest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/sdk/connectortest"
	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
	"github.com/relayhq/relay/sdk/wasmhost"
	"github.com/relayhq/relay/sdk/wasmhost/wasmtest"
)

// The guest of docs/wasm-abi.md ("A guest in WebAssembly text"), written
// by hand from that page alone, beside the manifest it describes.
var watEcho = filepath.Join("testdata", "wat-echo")

// The hand-written guest passes the conformance kit, as the page says a
// guest in any language can.
func TestWATGuestConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connector.wasm")
	if err := os.WriteFile(path, wasmtest.BuildWAT(t, filepath.Join(watEcho, "echo.wat")), 0o644); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"token": "t0k3n"}
	connectortest.Run(t, connectortest.Config{
		Runtime: manifest.RuntimeWASM,
		Binary:  path,
		Fixtures: []connectortest.Fixture{
			{Action: "echo", Input: map[string]any{"message": "hello", "n": 1}, Secrets: secrets},
			{Name: "empty input", Action: "echo", Input: map[string]any{}, Secrets: secrets},
		},
	})
}

// The kit does not call relay_check_config, nor look at what preview and
// execute answer beyond their schemas: call the guest directly, on one
// instance, as the host does.
func TestWATGuestCalls(t *testing.T) {
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(watEcho, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	var logs syncBuffer
	engine, err := wasmhost.NewEngine(ctx, wasmhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(ctx)
	mod, err := engine.CompileWith(ctx, wasmtest.BuildWAT(t, filepath.Join(watEcho, "echo.wat")), wasmhost.ModuleOptions{
		Egress:   egress.New(nil, nil),
		Manifest: m,
		Logger:   hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Trace}),
	})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := mod.Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)

	t.Run("describe", func(t *testing.T) {
		resp, err := inst.Describe(ctx, &connectorv1.DescribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, resp.GetManifestJson(), raw) {
			t.Errorf("relay_describe answered\n%s\nwhich is not manifest.json", resp.GetManifestJson())
		}
	})

	t.Run("check_config", func(t *testing.T) {
		missing := []*connectorv1.FieldError{{Pointer: "/token", Message: "must not be empty"}}
		for _, c := range []struct {
			name   string
			req    *connectorv1.CheckConfigRequest
			fields []*connectorv1.FieldError // nil: the config is good
		}{
			{"token", conn(map[string]string{"token": "t0k3n"}), nil},
			{"token among others", conn(map[string]string{"a": "1", "token": "t0k3n", "z": ""}), nil},
			{"empty token", conn(map[string]string{"token": ""}), missing},
			{"no token", conn(map[string]string{"tokens": "t0k3n"}), missing},
			{"no secrets", conn(nil), missing},
			{"no connection", &connectorv1.CheckConfigRequest{}, missing},
		} {
			resp, err := inst.CheckConfig(ctx, c.req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			e := resp.GetError()
			switch {
			case c.fields == nil && e != nil:
				t.Errorf("%s: got the error %v, want none", c.name, e)
			case c.fields != nil && (e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT ||
				e.GetMessage() != "the secret token is missing" || !sameFields(e.GetFields(), c.fields)):
				t.Errorf("%s: got the error %v, want INVALID_INPUT naming /token", c.name, e)
			}
		}
	})

	t.Run("preview and execute", func(t *testing.T) {
		// Over 64 KiB, so the guest grows its memory and the lengths take
		// three-byte varints.
		big := `{"s":"` + strings.Repeat("x", 200_000) + `"}`
		for _, input := range []string{`{"a":[1,2],"b":"é"}`, `{}`, big} {
			req := &connectorv1.ActionRequest{Action: "echo", InputJson: []byte(input), Connection: conn(nil).GetConnection()}
			pv, err := inst.Preview(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"would_return":` + input + `}`; pv.GetError() != nil || string(pv.GetPreviewJson()) != want {
				t.Errorf("preview of %.40s: got %.60q, error %v; want %.60q", input, pv.GetPreviewJson(), pv.GetError(), want)
			}
			ex, err := inst.Execute(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if ex.GetError() != nil || string(ex.GetOutputJson()) != input {
				t.Errorf("execute of %.40s: got %.60q, error %v", input, ex.GetOutputJson(), ex.GetError())
			}
		}
		if !strings.Contains(logs.String(), "[DEBUG] wat-echo: answering the input") {
			t.Errorf("the log does not hold execute's relay.log line at debug:\n%s", logs.String())
		}
	})

	t.Run("unknown action", func(t *testing.T) {
		req := &connectorv1.ActionRequest{Action: "shout", InputJson: []byte(`{}`)}
		pv, err := inst.Preview(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ex, err := inst.Execute(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []*connectorv1.Error{pv.GetError(), ex.GetError()} {
			if e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_UNKNOWN_ACTION || e.GetMessage() != "no such action" {
				t.Errorf("got %v, want UNKNOWN_ACTION %q", e, "no such action")
			}
		}
	})

	if inst.Broken() {
		t.Error("the instance broke: the guest trapped")
	}
}

func conn(secrets map[string]string) *connectorv1.CheckConfigRequest {
	return &connectorv1.CheckConfigRequest{Connection: &connectorv1.Connection{Secrets: secrets}}
}

func sameFields(a, b []*connectorv1.FieldError) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetPointer() != b[i].GetPointer() || a[i].GetMessage() != b[i].GetMessage() {
			return false
		}
	}
	return true
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// syncBuffer is a bytes.Buffer that the guest's logger may write while the
// test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
