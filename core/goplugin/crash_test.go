package goplugin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
)

func TestPanicIsReportedAndRestarted(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	pid := pidOf(t, r, testconn)

	// The call was alone on the process, so the panic can only be its own.
	_, err := execute(context.Background(), r, testconn, "panic", map[string]any{})
	e := wantCode(t, err, core.EConnectorCrashed,
		"connector testconn@0.1.0 crashed during action panic: panic: testconn: deliberate panic for the crash test (crash ")
	crashID(t, e)

	if got := pidOf(t, r, testconn); got == pid {
		t.Errorf("the next call went to the crashed process %d", pid)
	}
}

// TestCrashKeepsPanicFromOtherCalls: the process is shared by every
// workspace, so a panic line, which may carry the input or secrets of the
// call that panicked, reaches no call but one that was alone on it.
func TestCrashKeepsPanicFromOtherCalls(t *testing.T) {
	r, logs := newRuntime(t, Config{})
	pidOf(t, r, testconn)

	bystander := make(chan error, 1)
	go func() {
		_, err := r.Execute(context.Background(), testconn, core.ActionCall{
			Action: "sleep", Input: json.RawMessage(`{"ms":60000}`), WorkspaceID: "ws_bystander"})
		bystander <- err
	}()
	eventually(t, "the sleep is in flight", func() bool { return inFlight(r, testconn) == 1 })
	_, err := r.Execute(context.Background(), testconn, core.ActionCall{
		Action: "panic", Input: json.RawMessage(`{}`), WorkspaceID: "ws_panicker"})

	var ids []string
	for _, tc := range []struct {
		what string
		err  error
	}{{"panic", err}, {"sleep", <-bystander}} {
		e := wantCode(t, tc.err, core.EConnectorCrashed,
			"connector testconn@0.1.0 crashed during action "+tc.what+" (crash ", "; the operator's log has the details)")
		if strings.Contains(e.Message, "panic:") || strings.Contains(e.Message, "deliberate") {
			t.Errorf("the %s call was told the panic: %s", tc.what, e.Message)
		}
		ids = append(ids, crashID(t, e))
	}
	if ids[0] != ids[1] {
		t.Errorf("one crash has two ids: %s and %s", ids[0], ids[1])
	}
	// The operator gets the panic line with the id.
	eventually(t, "the log has the crash", func() bool {
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "crash="+ids[0]) && strings.Contains(line, "panic: testconn: deliberate panic for the crash test") {
				return true
			}
		}
		return false
	})
}

// TestCrashAfterUnansweredCallKeepsPanic: a handler the host gave up on may
// still be running in the process, so a call that is alone on it as far as
// the host knows is not told the panic either.
func TestCrashAfterUnansweredCallKeepsPanic(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	pidOf(t, r, testconn)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := execute(ctx, r, testconn, "sleep_panic", map[string]any{"ms": 1000})
	wantCode(t, err, core.EConnectorTimeout)

	_, err = execute(context.Background(), r, testconn, "sleep", map[string]any{"ms": 60_000})
	e := wantCode(t, err, core.EConnectorCrashed, "crashed during action sleep (crash ")
	if strings.Contains(e.Message, "panic") {
		t.Errorf("the next call was told the panic: %s", e.Message)
	}
}

// crashID returns the crash id in e's message.
func crashID(t *testing.T, e *core.Error) string {
	t.Helper()
	m := regexp.MustCompile(`\(crash ([^;)]*)[;)]`).FindStringSubmatch(e.Message)
	if m == nil || !core.ValidID(m[1]) {
		t.Fatalf("no crash id in %q", e.Message)
	}
	return m[1]
}

// inFlight is the number of calls on ref's live process.
func inFlight(r *Runtime, ref core.ConnectorRef) int {
	r.mu.Lock()
	s := r.slots[ref]
	r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.inflight
}

