package client

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Connector is a connector the workspace can make connections to.
type Connector struct {
	Name        string          `json:"name"`
	Package     string          `json:"package,omitempty"`
	Yanked      string          `json:"yanked,omitempty"`
	Title       string          `json:"title"`
	Description string          `json:"description,omitempty"`
	Publisher   string          `json:"publisher,omitempty"`
	Versions    []string        `json:"versions"` // newest first
	Latest      json.RawMessage `json:"latest"`   // the newest version's manifest, in part
	Sandbox     json.RawMessage `json:"sandbox"`
}

// Connection is a configured connection; its secrets are shown only as
// set or not.
type Connection struct {
	ID                string          `json:"id"`
	WorkspaceID       string          `json:"workspace_id"`
	Name              string          `json:"name"`
	Connector         string          `json:"connector"`
	Package           string          `json:"package,omitempty"`
	VersionConstraint string          `json:"version_constraint,omitempty"`
	Version           string          `json:"version"`
	Runtime           string          `json:"runtime"`
	Config            json.RawMessage `json:"config"`
	Secrets           map[string]bool `json:"secrets"`
	CreatedAt         time.Time       `json:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
	CreatedBy         string          `json:"created_by,omitempty"`
}

// ConnectionInput is a connection to create, or the changes to one
// (empty fields are left as they are). A nil value in Secrets removes
// that secret.
type ConnectionInput struct {
	Connector string             `json:"connector,omitempty"`
	Version   string             `json:"version,omitempty"`
	Name      string             `json:"name,omitempty"`
	Config    map[string]any     `json:"config,omitempty"`
	Secrets   map[string]*string `json:"secrets,omitempty"`
	Runtime   string             `json:"runtime,omitempty"`
}

// ConnectionPage is a page of connections; NextCursor is empty on the
// last.
type ConnectionPage struct {
	Data       []Connection `json:"data"`
	NextCursor string       `json:"next_cursor"`
}

// Preset says what an installed template's preset runs.
type Preset struct {
	Installation         string `json:"installation"`
	Template             string `json:"template"`
	TemplateVersion      string `json:"template_version"`
	Action               string `json:"action"`
	RequiresConfirmation bool   `json:"requires_confirmation,omitempty"`
}

// Action is an action the workspace can run.
type Action struct {
	ID                   string          `json:"id"` // <connector>.<action>, or <installation>.<preset>
	Connector            string          `json:"connector"`
	Version              string          `json:"version"`
	Title                string          `json:"title"`
	Description          string          `json:"description,omitempty"`
	InputSchema          json.RawMessage `json:"input_schema"`
	OutputSchema         json.RawMessage `json:"output_schema"`
	SideEffect           string          `json:"side_effect"` // none, read, write, destructive
	RequiresConfirmation bool            `json:"requires_confirmation"`
	Idempotent           bool            `json:"idempotent"`
	RetrySafe            bool            `json:"retry_safe"`
	Connections          []string        `json:"connections"`
	Preset               *Preset         `json:"preset,omitempty"`
}

// PreviewRequest asks what an action would do. Params is its input (a
// value that encodes as a JSON object; nil is {}).
type PreviewRequest struct {
	Params     any    `json:"params,omitempty"`
	Connection string `json:"connection,omitempty"`
}

// PreviewResult is what executing would do, and the token that lets one
// execution of exactly that request through.
type PreviewResult struct {
	Action       string          `json:"action"`
	Connection   string          `json:"connection"`
	Preview      json.RawMessage `json:"preview"`
	ConfirmToken string          `json:"confirm_token"`
	ExpiresAt    time.Time       `json:"expires_at"`
}

// ExecuteRequest runs an action. ConfirmToken is a preview's, for an
// action that requires confirmation; Mode is ModeSync (the default: the
// answer is the finished run) or ModeAsync (the queued run).
type ExecuteRequest struct {
	Params       any    `json:"params,omitempty"`
	Connection   string `json:"connection,omitempty"`
	ConfirmToken string `json:"confirm_token,omitempty"`
	Mode         string `json:"mode,omitempty"`
}

// Modes of an execute.
const (
	ModeSync  = "sync"
	ModeAsync = "async"
)

// RunError is why a run failed.
type RunError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// Run is one execution of an action.
type Run struct {
	ID             string          `json:"id"`
	WorkspaceID    string          `json:"workspace_id"`
	Action         string          `json:"action"`
	Connector      string          `json:"connector"`
	Package        string          `json:"package,omitempty"`
	Version        string          `json:"version"`
	Runtime        string          `json:"runtime"`
	ConnectionID   string          `json:"connection_id"`
	Connection     string          `json:"connection"`
	KeyID          string          `json:"key_id"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Status         string          `json:"status"` // queued, running, succeeded, failed, interrupted
	Params         json.RawMessage `json:"params"`
	Output         json.RawMessage `json:"output,omitempty"`
	Error          *RunError       `json:"error,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	StartedAt      *time.Time      `json:"started_at,omitempty"`
	FinishedAt     *time.Time      `json:"finished_at,omitempty"`
	DurationMS     *int64          `json:"duration_ms,omitempty"`
	Attempt        int             `json:"attempt"`
	RetryOf        string          `json:"retry_of,omitempty"`
	Preset         *Preset         `json:"preset,omitempty"`
}

// Final reports whether the run's status can no longer change.
func (r *Run) Final() bool {
	return r.Status == "succeeded" || r.Status == "failed" || r.Status == "interrupted"
}

// RunPage is a page of runs, newest first; NextCursor is empty on the
// last.
type RunPage struct {
	Data       []Run  `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// RunFilter narrows ListRuns: to an action, a status, runs created from
// Since (included) to Until (not); Limit 0 takes the server's default
// page size, Cursor "" the first page.
type RunFilter struct {
	Action, Status string
	Since, Until   time.Time
	Limit          int
	Cursor         string
}

// Execution is what an execute answered: the run, and whether it is the
// stored answer to an earlier request with the same idempotency key
// (the action did not run again).
type Execution struct {
	Run      Run
	Replayed bool
}

// AuditRecord is one record of the workspace's hash-chained audit log.
type AuditRecord struct {
	WorkspaceID string          `json:"workspace_id"`
	Seq         int64           `json:"seq"`
	ID          string          `json:"id"`
	Time        time.Time       `json:"time"`
	KeyID       string          `json:"key_id,omitempty"`
	Role        string          `json:"role,omitempty"`
	IP          string          `json:"ip,omitempty"`
	RequestID   string          `json:"request_id,omitempty"`
	Action      string          `json:"action"`
	Target      string          `json:"target,omitempty"`
	Outcome     string          `json:"outcome"`
	Details     json.RawMessage `json:"details,omitempty"`
	PrevHash    []byte          `json:"prev_hash"`
	Hash        []byte          `json:"hash"`
}

// AuditPage is a page of audit records; NextCursor is empty on the last.
type AuditPage struct {
	Data       []AuditRecord `json:"data"`
	NextCursor string        `json:"next_cursor"`
}

// NewIdempotencyKey returns a new random idempotency key. Send it with an
// execute, and the same key again to retry that execute: the server runs
// it once and answers the retry with the first run.
func NewIdempotencyKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ListConnectors returns the connectors the workspace can use (GET
// /v1/connectors).
func (c *Client) ListConnectors(ctx context.Context) ([]Connector, error) {
	var out struct {
		Data []Connector `json:"data"`
	}
	return out.Data, c.do(ctx, http.MethodGet, "/v1/connectors", nil, &out)
}

// ListConnections returns a page of the workspace's connections (GET
// /v1/connections).
func (c *Client) ListConnections(ctx context.Context, limit int, cursor string) (*ConnectionPage, error) {
	var p ConnectionPage
	return &p, c.do(ctx, http.MethodGet, "/v1/connections"+pageQuery(nil, limit, cursor), nil, &p)
}

// CreateConnection makes a connection (POST /v1/connections, admin). The
// connector checks its config and secrets unless check is false.
func (c *Client) CreateConnection(ctx context.Context, in ConnectionInput, check bool) (*Connection, error) {
	var conn Connection
	return &conn, c.do(ctx, http.MethodPost, "/v1/connections"+checkQuery(check), in, &conn)
}

// Connection returns one connection (GET /v1/connections/{id}).
func (c *Client) Connection(ctx context.Context, id string) (*Connection, error) {
	var conn Connection
	return &conn, c.do(ctx, http.MethodGet, "/v1/connections/"+url.PathEscape(id), nil, &conn)
}

// UpdateConnection changes a connection (PATCH /v1/connections/{id},
// admin).
func (c *Client) UpdateConnection(ctx context.Context, id string, in ConnectionInput, check bool) (*Connection, error) {
	var conn Connection
	return &conn, c.do(ctx, http.MethodPatch, "/v1/connections/"+url.PathEscape(id)+checkQuery(check), in, &conn)
}

// DeleteConnection deletes a connection and its secrets (DELETE
// /v1/connections/{id}, admin).
func (c *Client) DeleteConnection(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/connections/"+url.PathEscape(id), nil, nil)
}

// ListActions returns the actions the workspace can run (GET /v1/actions).
func (c *Client) ListActions(ctx context.Context) ([]Action, error) {
	var out struct {
		Data []Action `json:"data"`
	}
	return out.Data, c.do(ctx, http.MethodGet, "/v1/actions", nil, &out)
}

// Action returns one action (GET /v1/actions/{id}).
func (c *Client) Action(ctx context.Context, id string) (*Action, error) {
	var a Action
	return &a, c.do(ctx, http.MethodGet, "/v1/actions/"+url.PathEscape(id), nil, &a)
}

// Preview says what executing an action would do, without doing it, and
// returns the token an action that requires confirmation is executed
// with (POST /v1/actions/{id}/preview, developer). idempotencyKey, when
// not empty, is the key the execute will use (a connector may show it).
func (c *Client) Preview(ctx context.Context, actionID string, req PreviewRequest, idempotencyKey string) (*PreviewResult, error) {
	var p PreviewResult
	_, err := c.send(ctx, http.MethodPost, "/v1/actions/"+url.PathEscape(actionID)+"/preview", idemHeader(idempotencyKey), req, &p)
	return &p, err
}

// Execute runs an action (POST /v1/actions/{id}/execute, developer) under
// idempotencyKey (NewIdempotencyKey; required): retried with the same
// key, it runs once, and the retry answers the first run (Replayed). A
// run that failed is an *Error whose Run is the failed run.
func (c *Client) Execute(ctx context.Context, actionID string, req ExecuteRequest, idempotencyKey string) (*Execution, error) {
	if idempotencyKey == "" {
		return nil, fmt.Errorf("relay: an execute needs an idempotency key (NewIdempotencyKey), so that a retry runs it once")
	}
	var e Execution
	h, err := c.send(ctx, http.MethodPost, "/v1/actions/"+url.PathEscape(actionID)+"/execute", idemHeader(idempotencyKey), req, &e.Run)
	if err != nil {
		return nil, err
	}
	e.Replayed = h.Get("Idempotent-Replayed") == "true"
	return &e, nil
}

// ListRuns returns a page of the workspace's runs, newest first (GET
// /v1/runs).
func (c *Client) ListRuns(ctx context.Context, f RunFilter) (*RunPage, error) {
	q := url.Values{}
	if f.Action != "" {
		q.Set("action", f.Action)
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	var p RunPage
	return &p, c.do(ctx, http.MethodGet, "/v1/runs"+pageQuery(q, f.Limit, f.Cursor), nil, &p)
}

// Run returns one run (GET /v1/runs/{id}).
func (c *Client) Run(ctx context.Context, id string) (*Run, error) {
	var r Run
	return &r, c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, &r)
}

// RetryRun runs a failed or interrupted run again, as a new attempt
// (POST /v1/runs/{id}/retry, developer); confirmToken is a preview's for
// an action that requires confirmation, mode ModeSync or ModeAsync.
func (c *Client) RetryRun(ctx context.Context, id, mode, confirmToken string) (*Run, error) {
	body := map[string]string{}
	if mode != "" {
		body["mode"] = mode
	}
	if confirmToken != "" {
		body["confirm_token"] = confirmToken
	}
	var r Run
	return &r, c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/retry", body, &r)
}

// ListAudit returns a page of the workspace's audit records (GET
// /v1/audit, admin).
func (c *Client) ListAudit(ctx context.Context, limit int, cursor string) (*AuditPage, error) {
	var p AuditPage
	return &p, c.do(ctx, http.MethodGet, "/v1/audit"+pageQuery(nil, limit, cursor), nil, &p)
}

// FollowRun follows a run's events (GET /v1/runs/{id}/events, Server-Sent
// Events) until it ends, calling onStatus (when not nil) with the run at
// each status it reaches, and returns the final run. A dropped stream is
// resumed where it left off (Last-Event-ID). The client's timeout bounds
// each connection, not the whole: set no timeout on a client that follows
// long runs, and end it with ctx instead.
func (c *Client) FollowRun(ctx context.Context, id string, onStatus func(*Run)) (*Run, error) {
	var last *Run
	lastID := ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/v1/runs/"+url.PathEscape(id)+"/events", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.key)
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if resp.StatusCode == http.StatusNoContent && last != nil {
			resp.Body.Close()
			return last, nil // the final event was seen before
		}
		if resp.StatusCode != http.StatusOK {
			defer resp.Body.Close()
			return nil, problem(resp)
		}
		err = readEvents(resp.Body, func(event, evID string, data []byte) bool {
			if evID != "" {
				lastID = evID
			}
			if event != "status" {
				return true
			}
			var r Run
			if json.Unmarshal(data, &r) != nil {
				return true
			}
			last = &r
			if onStatus != nil {
				onStatus(&r)
			}
			return !r.Final()
		})
		resp.Body.Close()
		if last != nil && last.Final() {
			return last, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		_ = err // the stream ended or broke: resume it
	}
}

// readEvents reads Server-Sent Events from r, calling fn with each
// event's name, id and data until fn returns false or the stream ends.
func readEvents(r io.Reader, fn func(event, id string, data []byte) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	event, id := "", ""
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if data != nil || event != "" {
				if !fn(cmp.Or(event, "message"), id, data) {
					return nil
				}
			}
			event, id, data = "", "", nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "id":
			id = value
		case "data":
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, value...)
		}
	}
	return sc.Err()
}

func idemHeader(key string) map[string]string {
	if key == "" {
		return nil
	}
	return map[string]string{"Idempotency-Key": key}
}

func checkQuery(check bool) string {
	if check {
		return ""
	}
	return "?check=false"
}

// pageQuery is q (may be nil) with limit and cursor, as a query string
// ("" when empty).
func pageQuery(q url.Values, limit int, cursor string) string {
	if q == nil {
		q = url.Values{}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
