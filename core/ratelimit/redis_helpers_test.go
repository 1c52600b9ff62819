package ratelimit

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testRedisOptions returns the options of the Redis named by
// RELAY_TEST_REDIS_URL. Without the variable the test is skipped; with it,
// a Redis that does not answer fails the test, so that CI cannot pass by
// skipping.
func testRedisOptions(t testing.TB) *redis.Options {
	t.Helper()
	url := os.Getenv("RELAY_TEST_REDIS_URL")
	if url == "" {
		t.Skip("RELAY_TEST_REDIS_URL is not set; skipping a test that needs Redis (e.g. RELAY_TEST_REDIS_URL=redis://127.0.0.1:6379/0)")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("RELAY_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("RELAY_TEST_REDIS_URL is set but Redis at %s does not answer: %v", opt.Addr, err)
	}
	return opt
}

// newTestClient returns a client for opt that the test closes at its end.
func newTestClient(t testing.TB, opt *redis.Options) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// testPrefix returns a key prefix of the test's own, so that tests running
// at once (or a rerun) never share a bucket, and deletes its keys at the end.
func testPrefix(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	prefix := "relay:test:" + rand.Text()[:12] + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, "rate:"+prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Logf("deleting test keys under %q: %v", prefix, err)
		}
	})
	return prefix
}

// tcpProxy forwards TCP connections to target, and can be closed, dropping
// every connection, and reopened on the same address: a Redis that goes away
// and comes back, as seen by its clients. With an empty target it accepts
// connections and never answers: a hung Redis.
type tcpProxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, addr: "127.0.0.1:0", conns: make(map[net.Conn]struct{})}
	if err := p.Open(); err != nil {
		t.Fatalf("proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Open listens on the proxy's address: a free port the first time, the same
// port again after Close.
func (p *tcpProxy) Open() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.addr = ln.Addr().String()
	p.mu.Unlock()
	p.wg.Go(func() { p.accept(ln) })
	return nil
}

func (p *tcpProxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			return
		}
		if p.target == "" {
			p.wg.Go(func() { io.Copy(io.Discard, c) })
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil || !p.track(up) {
			c.Close()
			continue
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, up) })
	}
}

func pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// track registers c so that Close can cut it; false (and c closed) when the
// proxy is closing.
func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// Close stops listening and cuts every connection, as a Redis that died
// would. It can be called more than once.
func (p *tcpProxy) Close() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	p.wg.Wait()
}

// closedAddr returns an address where nothing listens, so that dialing it
// is refused at once: a Redis that is down.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
