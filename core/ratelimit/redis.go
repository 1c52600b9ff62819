package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/core"
)

var _ core.RateLimiter = (*Redis)(nil)

// DefaultPrefix namespaces Relay's rate-limit keys in a Redis that other
// applications may share. redis_rate puts its own "rate:" in front, so a
// workspace's key is "rate:relay:ratelimit:<key>".
const DefaultPrefix = "relay:ratelimit:"

// Redis is a GCRA limiter whose state lives in Redis, so that every replica
// charges the same quota. Each decision is one atomic script run on the
// server, with the server's clock, so replicas with skewed clocks still agree.
type Redis struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewRedis returns a limiter that keeps its state in rdb under keys that
// start with prefix; an empty prefix means DefaultPrefix.
func NewRedis(rdb *redis.Client, prefix string) *Redis {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Redis{limiter: redis_rate.NewLimiter(rdb), prefix: prefix}
}

// Allow charges one request to key under limit, with the same semantics as
// Local.Allow. It returns an EInvalid error when limit is out of range and
// the wrapped Redis error when Redis does not answer; it waits as long as ctx
// and the client's own timeouts let it.
func (r *Redis) Allow(ctx context.Context, key string, limit core.RateLimit) (core.RateDecision, error) {
	if err := limit.Validate(); err != nil {
		return core.RateDecision{}, err
	}
	res, err := r.limiter.Allow(ctx, r.prefix+key, redis_rate.Limit{
		Rate:   limit.Rate,
		Burst:  limit.Burst,
		Period: time.Second,
	})
	if err != nil {
		return core.RateDecision{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	return core.RateDecision{
		Allowed:   res.Allowed > 0,
		Remaining: res.Remaining,
		// redis_rate says -1 for "no need to retry"; core says 0.
		RetryAfter: max(res.RetryAfter, 0),
		ResetAfter: max(res.ResetAfter, 0),
	}, nil
}
