package echo_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/relayhq/relay/plugins/echo"
	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/connectortest"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Echo passes the conformance kit in both forms, built from one source: a
// real plugin process and a real WASM module.
func TestConformance(t *testing.T) {
	for _, runtime := range []string{manifest.RuntimeNative, manifest.RuntimeWASM} {
		t.Run(runtime, func(t *testing.T) {
			connectortest.Run(t, connectortest.Config{
				Runtime: runtime,
				Package: "github.com/relayhq/relay/plugins/echo/cmd/echo",
				Fixtures: []connectortest.Fixture{
					{Action: "echo", Input: map[string]any{"hello": "world", "n": 1, "nested": map[string]any{"list": []int{1, 2}}}},
					{Name: "empty object", Action: "echo", Input: json.RawMessage(`{}`)},
				},
			})
		})
	}
}

// Echo's output is its input, byte for byte once compacted.
func TestEchoReturnsItsInput(t *testing.T) {
	s, err := connector.NewServer(echo.New(), manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	in := `{"a":[1,2.5,"x",null,true],"b":{"c":"ü"}}`
	resp, err := s.Execute(context.Background(), &connectorv1.ActionRequest{Action: "echo", InputJson: []byte(in)})
	if err != nil || resp.GetError() != nil {
		t.Fatalf("execute: %v %v", err, resp.GetError())
	}
	if got := string(resp.GetOutputJson()); got != in {
		t.Errorf("output %s, want %s", got, in)
	}
}
