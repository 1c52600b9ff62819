package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// fakeClock is a clock that moves only when a test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustAllow(t testing.TB, lim core.RateLimiter, key string, limit core.RateLimit) core.RateDecision {
	t.Helper()
	d, err := lim.Allow(context.Background(), key, limit)
	if err != nil {
		t.Fatalf("Allow(%q, %+v): %v", key, limit, err)
	}
	return d
}

func TestLocalBurstThenDeny(t *testing.T) {
	for _, limit := range []core.RateLimit{
		{Rate: 1, Burst: 1},
		{Rate: 10, Burst: 5},
		{Rate: 3, Burst: 7}, // an interval that is not a whole number of nanoseconds
		core.DefaultRateLimit,
		{Rate: 1_000_000, Burst: 1_000},
		{Rate: 1, Burst: 100_000},
	} {
		t.Run(fmt.Sprintf("%d/s burst %d", limit.Rate, limit.Burst), func(t *testing.T) {
			clock := newFakeClock()
			lim := newLocal(clock.Now)
			interval := time.Second / time.Duration(limit.Rate)

			for i := range limit.Burst {
				d := mustAllow(t, lim, "ws", limit)
				want := core.RateDecision{
					Allowed:    true,
					Remaining:  limit.Burst - 1 - i,
					ResetAfter: time.Duration(i+1) * interval,
				}
				if d != want {
					t.Fatalf("request %d: got %+v, want %+v", i+1, d, want)
				}
			}
			want := core.RateDecision{
				Allowed:    false,
				Remaining:  0,
				RetryAfter: interval,
				ResetAfter: time.Duration(limit.Burst) * interval,
			}
			for range 3 { // a denied request costs nothing, so the answer repeats
				if d := mustAllow(t, lim, "ws", limit); d != want {
					t.Fatalf("request %d: got %+v, want %+v", limit.Burst+1, d, want)
				}
			}
		})
	}
}

// TestLocalSequence walks one key through drain, partial and full refill,
// checking every field against values worked out by hand.
func TestLocalSequence(t *testing.T) {
	limit := core.RateLimit{Rate: 10, Burst: 3} // one request per 100ms
	ms := time.Millisecond
	steps := []struct {
		advance time.Duration
		want    core.RateDecision
	}{
		{0, core.RateDecision{Allowed: true, Remaining: 2, ResetAfter: 100 * ms}},
		{0, core.RateDecision{Allowed: true, Remaining: 1, ResetAfter: 200 * ms}},
		{0, core.RateDecision{Allowed: true, Remaining: 0, ResetAfter: 300 * ms}},
		{0, core.RateDecision{Allowed: false, RetryAfter: 100 * ms, ResetAfter: 300 * ms}},
		{40 * ms, core.RateDecision{Allowed: false, RetryAfter: 60 * ms, ResetAfter: 260 * ms}},
		{59 * ms, core.RateDecision{Allowed: false, RetryAfter: 1 * ms, ResetAfter: 201 * ms}},
		// 100ms after the burst exactly one request has come back.
		{1 * ms, core.RateDecision{Allowed: true, Remaining: 0, ResetAfter: 300 * ms}},
		{0, core.RateDecision{Allowed: false, RetryAfter: 100 * ms, ResetAfter: 300 * ms}},
		// 250ms later two and a half have: two can be spent at once.
		{250 * ms, core.RateDecision{Allowed: true, Remaining: 1, ResetAfter: 150 * ms}},
		{0, core.RateDecision{Allowed: true, Remaining: 0, ResetAfter: 250 * ms}},
		{0, core.RateDecision{Allowed: false, RetryAfter: 50 * ms, ResetAfter: 250 * ms}},
		// Idle for much longer than the burst takes to refill: only the
		// burst is available, not the idle time's worth.
		{time.Hour, core.RateDecision{Allowed: true, Remaining: 2, ResetAfter: 100 * ms}},
	}
	clock := newFakeClock()
	lim := newLocal(clock.Now)
	for i, s := range steps {
		clock.Advance(s.advance)
		if d := mustAllow(t, lim, "ws", limit); d != s.want {
			t.Fatalf("step %d (+%s): got %+v, want %+v", i, s.advance, d, s.want)
		}
	}
}

func TestLocalRefill(t *testing.T) {
	limit := core.RateLimit{Rate: 2, Burst: 4}
	clock := newFakeClock()
	lim := newLocal(clock.Now)
	for range limit.Burst {
		mustAllow(t, lim, "ws", limit)
	}
	d := mustAllow(t, lim, "ws", limit)
	if d.Allowed {
		t.Fatal("request past the burst allowed")
	}
	clock.Advance(d.RetryAfter - time.Nanosecond)
	if mustAllow(t, lim, "ws", limit).Allowed {
		t.Fatal("allowed before RetryAfter passed")
	}
	clock.Advance(time.Nanosecond)
	if !mustAllow(t, lim, "ws", limit).Allowed {
		t.Fatal("denied once RetryAfter passed")
	}

	// After ResetAfter the whole burst is back.
	d = mustAllow(t, lim, "ws", limit)
	clock.Advance(d.ResetAfter)
	for i := range limit.Burst {
		if !mustAllow(t, lim, "ws", limit).Allowed {
			t.Fatalf("request %d of the refilled burst denied", i+1)
		}
	}
}

