package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/core"
)

var _ core.RateLimiter = (*Limiter)(nil)

// Defaults for Limiter's fields.
const (
	// DefaultTimeout is far above a healthy Redis round trip (well under a
	// millisecond on a LAN) and short enough that a hung Redis costs the
	// requests in flight a barely noticeable delay.
	DefaultTimeout = 150 * time.Millisecond
	// DefaultRetryInterval is how often an unavailable Redis is tried again.
	DefaultRetryInterval = time.Second
)

// Limiter is the rate limiter the server uses: Redis when it has one, so
// that replicas share each workspace's quota, and a Local limiter while Redis
// does not answer, so that requests stay limited (per process) rather than
// failing or going unlimited. Safe for concurrent use.
//
// During an outage only one request every RetryInterval tries Redis; the
// others go straight to Local and pay no timeout. The Local buckets start
// full, so each process allows a fresh burst when an outage starts, and Redis
// picks up from its own state (or a full bucket) when it answers again.
type Limiter struct {
	// Timeout bounds each call to Redis, whatever the client's own read and
	// write timeouts are. Set fields before the first Allow.
	//
	// Build the client with ContextTimeoutEnabled: the limiter then calls it
	// directly instead of through a goroutine it can abandon.
	Timeout time.Duration
	// RetryInterval is how long the limiter stays on Local after Redis
	// failed before it lets one request try Redis again.
	RetryInterval time.Duration

	redis *Redis // nil: Local only
	// ctxDeadlines tells that the client itself stops socket reads and
	// writes at the context's deadline (ContextTimeoutEnabled).
	ctxDeadlines bool
	local        *Local
	logger       hclog.Logger

	// down is read on every request, so it is an atomic rather than mu's.
	down atomic.Bool
	mu   sync.Mutex
	// Guarded by mu.
	downSince time.Time
	retryAt   time.Time
	probing   bool
}

// New returns a limiter that keeps its state in rdb under keys that start
// with prefix (empty: DefaultPrefix) and logs Redis outages and recoveries to
// logger (nil: nowhere). With a nil rdb it only ever uses a Local limiter,
// which is right for a single process.
func New(rdb *redis.Client, prefix string, logger hclog.Logger) *Limiter {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	l := &Limiter{
		Timeout:       DefaultTimeout,
		RetryInterval: DefaultRetryInterval,
		local:         NewLocal(),
		logger:        logger,
	}
	if rdb != nil {
		l.redis = NewRedis(rdb, prefix)
		l.ctxDeadlines = rdb.Options().ContextTimeoutEnabled
	}
	return l
}

// Allow charges one request to key under limit, with the semantics of
// Local.Allow. It returns an error (EInvalid) only for a limit out of range:
// when Redis fails it answers from the Local limiter instead.
func (l *Limiter) Allow(ctx context.Context, key string, limit core.RateLimit) (core.RateDecision, error) {
	if err := limit.Validate(); err != nil {
		return core.RateDecision{}, err
	}
	if l.redis == nil {
		return l.local.Allow(ctx, key, limit)
	}
	useRedis, probe := l.route()
	if !useRedis {
		return l.local.Allow(ctx, key, limit)
	}
	d, err := l.callRedis(ctx, key, limit)
	switch {
	case err == nil:
		if probe {
			l.recovered()
		}
		return d, nil
	case ctx.Err() != nil:
		// The caller gave up, which says nothing about Redis. The answer
		// hardly matters then, but it must not be "unlimited".
		if probe {
			l.endProbe()
		}
	default:
		l.failed(err, probe)
	}
	return l.local.Allow(ctx, key, limit)
}

// Degraded reports whether Redis failed and has not answered since, so that
// quotas are counted per process; for readiness checks and metrics.
func (l *Limiter) Degraded() bool {
	return l.down.Load()
}

// route tells whether this request should ask Redis, and whether it does so
// as the one probe of an outage.
func (l *Limiter) route() (useRedis, probe bool) {
	if !l.down.Load() {
		return true, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down.Load() {
		return true, false // a probe succeeded meanwhile
	}
	if l.probing || time.Now().Before(l.retryAt) {
		return false, false
	}
	l.probing = true
	return true, true
}

// callRedis asks Redis within l.Timeout. go-redis ignores context deadlines
// on socket reads and writes unless the client was built with
// ContextTimeoutEnabled, so without it the call runs in its own goroutine and
// is abandoned on timeout; it ends by itself at the client's read timeout.
// The goroutine's hand-offs cost a few microseconds per call, which is why a
// client that honours deadlines is called directly.
func (l *Limiter) callRedis(ctx context.Context, key string, limit core.RateLimit) (core.RateDecision, error) {
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout // unbounded is exactly what this guards against
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if l.ctxDeadlines {
		return l.redis.Allow(ctx, key, limit)
	}
	type result struct {
		d   core.RateDecision
		err error
	}
	done := make(chan result, 1) // buffered: an abandoned call must not block
	go func() {
		d, err := l.redis.Allow(ctx, key, limit)
		done <- result{d, err}
	}()
	select {
	case r := <-done:
		return r.d, r.err
	case <-ctx.Done():
		return core.RateDecision{}, fmt.Errorf("ratelimit: redis did not answer within %s: %w", timeout, ctx.Err())
	}
}

// failed switches to Local until RetryInterval has passed. Only the first
// failure of an outage is a warning: during an outage every probe fails, and
// a line per probe would bury the one that matters.
func (l *Limiter) failed(err error, probe bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if probe {
		l.probing = false
	}
	l.retryAt = now.Add(l.RetryInterval)
	if l.down.Load() {
		l.logger.Debug("redis still unavailable", "error", err)
		return
	}
	l.down.Store(true)
	l.downSince = now
	l.logger.Warn("redis unavailable; rate limits are counted per process until it answers",
		"error", err, "retry_interval", l.RetryInterval)
}

// recovered switches back to Redis after a successful probe. Only a probe
// ends an outage: a call that started before the outage and answered late
// proves little and would make the log flap.
func (l *Limiter) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probing = false
	if !l.down.Load() {
		return
	}
	l.down.Store(false)
	l.logger.Info("redis answers again; rate limits are shared across processes",
		"outage", time.Since(l.downSince).Round(time.Millisecond))
}

func (l *Limiter) endProbe() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probing = false
}
