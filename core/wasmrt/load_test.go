package wasmrt_test

import (
	"context"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/wasmrt"
)

// PoolStats follows real instances: its limit is the pool size of each
// loaded version, calls holding an instance are in use, and a caller
// beyond the pool's size waits until one is free.
func TestPoolStats(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, wasmrt.Config{PoolSize: 2})
	if got := r.PoolStats(); got != (core.PoolStats{Runtime: core.RuntimeWASM}) {
		t.Fatalf("before any call: %+v", got)
	}
	if _, err := r.Execute(ctx, misbehave, call("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
	before := r.PoolStats()
	if before.Limit != 2 || before.InUse != 0 || before.InFlight != 0 || before.Waiting != 0 {
		t.Fatalf("one version loaded, idle: %+v, want 0 in use of 2", before)
	}

	// Two calls hold both instances: the runtime calls Begin once it has
	// one, and these return only when released.
	release := make(chan struct{})
	errs := make(chan error, 3)
	for range 2 {
		c := call("echo", `{}`)
		c.Begin = func() error { <-release; return nil }
		go func() {
			_, err := r.Execute(ctx, misbehave, c)
			errs <- err
		}()
	}
	poll(t, "both instances are in use", func() bool { got := r.PoolStats(); return got.InUse == 2 && got.InFlight == 2 })
	// A third waits for one of them.
	go func() {
		_, err := r.Execute(ctx, misbehave, call("echo", `{}`))
		errs <- err
	}()
	poll(t, "a call is waiting", func() bool { return r.PoolStats().Waiting == 1 })
	const waited = 50 * time.Millisecond
	time.Sleep(waited)
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	after := r.PoolStats()
	if after.InUse != 0 || after.InFlight != 0 || after.Waiting != 0 || after.Limit != 2 {
		t.Errorf("once the calls ended: %+v, want 0 in use of 2", after)
	}
	if d := after.Waited - before.Waited; d < waited {
		t.Errorf("waited %s in all, want at least %s", d, waited)
	}

	// Each loaded version has a pool of its own.
	if _, err := r.Execute(ctx, watecho, call("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
	if got := r.PoolStats(); got.Limit != 4 {
		t.Errorf("two versions loaded: limit %d, want 4", got.Limit)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r.PoolStats(); got.Limit != 0 || got.InUse != 0 {
		t.Errorf("after Close: %+v, want nothing", got)
	}
}

// poll waits until cond holds, for up to ten seconds.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
