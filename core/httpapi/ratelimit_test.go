package httpapi

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
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

// A flood of bad keys from one address (behind a NAT or a proxy, every
// tenant's address) must not lock out a valid key from that address: the
// address's penalty is for requests whose key fails, and a valid key is
// checked before the penalty is looked at.
func TestBadKeyFloodSparesValidKeys(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.DefaultRateLimit = core.RateLimit{Rate: 50, Burst: 100} })
	victim, keys := ts.workspace("victim")
	if err := ts.Store.SetWorkspaceRateLimit(context.Background(), victim.ID, &core.RateLimit{Rate: 100_000, Burst: 100_000}); err != nil {
		t.Fatal(err)
	}
	_, attacker := ts.workspace("attacker")
	good := keys[core.RoleViewer]
	id, _, _ := core.ParseKey(attacker[core.RoleViewer])
	wrongSecret, _ := core.NewKeyToken(id)
	bad := []string{"rly_nope", ts.keyForUnknownID(), wrongSecret, attacker[core.RoleViewer] + "x"}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	get := func(key string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/workspace", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	const flood = 4000
	var (
		mu                  sync.Mutex
		statuses            = map[int]int{}
		noHeaders, validBad int
		errs                []error
		validSent           int
	)
	noteHeaders := func(resp *http.Response) {
		if resp.Header.Get("RateLimit-Policy") == "" || resp.Header.Get("RateLimit") == "" {
			noHeaders++
		}
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				resp, err := get(bad[i%len(bad)])
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					statuses[resp.StatusCode]++
					noteHeaders(resp)
				}
				mu.Unlock()
			}
		})
	}
	stop := make(chan struct{})
	validDone := make(chan struct{})
	go func() {
		defer close(validDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := get(good)
			mu.Lock()
			validSent++
			if err != nil {
				errs = append(errs, err)
			} else {
				if resp.StatusCode != http.StatusOK {
					validBad++
				}
				noteHeaders(resp)
			}
			mu.Unlock()
		}
	}()
	for i := range flood {
		next <- i
	}
	close(next)
	wg.Wait()
	close(stop)
	<-validDone

	if len(errs) > 0 {
		t.Fatalf("%d requests failed, the first: %v", len(errs), errs[0])
	}
	t.Logf("bad keys: %v; valid key: %d requests", statuses, validSent)
	if statuses[http.StatusTooManyRequests] == 0 || statuses[http.StatusUnauthorized] == 0 {
		t.Fatalf("bad keys got %v: want 401s and then 429s once the address's quota is used up", statuses)
	}
	if validSent < 50 {
		t.Fatalf("only %d requests with the valid key during the flood", validSent)
	}
	if validBad != 0 {
		t.Fatalf("%d of %d requests with a valid key were refused during the flood", validBad, validSent)
	}
	if noHeaders != 0 {
		t.Fatalf("%d responses lack RateLimit headers", noHeaders)
	}
}

// Every answer of a /v1 path says where the caller stands, refusals and
// paths that match no route included.
func TestEveryV1ResponseHasRateLimitHeaders(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.DefaultRateLimit = core.RateLimit{Rate: 1, Burst: 30} })
	_, keys := ts.workspace("acme")
	_, small := ts.workspace("small")
	tests := []struct {
		name         string
		method, path string
		key          string
		body         any
		status       int
		policy       string
	}{
		{"ok", "GET", "/v1/workspace", keys[core.RoleViewer], nil, 200, `"workspace"`},
		{"no key", "GET", "/v1/workspace", "", nil, 401, `"address"`},
		{"forbidden", "GET", "/v1/keys", keys[core.RoleViewer], nil, 403, `"workspace"`},
		{"no such key", "GET", "/v1/keys/" + core.NewID(), keys[core.RoleAdmin], nil, 404, `"workspace"`},
		{"no such route", "GET", "/v1/nothing", keys[core.RoleViewer], nil, 404, `"workspace"`},
		{"no such route, no key", "GET", "/v1/nothing", "", nil, 401, `"address"`},
		{"the bare prefix", "GET", "/v1", keys[core.RoleViewer], nil, 404, `"workspace"`},
		{"wrong method", "PUT", "/v1/keys", keys[core.RoleAdmin], nil, 405, `"workspace"`},
		{"wrong method on a path with an id", "POST", "/v1/keys/" + core.NewID(), keys[core.RoleAdmin], nil, 405, `"workspace"`},
		{"bad body", "POST", "/v1/keys", keys[core.RoleAdmin], "{", 400, `"workspace"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.with(t).do(tt.method, tt.path, tt.key, tt.body)
			if resp.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.Status, tt.status, resp.Body)
			}
			for _, h := range []string{"RateLimit-Policy", "RateLimit"} {
				if got := resp.Header.Get(h); !strings.HasPrefix(got, tt.policy+";") {
					t.Errorf("%s %q, want the %s policy", h, got, tt.policy)
				}
			}
		})
	}
	if resp := ts.do("PUT", "/v1/keys", keys[core.RoleAdmin], nil); resp.Header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("405 with Allow %q", resp.Header.Get("Allow"))
	}
	if resp := ts.do("GET", "/v1x", "", nil); resp.Status != 404 {
		t.Errorf("GET /v1x: %d, want 404 (not a /v1 path)", resp.Status)
	}
	// Both 429s: the workspace's quota, and the address's for failed keys.
	exhaust(t, ts, small[core.RoleViewer], 30)
	resp := ts.do("GET", "/v1/workspace", small[core.RoleViewer], nil)
	if resp.Status != 429 || !strings.HasPrefix(resp.Header.Get("RateLimit"), `"workspace";r=0;`) {
		t.Errorf("over the workspace's quota: %d, RateLimit %q", resp.Status, resp.Header.Get("RateLimit"))
	}
	for i := 0; ; i++ {
		resp := ts.do("GET", "/v1/workspace", "rly_nope", nil)
		if resp.Status == 429 {
			if !strings.HasPrefix(resp.Header.Get("RateLimit"), `"address";r=0;`) || resp.Header.Get("RateLimit-Policy") == "" {
				t.Errorf("over the address's quota: RateLimit %q, RateLimit-Policy %q", resp.Header.Get("RateLimit"), resp.Header.Get("RateLimit-Policy"))
			}
			// Once more: now refused from the memory of blocked addresses.
			resp = ts.do("GET", "/v1/workspace", "rly_nope", nil)
			if resp.Status != 429 || !strings.HasPrefix(resp.Header.Get("RateLimit"), `"address";r=0;`) {
				t.Errorf("a blocked address: %d, RateLimit %q", resp.Status, resp.Header.Get("RateLimit"))
			}
			break
		}
		if i > 40 {
			t.Fatal("failed keys are never refused with 429")
		}
	}
}
