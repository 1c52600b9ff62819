// Command broken is a connector that breaks the protocol's promises on
// purpose, each in a way the conformance kit must report: `spec` and
// `version` disagree with Describe, preview writes a file, execute's output
// misses a required field, an action has no fixture, the unknown-action
// error has no code and invalid-input errors name no field. Its test also
// passes a secret in the fixture's Config instead of its Secrets.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/hashicorp/go-plugin"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Config of a connection.
type Config struct {
	Token string `json:"token" relay:"secret"`
}

// Input of the write action.
type Input struct {
	Path string `json:"path"`
}

var previews atomic.Int64

func main() {
	c := &connector.Connector{
		Name: "broken", Version: "1.0.0", Title: "Broken", Config: Config{},
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{
				Name: "write", Title: "Write", SideEffect: connector.Write,
				OutputSchema: json.RawMessage(`{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}`),
			}, func(_ context.Context, req connector.Request[Input]) (any, error) {
				// A side effect in preview.
				name := filepath.Join(os.Getenv("BROKEN_SINK"), fmt.Sprintf("preview-%d", previews.Add(1)))
				return map[string]string{"wrote": name}, os.WriteFile(name, nil, 0o644)
			}, func(_ context.Context, req connector.Request[Input]) (map[string]any, error) {
				return map[string]any{"path": req.Input.Path}, nil // no "id"
			}),
			connector.NewAction(connector.ActionSpec{Name: "untested", Title: "Untested", SideEffect: connector.None},
				nil, func(context.Context, connector.Request[struct{}]) (struct{}, error) { return struct{}{}, nil }),
		},
	}
	s, err := connector.NewServer(c, manifest.RuntimeNative)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "spec":
			var m map[string]any
			_ = json.Unmarshal(s.Manifest(), &m)
			m["title"] = "Not what Describe says"
			out, _ := json.Marshal(m)
			fmt.Println(string(out))
		case "version":
			fmt.Println("0.0.1")
		}
		return
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.VersionedPlugins(&server{s.GRPC()}),
		GRPCServer:       protocol.ServerOptions,
	})
}

// server spoils the SDK's answers.
type server struct{ connectorv1.ConnectorServer }

func (s *server) Preview(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.PreviewResponse, error) {
	r, err := s.ConnectorServer.Preview(ctx, req)
	if r != nil {
		r.Error = spoil(r.Error)
	}
	return r, err
}

func (s *server) Execute(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.ExecuteResponse, error) {
	r, err := s.ConnectorServer.Execute(ctx, req)
	if r != nil {
		r.Error = spoil(r.Error)
	}
	return r, err
}

func spoil(e *connectorv1.Error) *connectorv1.Error {
	switch e.GetCode() {
	case connectorv1.ErrorCode_ERROR_CODE_UNKNOWN_ACTION:
		e.Code = connectorv1.ErrorCode_ERROR_CODE_UNSPECIFIED
	case connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT:
		e.Fields = nil
	}
	return e
}