func TestLocalKeysIndependent(t *testing.T) {
	limit := core.RateLimit{Rate: 1, Burst: 5}
	lim := newLocal(newFakeClock().Now)
	for range limit.Burst + 10 {
		mustAllow(t, lim, "ws-a", limit)
	}
	for i := range limit.Burst {
		if d := mustAllow(t, lim, "ws-b", limit); !d.Allowed || d.Remaining != limit.Burst-1-i {
			t.Fatalf("ws-b request %d after ws-a drained: %+v", i+1, d)
		}
	}
	if mustAllow(t, lim, "ws-a", limit).Allowed {
		t.Fatal("ws-a allowed again after ws-b used its quota")
	}
}

func TestLocalInvalidLimit(t *testing.T) {
	lim := NewLocal()
	for _, limit := range []core.RateLimit{{}, {Rate: 0, Burst: 1}, {Rate: 1, Burst: 0}, {Rate: -1, Burst: 1}} {
		if _, err := lim.Allow(context.Background(), "ws", limit); core.ErrorCode(err) != core.EInvalid {
			t.Errorf("Allow with %+v: err = %v, want %s", limit, err, core.EInvalid)
		}
	}
}

// TestLocalSweepBoundsMemory uses a new key for every request, each one
// replenished by the time the next arrives, as a scan over many workspaces
// or a stream of forged keys would. The map must stay small.
func TestLocalSweepBoundsMemory(t *testing.T) {
	limit := core.RateLimit{Rate: 10, Burst: 2}
	clock := newFakeClock()
	lim := newLocal(clock.Now)
	maxSize := 0
	for i := range 20 * minSweepSize {
		d := mustAllow(t, lim, fmt.Sprintf("ws-%d", i), limit)
		maxSize = max(maxSize, lim.size())
		clock.Advance(d.ResetAfter)
	}
	if maxSize > minSweepSize {
		t.Fatalf("map grew to %d keys, want at most %d", maxSize, minSweepSize)
	}
}

// TestLocalSweepKeepsLiveKeys checks that sweeping only forgets keys whose
// bucket is full: a drained key must stay drained however many others come.
func TestLocalSweepKeepsLiveKeys(t *testing.T) {
	limit := core.RateLimit{Rate: 1, Burst: 2}
	clock := newFakeClock()
	lim := newLocal(clock.Now)
	for range limit.Burst {
		mustAllow(t, lim, "hot", limit)
	}
	n := 3 * minSweepSize // enough to sweep more than once
	for i := range n {
		mustAllow(t, lim, fmt.Sprintf("ws-%d", i), limit)
	}
	if got := lim.size(); got != n+1 {
		t.Fatalf("size = %d after %d live keys, want %d: a live key was dropped", got, n+1, n+1)
	}
	if mustAllow(t, lim, "hot", limit).Allowed {
		t.Fatal("drained key allowed again after a sweep")
	}

	// Once they are all replenished, the next sweep forgets them.
	clock.Advance(time.Duration(limit.Burst) * time.Second)
	for i := range 2 * minSweepSize {
		mustAllow(t, lim, fmt.Sprintf("new-%d", i), limit)
	}
	if got := lim.size(); got > 2*minSweepSize {
		t.Fatalf("size = %d, want at most %d once the old keys are replenished", got, 2*minSweepSize)
	}
}

// TestLocalConcurrent hammers one key from many goroutines with the clock
// frozen: exactly Burst requests may pass, however they interleave.
func TestLocalConcurrent(t *testing.T) {
	limit := core.RateLimit{Rate: 1, Burst: 100}
	lim := newLocal(newFakeClock().Now)
	const goroutines, perGoroutine = 64, 100
	var shared, own atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				if mustAllow(t, lim, "shared", limit).Allowed {
					shared.Add(1)
				}
				// A new key per request stays within its burst, and the
				// insertions make the map sweep while others use it.
				if mustAllow(t, lim, fmt.Sprintf("own-%d-%d", g, i), limit).Allowed {
					own.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := shared.Load(); got != int64(limit.Burst) {
		t.Errorf("shared key: %d requests allowed, want exactly %d", got, limit.Burst)
	}
	if got := own.Load(); got != goroutines*perGoroutine {
		t.Errorf("own keys: %d requests allowed, want all %d", got, goroutines*perGoroutine)
	}
}
