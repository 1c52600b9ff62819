package core

import (
	"context"
	"time"
)

// RateDecision is the outcome of charging one request against a quota.
type RateDecision struct {
	Allowed    bool
	Remaining  int           // requests that could still be made at once
	RetryAfter time.Duration // when not allowed: wait this long before the next try
	ResetAfter time.Duration // until the quota is whole again
}

// RateLimiter charges requests against per-key quotas (GCRA: a request is
// allowed when it fits the burst, and the bucket refills at Rate per second).
type RateLimiter interface {
	Allow(ctx context.Context, key string, limit RateLimit) (RateDecision, error)
}
