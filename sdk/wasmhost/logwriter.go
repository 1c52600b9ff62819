package wasmhost

import (
	"bytes"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// maxLogLine is where a guest's log line is cut.
const maxLogLine = 4 << 10

// lineWriter passes a guest's stdout or stderr to the log a line at a
// time. Like the instance it belongs to, it is used by one call at a time.
type lineWriter struct {
	log    hclog.Logger
	level  hclog.Level
	stream string
	buf    []byte
	// panics keeps the latest line that reports a panic or a fatal error
	// (Go's runtime writes one before it exits), for the crash message.
	panics    bool
	panicLine string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		j := bytes.IndexByte(p, '\n')
		if j < 0 {
			room := maxLogLine - len(w.buf)
			w.buf = append(w.buf, p[:min(len(p), max(room, 0))]...)
			break
		}
		room := maxLogLine - len(w.buf)
		w.buf = append(w.buf, p[:min(j, max(room, 0))]...)
		w.emit()
		p = p[j+1:]
	}
	return n, nil
}

func (w *lineWriter) emit() {
	line := strings.TrimRight(string(w.buf), "\r")
	w.buf = w.buf[:0]
	if line == "" {
		return
	}
	if w.panics && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		w.panicLine = line
	}
	w.log.Log(w.level, line, "stream", w.stream)
}

// flush logs a last line that did not end in a newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit()
	}
}
