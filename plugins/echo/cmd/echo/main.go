// Command echo is the echo connector as a native plugin binary.
package main

import (
	"github.com/relayhq/relay/plugins/echo"
	"github.com/relayhq/relay/sdk/connector"
)

func main() { connector.Serve(echo.New()) }
