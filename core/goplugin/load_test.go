package goplugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
)

// PoolStats follows real plugin processes: calls in flight on one process
// shared by a version, the wait for its start, a crash that leaves the
// version without a process, and a second version.
func TestPoolStats(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	if got := r.PoolStats(); got != (core.PoolStats{Runtime: core.RuntimeNative}) {
		t.Fatalf("before any call: %+v", got)
	}

	// Three calls that sleep until they are cancelled: the first starts
	// the process, which all three share.
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := execute(ctx, r, testconn, "sleep", map[string]any{"ms": 60_000})
			errs <- err
		}()
	}
	eventually(t, "3 calls are in flight", func() bool { return r.PoolStats().InFlight == 3 })
	if got := r.PoolStats(); got.InUse != 1 || got.Limit != 1 || got.Waiting != 0 || got.Waited <= 0 {
		t.Errorf("3 calls on one process: %+v, want 1 in use of 1, none waiting, some time waited for the start", got)
	}
	cancel()
	for range 3 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled call: %v", err)
		}
	}
	if got := r.PoolStats(); got.InFlight != 0 || got.InUse != 1 {
		t.Errorf("after the calls: %+v, want none in flight and the process still up", got)
	}

	// A process that exits is no longer in use; its version still counts.
	_, err := execute(context.Background(), r, testconn, "exit", map[string]any{})
	wantCode(t, err, core.EConnectorCrashed)
	if got := r.PoolStats(); got.InUse != 0 || got.Limit != 1 || got.InFlight != 0 {
		t.Errorf("after a crash: %+v, want 0 in use of 1", got)
	}

	// Each version has a process of its own.
	pidOf(t, r, testconn)
	if _, err := execute(context.Background(), r, echoRef, "echo", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if got := r.PoolStats(); got.InUse != 2 || got.Limit != 2 {
		t.Errorf("two versions called: %+v, want 2 in use of 2", got)
	}

	r.Close()
	if got := r.PoolStats(); got.InUse != 0 || got.InFlight != 0 || got.Waiting != 0 {
		t.Errorf("after Close: %+v, want nothing in use", got)
	}
}

// A call waiting for its version's process to start (here, for the end
// of a crash loop's backoff) is waiting until it gets one or gives up.
func TestPoolStatsWaitingForStart(t *testing.T) {
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
	for range 2 { // the first restart is immediate
		_, err := execute(context.Background(), r, testconn, "pid", map[string]any{})
		wantCode(t, err, core.EConnectorUnavailable, "could not be started")
	}
	before := r.PoolStats()

	// Without a deadline, the next call waits out the backoff.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := execute(ctx, r, testconn, "pid", map[string]any{})
		done <- err
	}()
	eventually(t, "a call is waiting", func() bool { return r.PoolStats().Waiting == 1 })
	const waited = 50 * time.Millisecond
	time.Sleep(waited)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the waiting call, cancelled: %v", err)
	}
	got := r.PoolStats()
	if got.Waiting != 0 || got.InFlight != 0 || got.InUse != 0 || got.Limit != 1 {
		t.Errorf("after it gave up: %+v, want nothing waiting or in use, 1 version", got)
	}
	if d := got.Waited - before.Waited; d < waited {
		t.Errorf("waited %s, want at least %s", d, waited)
	}
}
