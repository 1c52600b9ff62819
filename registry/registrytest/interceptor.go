// Package registrytest has what tests of a server that installs from
// another registry share.
package registrytest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// Interceptor is a real HTTP proxy in front of a registry whose answers a
// test may replace (Set: a change by path; nil passes them on as they
// are), and which counts the requests by path.
type Interceptor struct {
	*httptest.Server
	mu     sync.Mutex
	change func(path string, body []byte) []byte
	counts map[string]int
}

// NewInterceptor starts a proxy in front of the registry at registryURL,
// closed when the test ends.
func NewInterceptor(t testing.TB, registryURL string) *Interceptor {
	t.Helper()
	target, err := url.Parse(registryURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	ic := &Interceptor{counts: map[string]int{}}
	proxy.ModifyResponse = func(resp *http.Response) error {
		ic.mu.Lock()
		change := ic.change
		ic.counts[resp.Request.URL.Path]++
		ic.mu.Unlock()
		if change == nil {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body = change(resp.Request.URL.Path, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	ic.Server = httptest.NewServer(proxy)
	t.Cleanup(ic.Close)
	return ic
}

// Set makes change (nil: none) rewrite the answers' bodies from now on.
func (ic *Interceptor) Set(change func(path string, body []byte) []byte) {
	ic.mu.Lock()
	ic.change = change
	ic.mu.Unlock()
}

// Count is how many requests for path the proxy has answered.
func (ic *Interceptor) Count(path string) int {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return ic.counts[path]
}
