//go:build !wasip1

package connector

import (
	"os"

	"github.com/hashicorp/go-hclog"
)

// newLogger logs hclog JSON on stderr, which a Relay host re-logs line by
// line under the connector's name.
func newLogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: os.Stderr, JSONFormat: true, Level: hclog.Info})
}
