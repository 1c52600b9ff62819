package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/core"
)

// benchKeys is enough workspaces that the map does not stay in a cache line.
var benchKeys = func() []string {
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("ws-%d", i)
	}
	return keys
}()

// benchLimiter measures lim on one hot key, on many keys, and on many keys
// from every CPU at once (where a single mutex would show).
func benchLimiter(b *testing.B, lim core.RateLimiter) {
	ctx := context.Background()
	limit := core.DefaultRateLimit
	b.Run("one key", func(b *testing.B) {
		for b.Loop() {
			if _, err := lim.Allow(ctx, "ws", limit); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("many keys", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := lim.Allow(ctx, benchKeys[i%len(benchKeys)], limit); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)) * 7919 // each goroutine starts elsewhere
			for pb.Next() {
				if _, err := lim.Allow(ctx, benchKeys[i%len(benchKeys)], limit); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

func BenchmarkLocalAllow(b *testing.B) {
	benchLimiter(b, NewLocal())
}

func BenchmarkRedisAllow(b *testing.B) {
	rdb := newTestClient(b, testRedisOptions(b))
	benchLimiter(b, NewRedis(rdb, testPrefix(b, rdb)))
}

// BenchmarkLimiterAllow is BenchmarkRedisAllow plus what the fallback costs
// while Redis is healthy: a timer per call, and a goroutine per call for a
// client without ContextTimeoutEnabled.
func BenchmarkLimiterAllow(b *testing.B) {
	opt := testRedisOptions(b)
	for _, ctxDeadlines := range []bool{false, true} {
		b.Run(fmt.Sprintf("ContextTimeoutEnabled=%t", ctxDeadlines), func(b *testing.B) {
			o := *opt
			o.ContextTimeoutEnabled = ctxDeadlines
			rdb := newTestClient(b, &o)
			benchLimiter(b, New(rdb, testPrefix(b, rdb), nil))
		})
	}
}
