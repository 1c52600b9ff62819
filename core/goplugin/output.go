package goplugin

import (
	"bytes"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core/catalog"
)

// Bounds on what is kept of a plugin's raw stderr.
const (
	tailLines    = 64
	tailLineSize = 4 << 10
	logTailLines = 10 // lines of the tail logged with a crash that left no panic line
)

// stderrTail keeps the last lines a plugin wrote to stderr, and the first
// line of a Go panic or fatal error, which may have scrolled out of the tail
// behind a long goroutine dump by the time the call sees the crash.
type stderrTail struct {
	mu      sync.Mutex
	lines   [tailLines]string
	n       int // lines written in all
	partial []byte
	panic   string
}

func newStderrTail() *stderrTail { return &stderrTail{} }

// Write takes stderr in any pieces: go-plugin writes each line, and its
// newline, separately.
func (t *stderrTail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		chunk, rest, complete := bytes.Cut(b, []byte{'\n'})
		if room := tailLineSize - len(t.partial); room > 0 {
			t.partial = append(t.partial, chunk[:min(room, len(chunk))]...)
		}
		if !complete {
			break
		}
		t.commit()
		b = rest
	}
	return n, nil
}

func (t *stderrTail) commit() {
	line := string(bytes.TrimRight(t.partial, "\r"))
	t.partial = t.partial[:0]
	if t.panic == "" && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		t.panic = line
	}
	t.lines[t.n%tailLines] = line
	t.n++
}

// panicLine returns the first line of the plugin's panic, or "".
func (t *stderrTail) panicLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.panic
}

// logArgs returns the last few lines as hclog arguments, for a log entry
// about a process that ended or would not start. A panic is in the log
// already: go-plugin logs it at error level line by line.
func (t *stderrTail) logArgs() []any {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.panic != "" || t.n == 0 {
		return nil
	}
	first := max(t.n-logTailLines, 0)
	var out []string
	for i := first; i < t.n; i++ {
		out = append(out, t.lines[i%tailLines])
	}
	return []any{"stderr", strings.Join(out, "\n")}
}

// lineLogger logs what a plugin writes to os.Stdout and os.Stderr once it is
// serving: go-plugin's server swaps both for pipes that it streams to the
// host, which would otherwise drop them.
type lineLogger struct {
	log    hclog.Logger
	stream string

	mu      sync.Mutex
	partial []byte
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		chunk, rest, complete := bytes.Cut(b, []byte{'\n'})
		if room := tailLineSize - len(l.partial); room > 0 {
			l.partial = append(l.partial, chunk[:min(room, len(chunk))]...)
		}
		if !complete {
			break
		}
		l.log.Info(string(l.partial), "stream", l.stream)
		l.partial = l.partial[:0]
		b = rest
	}
	return n, nil
}

// pluginLogger is the logger handed to go-plugin. go-plugin re-logs the
// plugin's stderr under Named(<binary file name>), and every binary in the
// catalog is called "connector"; dropping that name leaves the plugin's
// lines under the connector's own, name@version.
type pluginLogger struct{ hclog.Logger }

func (l pluginLogger) Named(name string) hclog.Logger {
	if name == catalog.NativeFile {
		return l.Logger
	}
	return l.Logger.Named(name)
}