func TestExitMidCallIsReportedAndRestarted(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	pid := pidOf(t, r, testconn)

	_, err := execute(context.Background(), r, testconn, "exit", map[string]any{})
	wantCode(t, err, core.EConnectorCrashed, "connector testconn@0.1.0 crashed during action exit: exit status 7")

	if got := pidOf(t, r, testconn); got == pid {
		t.Errorf("the next call went to the exited process %d", pid)
	}
}

func TestDeathBetweenCallsIsNoticed(t *testing.T) {
	r, _ := newRuntime(t, Config{HealthInterval: time.Hour})
	pid := pidOf(t, r, testconn)
	s := r.slots[testconn]
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "go-plugin sees the exit", p.client.Exited)
	// Not a crash of this call: it gets a new process.
	if got := pidOf(t, r, testconn); got == pid {
		t.Errorf("the call went to the dead process %d", pid)
	}
}

func TestHealthCheckReplacesUnresponsivePlugin(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	r, logs := newRuntime(t, Config{HealthInterval: 100 * time.Millisecond})
	pid := pidOf(t, r, testconn)
	// A stopped process holds its connection open but answers nothing.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stopped plugin is killed", func() bool { return !alive(pid) })
	if !strings.Contains(logs.String(), "failed its health check") {
		t.Errorf("no health check failure in the log")
	}
	if got := pidOf(t, r, testconn); got == pid {
		t.Errorf("the call went to the killed process %d", pid)
	}
}

func TestRestartBackoff(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	// The second crash in a row holds restarts off for an hour.
	r.restartBase, r.restartMax = time.Hour, time.Hour
	ctx := context.Background()

	_, err := execute(ctx, r, testconn, "panic", map[string]any{})
	wantCode(t, err, core.EConnectorCrashed)
	// The first restart is immediate…
	_, err = execute(ctx, r, testconn, "panic", map[string]any{})
	wantCode(t, err, core.EConnectorCrashed)
	// …the next one is not, and a call that cannot wait for it fails now.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = execute(ctx, r, testconn, "pid", map[string]any{})
	e := wantCode(t, err, core.EConnectorUnavailable, "restarting after 2 failures", "1h0m0s", "(last failure: crashed (crash ")
	// Any workspace may see this: the panic stays in the log.
	if strings.Contains(e.Message, "panic") {
		t.Errorf("the message tells the panic: %s", e.Message)
	}
}

