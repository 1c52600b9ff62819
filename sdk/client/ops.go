package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Readiness is what a server's readiness probe says of its dependencies.
type Readiness struct {
	Status string            `json:"status"` // ok, or unavailable
	Checks map[string]string `json:"checks"` // each ok or failing
}

// Health reports whether the server's process is up (GET /healthz).
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}

// Ready returns the server's readiness (GET /readyz): a server that is
// not ready (503) is a Readiness with Status "unavailable", not an error.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/readyz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r Readiness
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return nil, problem(resp)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("relay: decoding the readiness: %w", err)
	}
	return &r, nil
}

// Metrics returns the server's metrics in the Prometheus text format (GET
// /metrics).
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	return c.bytes(ctx, "/metrics")
}

// OpenAPI returns the server's OpenAPI document (GET /openapi.json).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	return c.bytes(ctx, "/openapi.json")
}
