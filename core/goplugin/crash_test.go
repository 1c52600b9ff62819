package goplugin

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

	_, err := execute(context.Background(), r, testconn, "panic", map[string]any{})
	wantCode(t, err, core.EConnectorCrashed,
		"connector testconn@0.1.0 crashed during action panic: panic: testconn: deliberate panic for the crash test")

	if got := pidOf(t, r, testconn); got == pid {
		t.Errorf("the next call went to the crashed process %d", pid)
	}
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
	wantCode(t, err, core.EConnectorUnavailable, "restarting after 2 failures", "1h0m0s", "panic: testconn")
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
	r, _ := newRuntime(t, Config{Lookup: cat.Get})

	for range 2 { // and again at the next start
		_, err = execute(context.Background(), r, testconn, "pid", map[string]any{})
		wantCode(t, err, core.EConnectorUnavailable, "testconn@0.1.0", "checksum mismatch")
	}

	marks, _ := filepath.Glob(filepath.Join(dir, "testconn", "0.1.0", "started-*"))
	if len(marks) > 0 {
		t.Errorf("the binary ran: %v", marks)
	}
	binary := filepath.Join(dir, "testconn", "0.1.0", catalog.NativeFile)
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range procs {
		if target, _ := os.Readlink(exe); target == binary {
			t.Errorf("process %s runs the binary", filepath.Dir(exe))
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
	host.Env = append(os.Environ(), hostCatalogEnv+"="+root)
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
