// Command smtp is the smtp connector as a native plugin binary.
package main

import (
	"github.com/relayhq/relay/plugins/smtp"
	"github.com/relayhq/relay/sdk/connector"
)

func main() { connector.Serve(smtp.New()) }
