// Command echobench is plugins/echo with its version set at link time
// (-ldflags "-X main.version=1.2.3"), so that BenchmarkInstallWASM can
// publish a distinct version of a real, working module per iteration: a
// module must describe itself with the version its manifest names.
package main

import (
	"github.com/relayhq/relay/plugins/echo"
	"github.com/relayhq/relay/sdk/connector"
)

var version = echo.Version

func main() {
	c := echo.New()
	c.Version = version
	connector.Serve(c)
}
