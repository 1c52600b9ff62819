package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/core"
)

// expectLimited spends a fresh key's burst and checks that the next request
// is denied. The calls take microseconds, but a stalled machine could let a
// request refill meanwhile, so an extra allowed request only fails the test
// when less than one interval passed.
func expectLimited(t *testing.T, lim core.RateLimiter, key string, limit core.RateLimit) core.RateDecision {
	t.Helper()
	start := time.Now()
	for i := range limit.Burst {
		d := mustAllow(t, lim, key, limit)
		if !d.Allowed {
			t.Fatalf("%s: request %d of a burst of %d denied: %+v", key, i+1, limit.Burst, d)
		}
	}
	d := mustAllow(t, lim, key, limit)
	interval := time.Second / time.Duration(limit.Rate)
	if d.Allowed {
		if time.Since(start) < interval {
			t.Fatalf("%s: request %d allowed with a burst of %d: %+v", key, limit.Burst+1, limit.Burst, d)
		}
		t.Logf("%s: the burst took longer than one interval (%s); cannot check the denial", key, interval)
		return d
	}
	if d.RetryAfter <= 0 || d.RetryAfter > interval {
		t.Errorf("%s: denied with RetryAfter %s, want in (0, %s]", key, d.RetryAfter, interval)
	}
	if d.Remaining != 0 {
		t.Errorf("%s: denied with Remaining %d, want 0", key, d.Remaining)
	}
	return d
}

func TestRedisBurstThenDeny(t *testing.T) {
	rdb := newTestClient(t, testRedisOptions(t))
	lim := NewRedis(rdb, testPrefix(t, rdb))
	limit := core.RateLimit{Rate: 1, Burst: 5}

	first := mustAllow(t, lim, "ws", limit)
	// The script computes in floating point seconds, so a count can come out
	// one lower than Local's exact arithmetic.
	if !first.Allowed || first.Remaining < limit.Burst-2 || first.Remaining > limit.Burst-1 ||
		first.ResetAfter <= 0 || first.ResetAfter > time.Second || first.RetryAfter != 0 {
		t.Fatalf("first request: %+v", first)
	}
	for range limit.Burst - 1 {
		mustAllow(t, lim, "ws", limit)
	}
	d := mustAllow(t, lim, "ws", limit)
	if d.Allowed {
		t.Skip("the burst took more than a second; cannot check the denial")
	}
	if d.RetryAfter <= 0 || d.RetryAfter > time.Second || d.Remaining != 0 ||
		d.ResetAfter <= 4*time.Second || d.ResetAfter > 5*time.Second {
		t.Fatalf("request past the burst: %+v", d)
	}
}

func TestRedisKeysIndependent(t *testing.T) {
	rdb := newTestClient(t, testRedisOptions(t))
	lim := NewRedis(rdb, testPrefix(t, rdb))
	limit := core.RateLimit{Rate: 1, Burst: 3}
	expectLimited(t, lim, "ws-a", limit)
	expectLimited(t, lim, "ws-b", limit)
}

// TestRedisSharedAcrossLimiters is what Redis is for: two processes (here two
// clients and two limiters) charge one quota.
func TestRedisSharedAcrossLimiters(t *testing.T) {
	opt := testRedisOptions(t)
	rdb1, rdb2 := newTestClient(t, opt), newTestClient(t, opt)
	prefix := testPrefix(t, rdb1)
	a, b := NewRedis(rdb1, prefix), NewRedis(rdb2, prefix)
	limit := core.RateLimit{Rate: 1, Burst: 4}
	for i, lim := range []*Redis{a, b, a, b} {
		if !mustAllow(t, lim, "ws", limit).Allowed {
			t.Fatalf("request %d of the shared burst denied", i+1)
		}
	}
	if mustAllow(t, a, "ws", limit).Allowed && mustAllow(t, b, "ws", limit).Allowed {
		t.Fatal("both limiters allowed past the shared burst")
	}
}

func TestRedisKeyPrefix(t *testing.T) {
	rdb := newTestClient(t, testRedisOptions(t))
	prefix := testPrefix(t, rdb)
	mustAllow(t, NewRedis(rdb, prefix), "ws", core.RateLimit{Rate: 1, Burst: 2})
	n, err := rdb.Exists(context.Background(), "rate:"+prefix+"ws").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("no key %q in Redis", "rate:"+prefix+"ws")
	}
	if NewRedis(rdb, "").prefix != DefaultPrefix {
		t.Fatalf("empty prefix does not mean DefaultPrefix")
	}
}

func TestRedisInvalidLimit(t *testing.T) {
	rdb := newTestClient(t, testRedisOptions(t))
	lim := NewRedis(rdb, testPrefix(t, rdb))
	if _, err := lim.Allow(context.Background(), "ws", core.RateLimit{Rate: 0, Burst: 1}); core.ErrorCode(err) != core.EInvalid {
		t.Fatalf("err = %v, want %s", err, core.EInvalid)
	}
}

// TestRedisError needs no Redis: it checks that Redis on its own reports a
// failure rather than hiding it; falling back is Limiter's job.
func TestRedisError(t *testing.T) {
	rdb := newTestClient(t, &redis.Options{Addr: closedAddr(t), MaxRetries: -1})
	_, err := NewRedis(rdb, "").Allow(context.Background(), "ws", core.DefaultRateLimit)
	if err == nil {
		t.Fatal("Allow against a closed port returned no error")
	}
	if core.ErrorCode(err) != core.EInternal {
		t.Fatalf("error code %s, want %s", core.ErrorCode(err), core.EInternal)
	}
}
