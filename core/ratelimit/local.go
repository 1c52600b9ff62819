package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/relayhq/relay/core"
)

var _ core.RateLimiter = (*Local)(nil)

// minSweepSize is the map size below which Local never sweeps: a few
// thousand stale entries cost less than walking the map for them.
const minSweepSize = 4096

// Local is an in-process GCRA limiter. Its decisions match those of
// redis_rate's script for one request, so a process that falls back from
// Redis to Local keeps the same quota semantics. The zero value is not
// usable; call NewLocal. Safe for concurrent use.
type Local struct {
	// now is the clock; tests replace it to step time by hand.
	now func() time.Time
	// epoch anchors theoretical arrival times. They are kept as offsets from
	// it, so that with the real clock they come from the monotonic reading
	// and a step of the wall clock (NTP, a VM resume) does not refill or
	// drain every bucket at once.
	epoch time.Time

	mu sync.Mutex
	// tat maps a key to its theoretical arrival time (offset from epoch):
	// when the bucket will be full again. A key absent from the map is full.
	tat map[string]time.Duration
	// sweepAt is the map size at which the next insertion sweeps out the
	// keys that are full again.
	sweepAt int
}

// NewLocal returns an empty in-process limiter.
func NewLocal() *Local {
	return newLocal(time.Now)
}

func newLocal(now func() time.Time) *Local {
	return &Local{
		now:     now,
		epoch:   now(),
		tat:     make(map[string]time.Duration),
		sweepAt: minSweepSize,
	}
}

// Allow charges one request to key under limit. With Rate r and Burst b, a
// key that has not been used for b/r seconds allows b requests at once and
// then one every 1/r seconds. A denied request costs nothing. It returns an
// EInvalid error only when limit is out of range.
func (l *Local) Allow(_ context.Context, key string, limit core.RateLimit) (core.RateDecision, error) {
	if err := limit.Validate(); err != nil {
		return core.RateDecision{}, err
	}
	// Integer nanoseconds keep the arithmetic exact: a fresh key gets exactly
	// Burst requests whatever the rate. For a rate that does not divide 1e9
	// the interval is at most 1ns short, which is far below any clock's
	// resolution.
	interval := time.Second / time.Duration(limit.Rate)
	burstOffset := interval * time.Duration(limit.Burst)

	l.mu.Lock()
	defer l.mu.Unlock()

	now := l.now().Sub(l.epoch)
	tat, ok := l.tat[key]
	if !ok || tat < now {
		// A bucket that is full stays full: time spent idle is not saved up
		// beyond the burst.
		tat = now
	}
	newTAT := tat + interval
	allowAt := newTAT - burstOffset
	if now < allowAt {
		return core.RateDecision{
			Allowed:    false,
			Remaining:  0,
			RetryAfter: allowAt - now,
			ResetAfter: tat - now,
		}, nil
	}

	l.tat[key] = newTAT
	if !ok && len(l.tat) >= l.sweepAt {
		l.sweep(now)
	}
	return core.RateDecision{
		Allowed:    true,
		Remaining:  int((now - allowAt) / interval),
		ResetAfter: newTAT - now,
	}, nil
}

// sweep drops the keys whose bucket is full again, which is the same as
// forgetting them, so memory follows the keys in use rather than every key
// ever seen. Only insertions that reach sweepAt sweep, and sweepAt then
// doubles past what survived, so the cost per request stays constant. The map
// is rebuilt rather than pruned in place because a Go map never gives back
// the memory of deleted entries. Called with l.mu held.
func (l *Local) sweep(now time.Duration) {
	live := make(map[string]time.Duration, len(l.tat)/2)
	for k, tat := range l.tat {
		if tat > now {
			live[k] = tat
		}
	}
	l.tat = live
	l.sweepAt = max(minSweepSize, 2*len(live))
}

// size reports how many keys Local holds; for tests.
func (l *Local) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tat)
}
