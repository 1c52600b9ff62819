//go:build wasip1

package connector

import (
	"bytes"

	"github.com/hashicorp/go-hclog"
)

// newLogger logs each entry through relay.log at its level, as text
// without the time and the level, which the host's log adds.
func newLogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: hostLogWriter{}, DisableTime: true, Level: hclog.Info})
}

// hostLogWriter passes hclog's entries to relay.log.
type hostLogWriter struct{}

var _ hclog.LevelWriter = hostLogWriter{}

// Write logs text that does not come from hclog at info.
func (w hostLogWriter) Write(p []byte) (int, error) { return w.LevelWrite(hclog.Info, p) }

// LevelWrite logs one entry, one relay.log line per line of text (the ABI
// counts lines), without hclog's "[LEVEL]" prefix.
func (hostLogWriter) LevelWrite(level hclog.Level, p []byte) (int, error) {
	n := len(p)
	text := bytes.TrimRight(p, "\n")
	if bytes.HasPrefix(text, []byte("[")) {
		if _, rest, ok := bytes.Cut(text, []byte("]")); ok {
			text = bytes.TrimLeft(rest, " ")
		}
	}
	for len(text) > 0 {
		line, rest, _ := bytes.Cut(text, []byte("\n"))
		if len(line) > 0 {
			hostLog(relayLevel(level), &line[0], uint32(len(line)))
		}
		text = rest
	}
	return n, nil
}

// relayLevel maps an hclog level to relay.log's: 1 trace to 5 error.
func relayLevel(l hclog.Level) uint32 {
	switch l {
	case hclog.Trace:
		return 1
	case hclog.Debug:
		return 2
	case hclog.Warn:
		return 4
	case hclog.Error:
		return 5
	default:
		return 3
	}
}
