// Package client is a Go client of the connector registry's HTTP API
// (/v1/registry, docs/registry.md): registering publishers and their keys,
// uploading and publishing packages, yanks and deprecations, search, and
// downloads and the signed index, each checked before it is returned.
// `relay publisher`, `relay connector publish` and `relay registry` are
// thin over it, and a server that installs from another registry uses it.
//
// An error the registry answers comes back as a *core.Error with the
// registry's code and message, so that callers match codes
// (core.ErrorCode) as the server's own packages do; a registry that does
// not answer is EUnavailable.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// Config says which registry to call, as whom, and how patiently.
type Config struct {
	// URL is the registry's server, such as http://127.0.0.1:8080 (the
	// routes are under its /v1/registry).
	URL string
	// APIKey is a workspace admin's API key (rly_…): RegisterPublisher
	// needs it, nothing else does.
	APIKey string
	// Token is a publisher's token (rpt_…): what a publisher does
	// (keys, uploads, publish, yank, deprecate) needs it. Reading needs
	// neither.
	Token string
	// HTTPClient sends the requests; default a client of its own. Its own
	// Timeout, if any, applies on top of Timeout and DownloadTimeout.
	HTTPClient *http.Client
	// Timeout bounds each request, its response read whole; default 60 s.
	Timeout time.Duration
	// DownloadTimeout bounds a package's download; default 10 minutes.
	DownloadTimeout time.Duration
	// Retries is how many more times a part of an upload is sent after a
	// network error or a 5xx or 429 answer (a part sent again replaces
	// the first); default 4, and a negative number for none.
	Retries int
	// RetryWait is the wait before the first retry, doubled for each
	// next one (or the server's Retry-After, if longer); default 500 ms.
	RetryWait time.Duration
	// Limits bound a package that is published or downloaded; default
	// relaypkg.DefaultLimits, the registry's own.
	Limits relaypkg.Limits
	// Now is the clock an index's expiry is checked against; default
	// time.Now.
	Now func() time.Time
}

// Defaults of Config's zero values.
const (
	DefaultTimeout         = 60 * time.Second
	DefaultDownloadTimeout = 10 * time.Minute
	DefaultRetries         = 4
	DefaultRetryWait       = 500 * time.Millisecond
)

// maxRetryWait caps a wait between retries, Retry-After included: an
// author at a terminal would rather see an error than a long silence.
const maxRetryWait = 30 * time.Second

// maxResponse caps a JSON answer read into memory (a search page, a
// version's manifest and index); maxIndex the registry's index, which
// lists every version of every package.
const (
	maxResponse = 16 << 20
	maxIndex    = 256 << 20
)

// Client calls one registry. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string // the registry's URL, without a trailing slash
}

// New returns a client of the registry at cfg.URL; EInvalid when the URL
// is not an http or https URL of a server.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.URL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, core.Errorf(core.EInvalid, "registry URL %q: want http(s)://host[:port], the registry's server", cfg.URL)
	}
	if u.User != nil {
		return nil, core.Errorf(core.EInvalid, "registry URL: put no user or password in it; keys and tokens have their own settings")
	}
	// The API's own prefix is the client's to add; a URL that has it
	// already names the same registry.
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/v1/registry")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = DefaultDownloadTimeout
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = DefaultRetryWait
	}
	if cfg.Limits == (relaypkg.Limits{}) {
		cfg.Limits = relaypkg.DefaultLimits
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg, base: strings.TrimRight(u.String(), "/")}, nil
}

// URL is the registry's server, as the client calls it.
func (c *Client) URL() string { return c.base }

// credential says which secret a request carries.
type credential int

const (
	anonymous credential = iota
	apiKey
	publisherToken
)

// request is one call of the API.
type request struct {
	method, path string
	auth         credential
	body         []byte
	contentType  string
}

// response is an answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errTimedOut is the cause of a request's context when its own timeout,
// not the caller's, ended it.
var errTimedOut = errors.New("timed out")

