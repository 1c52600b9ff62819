// Command guest is a connector for the SDK's tests of the WASM guest: each
// action exercises one thing the SDK does inside a module.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/connector/nethttp"
)

// FetchInput is the input of fetch and fetch_nethttp. Redirects is how
// many redirects to follow; NoRedirect, for fetch_nethttp, follows none
// (its client follows up to 5).
type FetchInput struct {
	URL        string `json:"url"`
	Redirects  int    `json:"redirects,omitempty"`
	NoRedirect bool   `json:"no_redirect,omitempty"`
}

// FetchOutput is what came back.
type FetchOutput struct {
	Status    int    `json:"status"`
	Header    string `json:"header"`
	BodyBytes int    `json:"body_bytes"`
	Truncated bool   `json:"truncated,omitempty"`
	ReadError string `json:"read_error,omitempty"`
}

// SleepInput is the input of sleep.
type SleepInput struct {
	MS int `json:"ms"`
}

// Empty is an empty input or output.
type Empty struct{}

func main() {
	connector.Serve(&connector.Connector{
		Name: "guest", Version: "1.0.0", Title: "Guest", Egress: []string{"*"},
		Actions: []connector.Action{
			connector.NewAction(connector.ActionSpec{Name: "fetch", Title: "Fetch", SideEffect: connector.None}, nil, fetch),
			connector.NewAction(connector.ActionSpec{Name: "fetch_nethttp", Title: "Fetch with net/http", SideEffect: connector.None}, nil, fetchNetHTTP),
			connector.NewAction(connector.ActionSpec{Name: "log", Title: "Log", SideEffect: connector.None}, nil,
				func(ctx context.Context, _ connector.Request[Empty]) (Empty, error) {
					connector.LoggerFromContext(ctx).Warn("guest says hello", "answer", 42)
					return Empty{}, nil
				}),
			connector.NewAction(connector.ActionSpec{Name: "sleep", Title: "Sleep", SideEffect: connector.None}, nil,
				func(ctx context.Context, req connector.Request[SleepInput]) (Empty, error) {
					time.Sleep(time.Duration(req.Input.MS) * time.Millisecond)
					return Empty{}, nil
				}),
			connector.NewAction(connector.ActionSpec{Name: "panic", Title: "Panic", SideEffect: connector.None}, nil,
				func(context.Context, connector.Request[Empty]) (Empty, error) { panic("guest panics on purpose") }),
		},
	})
}

// fetch GETs a URL with connector.Fetch and says what came back.
func fetch(ctx context.Context, req connector.Request[FetchInput]) (FetchOutput, error) {
	resp, err := req.Fetch(ctx, &connector.HTTPRequest{
		URL: req.Input.URL, Header: connector.Header{"X-Guest": {"yes"}},
		MaxRedirects: req.Input.Redirects, Timeout: 5 * time.Second,
	})
	if err != nil {
		// Classified by the SDK: an *egress.DeniedError, a *connector.Error
		// or the context's error, even wrapped.
		return FetchOutput{}, fmt.Errorf("fetching: %w", err)
	}
	return FetchOutput{Status: resp.StatusCode, Header: resp.Header.Get("X-Answer"), BodyBytes: len(resp.Body), Truncated: resp.Truncated}, nil
}

// fetchNetHTTP GETs a URL with nethttp's client and says what came back.
func fetchNetHTTP(ctx context.Context, req connector.Request[FetchInput]) (FetchOutput, error) {
	client := nethttp.Client(req.Egress, 5*time.Second)
	if req.Input.NoRedirect {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.Input.URL, nil)
	if err != nil {
		return FetchOutput{}, connector.InvalidInput("url: %v", err)
	}
	hreq.Header.Set("X-Guest", "yes")
	resp, err := client.Do(hreq)
	if err != nil {
		return FetchOutput{}, fmt.Errorf("fetching: %w", err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	out := FetchOutput{Status: resp.StatusCode, Header: resp.Header.Get("X-Answer"), BodyBytes: int(n)}
	if err != nil {
		out.ReadError = err.Error()
	}
	return out, nil
}
