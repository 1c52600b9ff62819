// Command rawconn is a misbehaving connector for the goplugin tests. It
// serves go-plugin directly, without the SDK's Serve: it has no cap on what
// it sends, and no watch on its parent, so only the kernel's parent-death
// signal ends it when its host dies. Nor does it know Connector.OpenHost,
// as a connector built with an SDK from before it does not.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

type empty struct{}

type server struct{ connectorv1.ConnectorServer }

// Execute answers "overflow" with more than the message limit, past the
// SDK's own check.
func (s server) Execute(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.ExecuteResponse, error) {
	if req.GetAction() == "overflow" {
		out := `{"data":"` + strings.Repeat("x", protocol.MaxMessageSize+1024) + `"}`
		return &connectorv1.ExecuteResponse{OutputJson: []byte(out)}, nil
	}
	return s.ConnectorServer.Execute(ctx, req)
}

// OpenHost answers as the generated code of an SDK without OpenHost does.
func (server) OpenHost(context.Context, *connectorv1.OpenHostRequest) (*connectorv1.OpenHostResponse, error) {
	return nil, status.Error(codes.Unimplemented, "method OpenHost not implemented")
}

func main() {
	spec := func(name string) connector.ActionSpec {
		return connector.ActionSpec{Name: name, Title: name, SideEffect: connector.None}
	}
	s, err := connector.NewServer(&connector.Connector{
		Name: "rawconn", Version: "0.1.0", Title: "Raw test connector",
		Egress: []string{"api.example.com"}, // so that a sandbox offers it the host's network
		Actions: []connector.Action{
			connector.NewAction(spec("pid"), nil, func(context.Context, connector.Request[empty]) (map[string]int, error) {
				return map[string]int{"pid": os.Getpid()}, nil
			}),
			connector.NewAction(spec("overflow"), nil, func(context.Context, connector.Request[empty]) (empty, error) {
				return empty{}, nil // served by server.Execute
			}),
		},
	}, manifest.RuntimeNative)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(os.Args) > 1 {
		os.Stdout.Write(append(s.Manifest(), '\n'))
		return
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.VersionedPlugins(server{s.GRPC()}),
		GRPCServer:       plugin.DefaultGRPCServer, // no send cap, unlike protocol.ServerOptions
	})
}
