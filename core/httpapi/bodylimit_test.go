package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// A body over the limit is answered 413, and every client sees that
// answer: the server reads and drops what the client is still sending
// before it closes, rather than closing on unread bytes, which resets
// the connection and can destroy the 413 before the client reads it.
func TestOversizedBodiesAlwaysSee413(t *testing.T) {
	ts := newTestServer(t, nil)
	_, keys := ts.workspace("acme")
	body := bytes.Repeat([]byte("x"), 2<<20)
	addr := strings.TrimPrefix(ts.URL, "http://")
	const tries = 30

	clients := map[string]func() (int, error){
		"net/http": func() (int, error) {
			return postLarge(ts, keys[core.RoleAdmin], &trickle{data: body}, false)
		},
		"net/http, Expect: 100-continue": func() (int, error) {
			return postLarge(ts, keys[core.RoleAdmin], &trickle{data: body}, true)
		},
		// A client that reads the answer only once it has sent the whole
		// request, at the pace of a real network, as curl does: the server
		// must not reset the connection while the body is still coming.
		"raw socket, read after writing": func() (int, error) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := fmt.Fprintf(conn, "POST /v1/keys HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", keys[core.RoleAdmin], len(body)); err != nil {
				return 0, err
			}
			if _, err := io.Copy(conn, &trickle{data: body}); err != nil {
				return 0, fmt.Errorf("sending the body: %w", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		},
	}
	for name, send := range clients {
		t.Run(name, func(t *testing.T) {
			var failures []string
			for i := range tries {
				status, err := send()
				if err != nil || status != http.StatusRequestEntityTooLarge {
					failures = append(failures, fmt.Sprintf("try %d: status %d, error %v", i+1, status, err))
				}
			}
			if len(failures) > 0 {
				t.Fatalf("%d of %d tries did not see 413:\n%s", len(failures), tries, strings.Join(failures, "\n"))
			}
		})
	}
}

// postLarge posts body with net/http on a connection of its own.
func postLarge(ts *testServer, key string, body *trickle, expectContinue bool) (int, error) {
	tr := &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 5 * time.Second}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/keys", body)
	req.ContentLength = int64(len(body.data))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if expectContinue {
		req.Header.Set("Expect", "100-continue")
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// trickle reads data 64 KiB at a time, a millisecond apart: a body that
// takes a while to send, as it does over a real network.
type trickle struct {
	data []byte
	sent int
}

func (t *trickle) Read(p []byte) (int, error) {
	if t.sent == len(t.data) {
		return 0, io.EOF
	}
	if t.sent > 0 {
		time.Sleep(time.Millisecond)
	}
	n := copy(p[:min(len(p), 64<<10)], t.data[t.sent:])
	t.sent += n
	return n, nil
}
