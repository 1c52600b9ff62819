package ratelimit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/core"
)

// logBuffer collects a logger's output for a test to read while the limiter
// may still be writing.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines hold both the level tag and the text.
func (b *logBuffer) count(level, text string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for line := range strings.Lines(b.buf.String()) {
		if strings.Contains(line, "["+level+"]") && strings.Contains(line, text) {
			n++
		}
	}
	return n
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger(t *testing.T) (hclog.Logger, *logBuffer) {
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("limiter log:\n%s", buf)
		}
	})
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Debug}), buf
}

const (
	outageLine   = "redis unavailable"
	recoveryLine = "redis answers again"
)

func TestLimiterWithoutRedis(t *testing.T) {
	lim := New(nil, "", nil)
	expectLimited(t, lim, "ws-a", core.RateLimit{Rate: 1, Burst: 3})
	expectLimited(t, lim, "ws-b", core.RateLimit{Rate: 1, Burst: 3})
	if lim.Degraded() {
		t.Fatal("a limiter without Redis reports itself degraded")
	}
	if _, err := lim.Allow(context.Background(), "ws", core.RateLimit{}); core.ErrorCode(err) != core.EInvalid {
		t.Fatalf("zero limit: err = %v, want %s", err, core.EInvalid)
	}
}

// TestLimiterSharesQuota checks that with Redis healthy two limiters, as two
// replicas would have, charge one quota. One client honours context
// deadlines, which Limiter calls directly, and one does not.
func TestLimiterSharesQuota(t *testing.T) {
	opt := testRedisOptions(t)
	withDeadlines := *opt
	withDeadlines.ContextTimeoutEnabled = true
	rdb1, rdb2 := newTestClient(t, opt), newTestClient(t, &withDeadlines)
	prefix := testPrefix(t, rdb1)
	a, b := New(rdb1, prefix, nil), New(rdb2, prefix, nil)
	limit := core.RateLimit{Rate: 1, Burst: 4}
	for i, lim := range []*Limiter{a, b, a, b} {
		if !mustAllow(t, lim, "ws", limit).Allowed {
			t.Fatalf("request %d of the shared burst denied", i+1)
		}
	}
	if mustAllow(t, a, "ws", limit).Allowed && mustAllow(t, b, "ws", limit).Allowed {
		t.Fatal("both limiters allowed past the shared burst")
	}
	if a.Degraded() || b.Degraded() {
		t.Fatal("degraded with Redis up")
	}
}

// TestLimiterRedisStops runs a limiter through a proxy to the test Redis,
// then cuts the proxy as if Redis died, then brings it back.
func TestLimiterRedisStops(t *testing.T) {
	opt := testRedisOptions(t)
	direct := newTestClient(t, opt)
	prefix := testPrefix(t, direct)
	proxy := startProxy(t, opt.Addr)
	proxied := *opt
	proxied.Addr = proxy.addr
	logger, logs := newTestLogger(t)
	lim := New(newTestClient(t, &proxied), prefix, logger)
	lim.RetryInterval = 20 * time.Millisecond // probe often, to see that probes log nothing
	limit := core.RateLimit{Rate: 1, Burst: 5}

	// Healthy: the quota is in Redis.
	for range 2 {
		mustAllow(t, lim, "ws", limit)
	}
	if d := mustAllow(t, NewRedis(direct, prefix), "ws", limit); !d.Allowed || d.Remaining > 2 {
		t.Fatalf("Redis did not see the limiter's requests: %+v", d)
	}

	proxy.Close()

	// Down: still limited, no error (mustAllow fails on one).
	expectLimited(t, lim, "ws-2", limit)
	if !lim.Degraded() {
		t.Fatal("not degraded with Redis gone")
	}
	// Several probes fail while requests keep coming; one warning in all.
	for deadline := time.Now().Add(10 * time.Second); logs.count("DEBUG", "redis still unavailable") < 3; {
		if time.Now().After(deadline) {
			t.Fatal("the limiter never tried Redis again")
		}
		mustAllow(t, lim, "ws-3", limit)
		time.Sleep(5 * time.Millisecond)
	}
	if n := logs.count("WARN", outageLine); n != 1 {
		t.Fatalf("%d outage warnings, want 1", n)
	}

	// Back: the next probe finds Redis and the quota is shared again.
	if err := proxy.Open(); err != nil {
		t.Fatalf("reopening the proxy on %s: %v", proxy.addr, err)
	}
	waitRecovered(t, lim, "ws-3", limit)
	if n := logs.count("INFO", recoveryLine); n != 1 {
		t.Fatalf("%d recovery lines, want 1", n)
	}
	mustAllow(t, lim, "ws-4", limit)
	if d := mustAllow(t, NewRedis(direct, prefix), "ws-4", limit); !d.Allowed || d.Remaining > limit.Burst-2 {
		t.Fatalf("Redis did not see the limiter's request after recovery: %+v", d)
	}
	if n := logs.count("WARN", outageLine); n != 1 {
		t.Fatalf("%d outage warnings after recovery, want 1", n)
	}
}

