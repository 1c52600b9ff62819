// Command webhook is the webhook connector as a native plugin binary.
package main

import (
	"github.com/relayhq/relay/plugins/webhook"
	"github.com/relayhq/relay/sdk/connector"
)

func main() { connector.Serve(webhook.New()) }