// TestCrashesAfterServingRestartAtOnce: a process that answered calls and
// then crashed most likely met one caller's bad input; holding the
// connector back would let that caller deny it to every workspace.
func TestCrashesAfterServingRestartAtOnce(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	r.restartBase, r.restartMax = time.Hour, time.Hour // any wait fails the calls below
	for i := range crashBurst {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := execute(ctx, r, testconn, "pid", map[string]any{})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		// A crash after serving counts for nothing; the next one, before
		// serving, is the first of a crash loop, which the next answered
		// call ends.
		for range 2 {
			_, err = execute(ctx, r, testconn, "panic", map[string]any{})
			wantCode(t, err, core.EConnectorCrashed)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := execute(ctx, r, testconn, "pid", map[string]any{}); err != nil {
		t.Fatal(err)
	}
}

// TestCrashStormIsBounded: processes that answered calls are replaced at
// once, but no more than crashBurst times in crashWindow.
func TestCrashStormIsBounded(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	r.crashBurst, r.crashWindow = 2, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 {
		pidOf(t, r, testconn)
		_, err := execute(ctx, r, testconn, "panic", map[string]any{})
		wantCode(t, err, core.EConnectorCrashed)
	}
	_, err := execute(ctx, r, testconn, "pid", map[string]any{})
	wantCode(t, err, core.EConnectorUnavailable, "testconn@0.1.0 crashed 3 times within 1h0m0s; its next start in", "(last failure: crashed (crash ")
}

// TestCrashAtStartBacksOff: a binary that will not start is a crash loop.
func TestCrashAtStartBacksOff(t *testing.T) {
	_, root := testCatalog(t)
	dir := t.TempDir()
	vdir := filepath.Join(dir, "testconn", "0.1.0")
	copyDir(t, filepath.Join(root, "testconn", "0.1.0"), vdir)
	if err := os.WriteFile(filepath.Join(vdir, "panic-at-start"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cat, _ := catalog.Load(dir)
	r, _ := newRuntime(t, Config{Lookup: cat.Get})
	r.restartBase, r.restartMax = time.Hour, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 { // the first restart is immediate
		_, err := execute(ctx, r, testconn, "pid", map[string]any{})
		wantCode(t, err, core.EConnectorUnavailable, "could not be started")
	}
	_, err := execute(ctx, r, testconn, "pid", map[string]any{})
	wantCode(t, err, core.EConnectorUnavailable, "restarting after 2 failures in a row", "1h0m0s")
}

func TestBackoffSchedule(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 0}, {1, 0}, {2, 250 * time.Millisecond}, {3, 500 * time.Millisecond}, {4, time.Second},
		{8, 16 * time.Second}, {9, 30 * time.Second}, {40, 30 * time.Second}, {1000, 30 * time.Second},
	} {
		if got := backoff(tc.failures, restartBase, restartMax); got != tc.want {
			t.Errorf("backoff(%d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
}

func TestChecksumMismatchStartsNothing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	_, root := testCatalog(t)
	dir := t.TempDir()
	copyDir(t, filepath.Join(root, "testconn", "0.1.0"), filepath.Join(dir, "testconn", "0.1.0"))
	digest := filepath.Join(dir, "testconn", "0.1.0", catalog.NativeFile+catalog.DigestSuffix)
	sum, err := os.ReadFile(digest)
	if err != nil {
		t.Fatal(err)
	}
	flip := map[byte]byte{'0': '1'}
	for c := byte('1'); c <= '9'; c++ {
		flip[c] = '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		flip[c] = '0'
	}
	sum[0] = flip[sum[0]]
	if err := os.WriteFile(digest, sum, 0o644); err != nil {
		t.Fatal(err)
	}
	cat, problems := catalog.Load(dir)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	// Sandboxed or not: unsandboxed, the binary would leave its mark in
	// its folder; either way it would show in /proc.
	for _, mode := range []SandboxMode{SandboxOff, SandboxAuto} {
		r, _ := newRuntime(t, Config{Lookup: cat.Get, Sandbox: mode})
		for range 2 { // and again at the next start
			_, err = execute(context.Background(), r, testconn, "pid", map[string]any{})
			wantCode(t, err, core.EConnectorUnavailable, "testconn@0.1.0", "checksum mismatch")
		}

		marks, _ := filepath.Glob(filepath.Join(dir, "testconn", "0.1.0", "started-*"))
		if len(marks) > 0 {
			t.Errorf("%s: the binary ran: %v", mode, marks)
		}
		binary := filepath.Join(dir, "testconn", "0.1.0", catalog.NativeFile)
		procs, _ := filepath.Glob("/proc/[0-9]*/exe")
		for _, exe := range procs {
			if target, _ := os.Readlink(exe); target == binary {
				t.Errorf("%s: process %s runs the binary", mode, filepath.Dir(exe))
			}
		}
	}
}

// TestNoPluginOutlivesKilledHost runs a host in a child process (this test
// binary, see TestMain), SIGKILLs it, and checks that its plugins die too:
// rawconn has no watch on its parent, so only Pdeathsig can end it.
func TestNoPluginOutlivesKilledHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	_, root := testCatalog(t)
	host := exec.Command(os.Args[0])
	// The sandbox's private directories of the plugins outlive a killed
	// host: make them where the test cleans up.
	host.Env = append(os.Environ(), hostCatalogEnv+"="+root, "TMPDIR="+t.TempDir())
	host.Stderr = os.Stderr
	stdout, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Process.Kill(); _ = host.Wait() })

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("the host did not report its plugins")
	}
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "pids" {
		t.Fatalf("host said %q", line)
	}
	var pids []int
	for _, f := range fields[1:] {
		pid, err := strconv.Atoi(f)
		if err != nil || !alive(pid) {
			t.Fatalf("plugin %q is not running (%v)", f, err)
		}
		pids = append(pids, pid)
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // should the test fail
	}

	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	for _, pid := range pids {
		eventually(t, fmt.Sprintf("plugin %d is gone", pid), func() bool { return !alive(pid) })
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{catalog.ManifestFile, catalog.NativeFile, catalog.NativeFile + catalog.DigestSuffix} {
		data, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStartFailures(t *testing.T) {
	_, root := testCatalog(t)
	t.Run("not executable", func(t *testing.T) { // no x bit stops root too
		dir := t.TempDir()
		vdir := filepath.Join(dir, "testconn", "0.1.0")
		copyDir(t, filepath.Join(root, "testconn", "0.1.0"), vdir)
		if err := os.Chmod(filepath.Join(vdir, catalog.NativeFile), 0o644); err != nil {
			t.Fatal(err)
		}
		cat, _ := catalog.Load(dir)
		r, _ := newRuntime(t, Config{Lookup: cat.Get})
		_, err := execute(context.Background(), r, testconn, "pid", map[string]any{})
		e := wantCode(t, err, core.EConnectorUnavailable, "could not be started: its binary could not be run: permission denied")
		if strings.Contains(e.Message, dir) {
			t.Errorf("the message names the path: %s", e.Message)
		}
	})
	t.Run("another connector's binary", func(t *testing.T) {
		dir := t.TempDir()
		vdir := filepath.Join(dir, "testconn", "0.1.0")
		copyDir(t, filepath.Join(root, "testconn", "0.1.0"), vdir)
		for _, name := range []string{catalog.NativeFile, catalog.NativeFile + catalog.DigestSuffix} {
			data, err := os.ReadFile(filepath.Join(root, "rawconn", "0.1.0", name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(vdir, name), data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cat, _ := catalog.Load(dir)
		r, _ := newRuntime(t, Config{Lookup: cat.Get})
		_, err := execute(context.Background(), r, testconn, "pid", map[string]any{})
		wantCode(t, err, core.EConnectorUnavailable, "could not be started: the binary is connector rawconn@0.1.0")
	})
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		vdir := filepath.Join(dir, "testconn", "0.1.0")
		copyDir(t, filepath.Join(root, "testconn", "0.1.0"), vdir)
		cat, _ := catalog.Load(dir)
		if err := os.Remove(filepath.Join(vdir, catalog.NativeFile)); err != nil {
			t.Fatal(err)
		}
		r, _ := newRuntime(t, Config{Lookup: cat.Get})
		_, err := execute(context.Background(), r, testconn, "pid", map[string]any{})
		wantCode(t, err, core.EConnectorUnavailable, "could not be started: its binary is missing")
	})
}

func TestStderrTail(t *testing.T) {
	tail := newStderrTail()
	// go-plugin writes each line and its newline separately.
	for _, piece := range []string{"starting", "\n", "panic: boom", "\n", "", "\n", "goroutine 1 [running]:", "\n"} {
		tail.Write([]byte(piece))
	}
	for range 2 * tailLines { // a long goroutine dump
		tail.Write([]byte("\tmain.main()\n"))
	}
	tail.Write([]byte(strings.Repeat("y", 3*tailLineSize) + "\n"))
	if got := tail.panicLine(); got != "panic: boom" {
		t.Errorf("panic line = %q", got)
	}
	if got := tail.lines[(tail.n-1)%tailLines]; len(got) != tailLineSize {
		t.Errorf("a long line is kept at %d bytes, want %d", len(got), tailLineSize)
	}

	quiet := newStderrTail()
	quiet.Write([]byte("log: config file not found\nexiting\n"))
	if args := quiet.logArgs(); len(args) != 2 || args[1] != "log: config file not found\nexiting" {
		t.Errorf("log args = %q", args)
	}
}