// waitRecovered keeps sending requests until a probe finds Redis again.
func waitRecovered(t *testing.T, lim *Limiter, key string, limit core.RateLimit) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); lim.Degraded(); {
		if time.Now().After(deadline) {
			t.Fatal("the limiter did not go back to Redis")
		}
		mustAllow(t, lim, key, limit)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLimiterRedisRefuses needs no Redis: one that refuses connections from
// the start still leaves requests limited.
func TestLimiterRedisRefuses(t *testing.T) {
	rdb := newTestClient(t, &redis.Options{Addr: closedAddr(t)})
	logger, logs := newTestLogger(t)
	lim := New(rdb, "", logger)
	expectLimited(t, lim, "ws", core.RateLimit{Rate: 1, Burst: 5})
	if !lim.Degraded() {
		t.Fatal("not degraded with Redis refusing connections")
	}
	if n := logs.count("WARN", outageLine); n != 1 {
		t.Fatalf("%d outage warnings, want 1", n)
	}
}

// TestLimiterRedisHangs needs no Redis: a server that accepts connections
// and never answers, with a client that would wait forever on reads and
// writes. Only Limiter's own timeout can end the calls, so the test hangs if
// it does not work; it does for clients with and without context deadlines,
// which Limiter calls in different ways.
func TestLimiterRedisHangs(t *testing.T) {
	for _, ctxDeadlines := range []bool{false, true} {
		t.Run(fmt.Sprintf("ContextTimeoutEnabled=%t", ctxDeadlines), func(t *testing.T) {
			hung := startProxy(t, "")
			rdb := newTestClient(t, &redis.Options{
				Addr:                  hung.addr,
				ReadTimeout:           -1,
				WriteTimeout:          -1,
				MaxRetries:            -1,
				ContextTimeoutEnabled: ctxDeadlines,
			})
			logger, logs := newTestLogger(t)
			lim := New(rdb, "", logger)
			lim.Timeout = 20 * time.Millisecond
			expectLimited(t, lim, "ws", core.RateLimit{Rate: 1, Burst: 5})
			if !lim.Degraded() {
				t.Fatal("not degraded with Redis hung")
			}
			if n := logs.count("WARN", outageLine); n != 1 {
				t.Fatalf("%d outage warnings, want 1", n)
			}
		})
	}
}

// TestLimiterCallerCancels checks that a caller giving up is not taken for
// a Redis outage, and still gets a limited answer rather than an error.
func TestLimiterCallerCancels(t *testing.T) {
	rdb := newTestClient(t, testRedisOptions(t))
	lim := New(rdb, testPrefix(t, rdb), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := lim.Allow(ctx, "ws", core.RateLimit{Rate: 1, Burst: 1})
	if err != nil || !d.Allowed {
		t.Fatalf("Allow with a cancelled context: %+v, %v", d, err)
	}
	if lim.Degraded() {
		t.Fatal("a cancelled caller was taken for a Redis outage")
	}
}

// TestLimiterCancelledProbe needs no Redis: a probe whose caller gives up
// neither ends nor extends the outage, and the next request may probe again.
func TestLimiterCancelledProbe(t *testing.T) {
	rdb := newTestClient(t, &redis.Options{Addr: closedAddr(t), MaxRetries: -1})
	logger, logs := newTestLogger(t)
	lim := New(rdb, "", logger)
	lim.RetryInterval = 0 // every request may probe
	limit := core.RateLimit{Rate: 1, Burst: 5}
	mustAllow(t, lim, "ws", limit)
	if !lim.Degraded() {
		t.Fatal("not degraded with Redis refusing connections")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := lim.Allow(ctx, "ws", limit); err != nil || !d.Allowed {
		t.Fatalf("Allow with a cancelled context: %+v, %v", d, err)
	}
	if !lim.Degraded() || logs.count("DEBUG", "redis still unavailable") != 0 {
		t.Fatal("a cancelled probe changed the outage")
	}

	mustAllow(t, lim, "ws", limit)
	if n := logs.count("DEBUG", "redis still unavailable"); n != 1 {
		t.Fatalf("%d failed probes logged after the cancelled one, want 1: the probe slot was not released", n)
	}
}
