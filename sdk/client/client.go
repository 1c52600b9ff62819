// Package client is the Go client of Relay's HTTP API, for apps, scripts and
// agents. It needs only the standard library.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one Relay server with one API key. It is safe for concurrent
// use.
type Client struct {
	baseURL string
	key     string
	http    *http.Client
}

// New returns a client for the server at baseURL (http://127.0.0.1:8080)
// that authenticates with key. A nil httpClient uses one with a 60 s timeout.
func New(baseURL, key string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), key: key, http: httpClient}
}

// Error is a problem response (RFC 9457) from the server. Code is the
// stable machine code: match on it, not on Detail.
type Error struct {
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Title      string `json:"title"`
	Detail     string `json:"detail"`
	RequestID  string `json:"request_id"`
	RetryAfter time.Duration
	// Run is the run, when the request ran one that failed (an execute's
	// or a retry's).
	Run *Run `json:"run,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("relay: %d %s: %s (request %s)", e.Status, e.Code, e.Detail, e.RequestID)
}

// Role is what a key may do: viewer, developer or admin.
type Role string

const (
	RoleViewer    Role = "viewer"
	RoleDeveloper Role = "developer"
	RoleAdmin     Role = "admin"
)

// RateLimit is a request quota.
type RateLimit struct {
	Rate  int `json:"rate"`
	Burst int `json:"burst"`
}

// Workspace is the caller's workspace, with the key that asked.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	RateLimit RateLimit `json:"rate_limit"`
	// The retention in force: days of ended runs and of audit records (0:
	// forever), hours of idempotency keys; each the server's default when
	// its …Default is true.
	RunRetentionDays            int       `json:"run_retention_days"`
	RunRetentionDefault         bool      `json:"run_retention_default"`
	AuditRetentionDays          int       `json:"audit_retention_days"`
	AuditRetentionDefault       bool      `json:"audit_retention_default"`
	IdempotencyRetentionHours   int       `json:"idempotency_retention_hours"`
	IdempotencyRetentionDefault bool      `json:"idempotency_retention_default"`
	CreatedAt                   time.Time `json:"created_at"`
	Key                         struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Role Role   `json:"role"`
	} `json:"key"`
}

// APIKey describes a key; its secret is shown only by CreateKey.
type APIKey struct {
	ID          string    `json:"id"`
	WorkspaceID string    `json:"workspace_id"`
	Name        string    `json:"name"`
	Role        Role      `json:"role"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// CreatedKey is a new key with its secret: the only time it is shown.
type CreatedKey struct {
	APIKey
	Key string `json:"key"`
}

// KeyPage is one page of keys; NextCursor is empty on the last page.
type KeyPage struct {
	Data       []APIKey `json:"data"`
	NextCursor string   `json:"next_cursor"`
}

// Workspace returns the caller's workspace (GET /v1/workspace).
func (c *Client) Workspace(ctx context.Context) (*Workspace, error) {
	var ws Workspace
	return &ws, c.do(ctx, http.MethodGet, "/v1/workspace", nil, &ws)
}

// SetRunRetention sets how many days the workspace keeps its ended runs;
// nil goes back to the server's default (PATCH /v1/workspace, admin).
func (c *Client) SetRunRetention(ctx context.Context, days *int) (*Workspace, error) {
	return c.SetRetention(ctx, RetentionChange{"run_retention_days": days})
}

// RetentionChange is a change of the workspace's retention settings, by
// name: run_retention_days, audit_retention_days (days) and
// idempotency_retention_hours (hours); a nil value goes back to the
// server's default, a setting left out stays.
type RetentionChange map[string]*int

// SetRetention changes the workspace's retention settings, all or none
// (PATCH /v1/workspace, admin).
func (c *Client) SetRetention(ctx context.Context, change RetentionChange) (*Workspace, error) {
	var ws Workspace
	return &ws, c.do(ctx, http.MethodPatch, "/v1/workspace", change, &ws)
}

// ErasePreview is what erasing the workspace would delete, by table, and
// the token that confirms it.
type ErasePreview struct {
	Workspace struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"workspace"`
	Rows         map[string]int64 `json:"rows"`
	ConfirmToken string           `json:"confirm_token"`
	ExpiresAt    time.Time        `json:"expires_at"`
}

// Erasure is the operator's tombstone of an erased workspace.
type Erasure struct {
	WorkspaceID string    `json:"workspace_id"`
	KeyID       string    `json:"key_id"`
	RequestID   string    `json:"request_id"`
	AuditSeq    int64     `json:"audit_seq"`
	AuditHash   string    `json:"audit_hash"`
	ErasedAt    time.Time `json:"erased_at"`
}

// PreviewEraseWorkspace says what erasing the workspace would delete and
// returns the token that confirms it (POST /v1/workspace/delete/preview,
// admin).
func (c *Client) PreviewEraseWorkspace(ctx context.Context) (*ErasePreview, error) {
	var p ErasePreview
	return &p, c.do(ctx, http.MethodPost, "/v1/workspace/delete/preview", nil, &p)
}

// EraseWorkspace erases the caller's workspace and everything it owns
// with a preview's confirm token; every key of it stops working (DELETE
// /v1/workspace, admin).
func (c *Client) EraseWorkspace(ctx context.Context, confirmToken string) (*Erasure, error) {
	var e Erasure
	return &e, c.do(ctx, http.MethodDelete, "/v1/workspace", map[string]string{"confirm_token": confirmToken}, &e)
}

// ExportWorkspace returns the archive (a gzipped tar) of everything the
// workspace owns (POST /v1/workspace/export, admin).
func (c *Client) ExportWorkspace(ctx context.Context) ([]byte, error) {
	var data []byte
	_, err := c.send(ctx, http.MethodPost, "/v1/workspace/export", nil, nil, &data)
	return data, err
}

// CreateKey makes an API key in the caller's workspace (POST /v1/keys,
// admin).
func (c *Client) CreateKey(ctx context.Context, name string, role Role) (*CreatedKey, error) {
	var k CreatedKey
	body := map[string]string{"name": name, "role": string(role)}
	return &k, c.do(ctx, http.MethodPost, "/v1/keys", body, &k)
}

// ListKeys returns a page of the workspace's active keys (GET /v1/keys,
// admin).
// limit 0 takes the server's default; cursor is "" for the first page.
func (c *Client) ListKeys(ctx context.Context, limit int, cursor string) (*KeyPage, error) {
	var p KeyPage
	return &p, c.do(ctx, http.MethodGet, "/v1/keys"+pageQuery(nil, limit, cursor), nil, &p)
}

// Key returns one active key (GET /v1/keys/{id}, admin).
func (c *Client) Key(ctx context.Context, id string) (*APIKey, error) {
	var k APIKey
	return &k, c.do(ctx, http.MethodGet, "/v1/keys/"+url.PathEscape(id), nil, &k)
}

// RevokeKey revokes a key; it stops working at once (DELETE
// /v1/keys/{id}, admin).
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/keys/"+url.PathEscape(id), nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	_, err := c.send(ctx, method, path, nil, in, out)
	return err
}

// rawBody is a request body sent as it is, with its content type.
type rawBody struct {
	data        []byte
	contentType string
}

// send makes a request with headers and in as its body (JSON, or a
// rawBody as it is; none when nil), puts a success's body into out (a
// *[]byte as it is, anything else from JSON; nothing when nil), and
// returns the answer's header; an answer of 300 or more is an *Error.
func (c *Client) send(ctx context.Context, method, path string, headers map[string]string, in, out any) (http.Header, error) {
	var body io.Reader
	contentType := ""
	switch b := in.(type) {
	case nil:
	case rawBody:
		body, contentType = bytes.NewReader(b.data), b.contentType
	default:
		data, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body, contentType = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if _, raw := out.(*[]byte); !raw {
		req.Header.Set("Accept", "application/json")
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp.Header, problem(resp)
	}
	// JSON answers are small; the cap keeps a misbehaving server from
	// exhausting the caller's memory. A package or a metrics page may be
	// larger.
	limit := int64(16 << 20)
	if _, raw := out.(*[]byte); raw {
		limit = 1 << 30
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return resp.Header, err
	}
	switch o := out.(type) {
	case nil:
		return resp.Header, nil
	case *[]byte:
		*o = data
		return resp.Header, nil
	}
	if resp.StatusCode == http.StatusNoContent {
		return resp.Header, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.Header, fmt.Errorf("relay: decoding the %s %s response: %w", method, path, err)
	}
	return resp.Header, nil
}

// problem reads an answer of 300 or more as an *Error.
func problem(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	e := &Error{}
	if json.Unmarshal(data, e) != nil || e.Code == "" {
		e = &Error{Code: "unexpected_response", Detail: strings.TrimSpace(string(data))}
	}
	e.Status = resp.StatusCode
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
