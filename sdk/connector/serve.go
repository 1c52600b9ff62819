//go:build !wasip1

package connector

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
)

// Serve is a connector binary's whole main. Run by a Relay host it serves
// the connector over go-plugin until the host stops it. Run by hand it
// answers two commands: `spec` prints the manifest, `version` the version.
// `spec wasm` prints the manifest of the same source built for wasip1
// (runtime wasm), which is what a connector version that ships both forms
// installs, since a module has no command line to ask.
func Serve(c *Connector) {
	runtime := manifest.RuntimeNative
	if len(os.Args) == 3 && os.Args[1] == "spec" && os.Args[2] == manifest.RuntimeWASM {
		runtime = manifest.RuntimeWASM
	}
	s, err := NewServer(c, runtime)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(os.Args) > 1 {
		switch {
		case os.Args[1] == "spec" && (len(os.Args) == 2 || runtime == manifest.RuntimeWASM):
			os.Stdout.Write(append(s.Manifest(), '\n'))
			os.Exit(0)
		case os.Args[1] == "version" && len(os.Args) == 2:
			fmt.Println(c.Version)
			os.Exit(0)
		default:
			fmt.Fprintf(os.Stderr, "usage: %s [spec [wasm] | version]\n", os.Args[0])
			os.Exit(2)
		}
	}
	go exitWithParent()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.VersionedPlugins(s.GRPC()),
		GRPCServer:       protocol.ServerOptions,
		// JSON on stderr: the host re-logs each line under the connector's name.
		Logger: s.logger,
	})
}

// operatorAllow reads the operator's egress exceptions, which the host
// passes in RELAY_EGRESS_ALLOW.
func operatorAllow() ([]netip.Prefix, error) {
	return egress.ParseAllow(os.Getenv(protocol.EnvEgressAllow))
}

// exitWithParent ends the process when the host that started it is gone,
// even if the host died without a chance to stop it (the host also asks the
// kernel for this on Linux; this covers the rest).
func exitWithParent() {
	parent := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			os.Exit(3)
		}
	}
}
