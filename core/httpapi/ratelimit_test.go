package httpapi

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/ratelimit"
)

// exhaust spends a workspace's burst and checks the request after it is
// refused as the API promises.
func exhaust(t *testing.T, ts *testServer, key string, burst int) {
	t.Helper()
	for i := 0; i < burst; i++ {
		resp := ts.do(http.MethodGet, "/v1/workspace", key, nil)
		if resp.Status != http.StatusOK {
			t.Fatalf("request %d of a burst of %d: %d %s", i+1, burst, resp.Status, resp.Body)
		}
		if resp.Header.Get("RateLimit-Policy") == "" || resp.Header.Get("RateLimit") == "" {
			t.Fatalf("request %d lacks RateLimit headers: %v", i+1, resp.Header)
		}
	}
	resp := ts.do(http.MethodGet, "/v1/workspace", key, nil)
	if resp.Status != http.StatusTooManyRequests {
		t.Fatalf("request %d: %d, want 429", burst+1, resp.Status)
	}
	if p := resp.problem(t); p.Code != core.ERateLimited {
		t.Fatalf("code %q", p.Code)
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q: want a whole number of seconds >= 1", resp.Header.Get("Retry-After"))
	}
}

func TestRateLimitPerWorkspace(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.DefaultRateLimit = core.RateLimit{Rate: 1, Burst: 5} })
	_, a := ts.workspace("team-a")
	_, b := ts.workspace("team-b")

	resp := ts.do(http.MethodGet, "/v1/workspace", a[core.RoleViewer], nil)
	if got, want := resp.Header.Get("RateLimit-Policy"), `"workspace";q=5;w=5`; got != want {
		t.Fatalf("RateLimit-Policy %q, want %q", got, want)
	}
	if got, want := resp.Header.Get("RateLimit"), `"workspace";r=4;t=1`; got != want {
		t.Fatalf("RateLimit %q, want %q", got, want)
	}
	exhaust(t, ts, a[core.RoleAdmin], 4)
	// Every key of the workspace shares its quota…
	if resp := ts.do(http.MethodGet, "/v1/workspace", a[core.RoleDeveloper], nil); resp.Status != http.StatusTooManyRequests {
		t.Fatalf("another key of the same workspace: %d, want 429", resp.Status)
	}
	// …and another workspace's is untouched.
	exhaust(t, ts, b[core.RoleViewer], 5)
}

func TestRateLimitOverride(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.DefaultRateLimit = core.RateLimit{Rate: 1, Burst: 50} })
	ws, keys := ts.workspace("small")
	if err := ts.Store.SetWorkspaceRateLimit(context.Background(), ws.ID, &core.RateLimit{Rate: 1, Burst: 2}); err != nil {
		t.Fatal(err)
	}
	exhaust(t, ts, keys[core.RoleViewer], 2)
}

func TestRateLimitUnauthenticatedByAddress(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.DefaultRateLimit = core.RateLimit{Rate: 1, Burst: 3} })
	for i := 0; i < 3; i++ {
		if resp := ts.do(http.MethodGet, "/v1/workspace", "", nil); resp.Status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, resp.Status)
		}
	}
	if resp := ts.do(http.MethodGet, "/v1/workspace", "", nil); resp.Status != http.StatusTooManyRequests {
		t.Fatalf("4th unauthenticated attempt: %d, want 429", resp.Status)
	}
}

// redisURL returns RELAY_TEST_REDIS_URL, skipping without it and failing
// when it is set but Redis does not answer.
func redisURL(t *testing.T) string {
	u := os.Getenv("RELAY_TEST_REDIS_URL")
	if u == "" {
		t.Skip("RELAY_TEST_REDIS_URL not set: skipping the Redis rate-limit tests")
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("RELAY_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("RELAY_TEST_REDIS_URL is set but Redis does not answer: %v", err)
	}
	return u
}

// TestRateLimitRedisStopped runs the server's limiter on a real Redis
// behind a proxy, then cuts the proxy: requests must stay limited.
func TestRateLimitRedisStopped(t *testing.T) {
	opts, _ := redis.ParseURL(redisURL(t))
	proxy := newCutProxy(t, opts.Addr)
	opts.Addr = proxy.addr
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	prefix := "relay:test:" + core.NewID() + ":"
	limiter := ratelimit.New(rdb, prefix, hclog.NewNullLogger())

	ts := newTestServer(t, func(c *Config) {
		c.Limiter = limiter
		c.DefaultRateLimit = core.RateLimit{Rate: 1, Burst: 4}
	})
	_, a := ts.workspace("team-a")
	_, b := ts.workspace("team-b")
	exhaust(t, ts, a[core.RoleViewer], 4)
	direct := redis.NewClient(&redis.Options{Addr: proxy.target, DB: opts.DB, Username: opts.Username, Password: opts.Password})
	defer direct.Close()
	// redis_rate puts its own "rate:" before the limiter's prefix.
	n, err := direct.Keys(context.Background(), "*"+prefix+"*").Result()
	if err != nil || len(n) == 0 {
		t.Fatalf("no quota in Redis under %s (%v): the limiter did not use Redis", prefix, err)
	}

	proxy.cut()
	exhaust(t, ts, b[core.RoleViewer], 4)
}
