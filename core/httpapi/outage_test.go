package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// TestDatabaseOutageIs503 cuts the server off from PostgreSQL under load:
// every connection is reset and new ones are refused for a while. Every
// request that fails must say 503 unavailable with Retry-After (a client
// that retries only 503 must lose nothing), and each execute refused so
// succeeds when retried with its key, running once.
func TestDatabaseOutageIs503(t *testing.T) {
	dbURL := sqlstoretest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.addr
	ts := newTestServerOn(t, u.String(), echoConnectors(t), nil, nil)
	_, keys := ts.workspace("outage")
	admin := keys[core.RoleAdmin]
	ts.createEcho(admin, "echo")

	var (
		mu        sync.Mutex
		refused   int                   // first attempts answered 503
		unexpect  []string              // answers that are neither success nor 503
		succeeded = map[string]string{} // key → run id
	)
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for w := range 6 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("outage-%d-%d", w, i)
				status, header, body := outageDo(ts, admin, key)
				if status == http.StatusServiceUnavailable {
					mu.Lock()
					refused++
					mu.Unlock()
					if err := checkOutageProblem(header, body); err != nil {
						mu.Lock()
						unexpect = append(unexpect, err.Error())
						mu.Unlock()
						return
					}
					// Retry with the same key until it goes through.
					deadline := time.Now().Add(30 * time.Second)
					for status != http.StatusOK && time.Now().Before(deadline) {
						time.Sleep(100 * time.Millisecond)
						status, header, body = outageDo(ts, admin, key)
						if status == http.StatusServiceUnavailable {
							if err := checkOutageProblem(header, body); err != nil {
								mu.Lock()
								unexpect = append(unexpect, err.Error())
								mu.Unlock()
							}
						} else if status != http.StatusOK && status != http.StatusConflict {
							break
						}
					}
				}
				mu.Lock()
				if status == http.StatusOK {
					succeeded[key] = runID(body)
				} else {
					unexpect = append(unexpect, fmt.Sprintf("%s: %d %s", key, status, body))
				}
				mu.Unlock()
				// Reads fail the same way.
				if st, h, b := ts.rawDo(http.MethodGet, "/v1/runs?limit=1", admin, ""); st != http.StatusOK {
					if err := checkOutageProblem(h, b); st != http.StatusServiceUnavailable || err != nil {
						mu.Lock()
						unexpect = append(unexpect, fmt.Sprintf("GET /v1/runs: %d %s", st, b))
						mu.Unlock()
					}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	// The cut lasts 2.5 s, and longer on a machine so loaded that no
	// request has met it yet (up to 20 s).
	proxy.cut()
	cut := time.Now()
	for {
		mu.Lock()
		met := refused > 0
		mu.Unlock()
		if took := time.Since(cut); took >= 2500*time.Millisecond && (met || took >= 20*time.Second) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	proxy.restore()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	workers.Wait()

	if len(unexpect) > 0 {
		t.Fatalf("%d answers were neither success nor 503, e.g. %v", len(unexpect), unexpect[:min(5, len(unexpect))])
	}
	if refused == 0 {
		t.Fatal("no request met the outage: the test did not test it")
	}
	// Exactly one run per key, and it is the one the key's answer names.
	runs := map[string]int{}
	for next := ""; ; {
		st, _, body := ts.rawDo(http.MethodGet, "/v1/runs?limit=200&cursor="+next, admin, "")
		if st != http.StatusOK {
			t.Fatalf("list runs: %d %s", st, body)
		}
		var page struct {
			Data []struct {
				ID             string `json:"id"`
				IdempotencyKey string `json:"idempotency_key"`
				Status         string `json:"status"`
			} `json:"data"`
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Data {
			runs[r.IdempotencyKey]++
			if want, ok := succeeded[r.IdempotencyKey]; ok && want != r.ID {
				t.Errorf("key %s answered with run %s, but run %s (%s) exists too", r.IdempotencyKey, want, r.ID, r.Status)
			}
		}
		if page.NextCursor == nil {
			break
		}
		next = *page.NextCursor
	}
	for key, n := range runs {
		if n != 1 && key != "" {
			t.Errorf("key %s has %d runs", key, n)
		}
	}
	for key := range succeeded {
		if runs[key] != 1 {
			t.Errorf("key %s was answered but has %d runs", key, runs[key])
		}
	}
	t.Logf("%d executions answered, %d first met the outage", len(succeeded), refused)
}

func outageDo(ts *testServer, key, idemKey string) (int, http.Header, []byte) {
	return ts.rawDo(http.MethodPost, "/v1/actions/echo.echo/execute", key,
		`{"params":{"hello":"outage"}}`, "Idempotency-Key", idemKey)
}

// checkOutageProblem checks a 503's body and Retry-After.
func checkOutageProblem(h http.Header, body []byte) error {
	if h.Get("Retry-After") == "" {
		return fmt.Errorf("503 without Retry-After: %s", body)
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Code != core.EUnavailable {
		return fmt.Errorf("503 whose code is not %s: %s", core.EUnavailable, body)
	}
	return nil
}

// rawDo is do for goroutines: it reports failures in its result, not
// through t. A transport error is status 0.
func (ts *testServer) rawDo(method, path, key, body string, headers ...string) (int, http.Header, []byte) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

func runID(body []byte) string {
	var r struct {
		ID string `json:"id"`
	}
	json.Unmarshal(body, &r)
	return r.ID
}
