// Command sandboxconn is a connector for the sandbox tests that tries what
// a connector's author may try behind the host's back: connect with
// net.Dial, request with net/http, read files, look at its environment.
// It also makes requests the sanctioned way, with Fetch and the egress
// guard, which must still work in the sandbox.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/relayhq/relay/sdk/connector"
)

type (
	addrIn struct {
		Address string `json:"address"`
	}
	urlIn struct {
		URL string `json:"url"`
	}
	pathIn struct {
		Path string `json:"path"`
	}
	// result is what an attempt got: an error, or what it read.
	result struct {
		Error  string `json:"error,omitempty"`
		Status int    `json:"status,omitempty"`
		Body   string `json:"body,omitempty"`
	}
	selfOut struct {
		Dir     string   `json:"dir"`
		Entries []string `json:"entries"`
		Env     []string `json:"env"`
		PID     int      `json:"pid"`
	}
)

func attempt(err error) result {
	if err != nil {
		return result{Error: err.Error()}
	}
	return result{}
}

func main() {
	none := func(name string) connector.ActionSpec {
		return connector.ActionSpec{Name: name, Title: name, SideEffect: connector.None}
	}
	connector.Serve(&connector.Connector{
		Name:    "sandboxconn",
		Version: "0.1.0",
		Title:   "Sandbox test connector",
		Egress:  []string{"*"},
		Actions: []connector.Action{
			// net.Dial, around the guard: what the sandbox must stop.
			connector.NewAction(none("dial"), nil,
				func(_ context.Context, req connector.Request[addrIn]) (result, error) {
					c, err := net.DialTimeout("tcp", req.Input.Address, 2*time.Second)
					if err == nil {
						defer c.Close()
						_, err = io.WriteString(c, "from the connector\n")
					}
					return attempt(err), nil
				}),
			// net/http's default client, around the guard.
			connector.NewAction(none("http_get"), nil,
				func(_ context.Context, req connector.Request[urlIn]) (result, error) {
					resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(req.Input.URL)
					if err != nil {
						return attempt(err), nil
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					return result{Status: resp.StatusCode, Body: string(b)}, nil
				}),
			// The sanctioned ways: Fetch, and a connection through the guard.
			connector.NewAction(none("fetch"), nil,
				func(ctx context.Context, req connector.Request[urlIn]) (result, error) {
					resp, err := req.Fetch(ctx, &connector.HTTPRequest{URL: req.Input.URL, Timeout: 5 * time.Second})
					if err != nil {
						return attempt(err), nil
					}
					return result{Status: resp.StatusCode, Body: string(resp.Body)}, nil
				}),
			connector.NewAction(none("guard_dial"), nil,
				func(ctx context.Context, req connector.Request[addrIn]) (result, error) {
					ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					c, err := req.Egress.DialContext(ctx, "tcp", req.Input.Address)
					if err != nil {
						return attempt(err), nil
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if _, err := io.WriteString(c, "ping\n"); err != nil {
						return attempt(err), nil
					}
					line, err := bufio.NewReader(c).ReadString('\n')
					if err != nil {
						return attempt(err), nil
					}
					return result{Body: line}, nil
				}),
			connector.NewAction(none("read_file"), nil,
				func(_ context.Context, req connector.Request[pathIn]) (result, error) {
					b, err := os.ReadFile(req.Input.Path)
					if err != nil {
						return attempt(err), nil
					}
					return result{Body: string(b)}, nil
				}),
			connector.NewAction(none("self"), nil,
				func(context.Context, connector.Request[struct{}]) (selfOut, error) {
					dir, err := os.Getwd()
					if err != nil {
						return selfOut{}, fmt.Errorf("getwd: %w", err)
					}
					out := selfOut{Dir: dir, Env: os.Environ(), PID: os.Getpid(), Entries: []string{}}
					entries, err := os.ReadDir(".")
					if err != nil {
						return selfOut{}, fmt.Errorf("reading the working directory: %w", err)
					}
					for _, e := range entries {
						out.Entries = append(out.Entries, e.Name())
					}
					return out, nil
				}),
		},
	})
}