// send makes one request and reads its answer, up to limit bytes. The
// error is a transport's (EUnavailable: no answer) or the caller's
// context's; any answer, an error status included, is a response.
func (c *Client) send(ctx context.Context, r request, timeout time.Duration, limit int64) (*response, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, body)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(req, r.auth); err != nil {
		return nil, err
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, r, timeout, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, c.transportError(ctx, r, timeout, err)
	}
	if int64(len(data)) > limit {
		return nil, core.Errorf(core.ETooLarge, "the registry's answer to %s %s is over %d bytes", r.method, r.path, limit)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

func (c *Client) authorize(req *http.Request, auth credential) error {
	switch auth {
	case apiKey:
		if c.cfg.APIKey == "" {
			return core.Errorf(core.EUnauthenticated, "registering a publisher needs a workspace admin's API key (rly_…)")
		}
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	case publisherToken:
		if c.cfg.Token == "" {
			return core.Errorf(core.EUnauthenticated, "this needs the publisher's token (rpt_…), which registering the publisher printed")
		}
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	return nil
}

// transportError says why a request got no answer: the caller's context
// ended (its error, wrapped), the request's timeout passed, or the
// registry could not be reached (both EUnavailable).
func (c *Client) transportError(ctx context.Context, r request, timeout time.Duration, err error) error {
	if context.Cause(ctx) == errTimedOut {
		return core.Errorf(core.EUnavailable, "the registry at %s did not answer %s %s within %s", c.base, r.method, r.path, timeout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("registry %s %s: %w", r.method, r.path, context.Cause(ctx))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the method and URL
	}
	return core.Errorf(core.EUnavailable, "the registry at %s did not answer %s %s: %v", c.base, r.method, r.path, err)
}

// call makes a JSON request (in, when not nil, is the body) and decodes a
// successful answer into out (when not nil); an error status is the
// registry's error.
func (c *Client) call(ctx context.Context, method, path string, auth credential, in, out any) error {
	r := request{method: method, path: path, auth: auth}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r.body, r.contentType = b, "application/json"
	}
	resp, err := c.send(ctx, r, c.cfg.Timeout, maxResponse)
	if err != nil {
		return err
	}
	return decode(r, resp, out)
}

// decode turns an answer into out, or into the registry's error.
func decode(r request, resp *response, out any) error {
	if resp.status >= 300 {
		return answerError(resp)
	}
	if out == nil || resp.status == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return core.Errorf(core.EInternal, "the registry's answer to %s %s is not the JSON it should be: %v", r.method, r.path, err)
	}
	return nil
}

// answerError is the error an error answer stands for: the registry's
// problem (RFC 9457) as a *core.Error with its code and message, or, for
// an answer that is not one (a proxy's, say), the code its status
// usually carries.
func answerError(resp *response) error {
	ct, _, _ := mime.ParseMediaType(resp.header.Get("Content-Type"))
	var p struct {
		Code   string            `json:"code"`
		Detail string            `json:"detail"`
		Errors []core.FieldError `json:"errors"`
	}
	if ct == "application/problem+json" && json.Unmarshal(resp.body, &p) == nil && p.Code != "" {
		e := &core.Error{Code: p.Code, Message: p.Detail, Fields: p.Errors}
		if s, err := strconv.Atoi(resp.header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	text := strings.TrimSpace(string(resp.body))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	return core.Errorf(statusCode(resp.status), "the registry answered %d %s, without a problem document: %q",
		resp.status, http.StatusText(resp.status), text)
}

// statusCode is the code an HTTP status stands for when the answer does
// not say.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return core.EInvalid
	case http.StatusUnauthorized:
		return core.EUnauthenticated
	case http.StatusForbidden:
		return core.EForbidden
	case http.StatusNotFound:
		return core.ENotFound
	case http.StatusConflict:
		return core.EConflict
	case http.StatusRequestEntityTooLarge:
		return core.ETooLarge
	case http.StatusTooManyRequests:
		return core.ERateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return core.EUnavailable
	}
	return core.EInternal
}

// packagePath is the API path of a package, publisher/name, checked so
// that no name reaches another route.
func packagePath(pkg string) (string, error) {
	if err := relaypkg.CheckName(pkg); err != nil {
		return "", err
	}
	publisher, name, _ := strings.Cut(pkg, "/")
	return "/v1/registry/packages/" + url.PathEscape(publisher) + "/" + url.PathEscape(name), nil
}

// versionPath is the API path of a version of a package.
func versionPath(pkg, version string) (string, error) {
	p, err := packagePath(pkg)
	if err != nil {
		return "", err
	}
	if err := relaypkg.CheckVersion(version); err != nil {
		return "", err
	}
	return p + "/versions/" + url.PathEscape(version), nil
}

// publisherPath is the API path of a publisher.
func publisherPath(name string) string {
	return "/v1/registry/publishers/" + url.PathEscape(name)
}
