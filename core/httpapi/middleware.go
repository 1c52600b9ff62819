package httpapi

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/tracing"
)

// Keys of the values kept in a request's Locals.
const (
	localRequestID = "relay.request_id"
	localRoute     = "relay.route"
	localPrincipal = "relay.principal"
	localObserved  = "relay.observed"
)

// A client may name its own request id if it is short and plain; otherwise
// the server makes one.
var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// observe is the outermost middleware: it gives the request an id and a
// deadline, sets the security headers, turns a returned error into its
// problem response, and then logs and measures the request.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	c.Locals(localObserved, true)
	rid := c.Get("X-Request-Id")
	if !requestIDRE.MatchString(rid) {
		rid = core.NewID()
	}
	c.Locals(localRequestID, rid)
	c.Set("X-Request-Id", rid)
	setSecurityHeaders(c)

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	var span trace.Span
	if tracing.Enabled() {
		// The caller's trace, if it sent one (traceparent), goes on here.
		ctx = tracing.Extract(ctx, func(name string) string { return c.Get(name) }) // Immutable: copies
		ctx, span = tracing.Start(ctx, c.Method(), trace.WithSpanKind(trace.SpanKindServer))
	}
	c.SetUserContext(ctx)

	if err := c.Next(); err != nil {
		if herr := s.handleError(c, err); herr != nil {
			s.log.Error("writing an error response failed", "request_id", rid, "error", herr)
			c.Status(fiber.StatusInternalServerError)
		}
	}

	route, _ := c.Locals(localRoute).(string)
	if route == "" {
		route = "unmatched"
	}
	status := c.Response().StatusCode()
	elapsed := time.Since(start)
	method := c.Method()
	code := strconv.Itoa(status)
	s.metrics.requests.WithLabelValues(method, route, code).Inc()
	s.metrics.latency.WithLabelValues(method, route, code).Observe(elapsed.Seconds())

	// The path is logged without its query string, and no header is logged:
	// that is where keys travel.
	fields := []any{
		"request_id", rid, "method", method, "path", c.Path(), "route", route,
		"status", status, "duration_ms", float64(elapsed.Microseconds()) / 1000, "ip", c.IP(),
	}
	if p, ok := c.Locals(localPrincipal).(*principal); ok {
		fields = append(fields, "workspace_id", p.Workspace.ID, "key_id", p.Key.ID)
	}
	s.log.Info("request", fields...)
	if span != nil {
		endRequestSpan(c, span, route, status, rid)
	}
	return nil
}

// endRequestSpan names a request's span by its route and ends it with
// what was answered.
func endRequestSpan(c *fiber.Ctx, span trace.Span, route string, status int, rid string) {
	method := c.Method()
	span.SetName(method + " " + route)
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", method), attribute.String("http.route", route),
		attribute.String("url.path", c.Path()), attribute.Int("http.response.status_code", status),
		attribute.String("relay.request_id", rid),
	}
	if p, ok := c.Locals(localPrincipal).(*principal); ok {
		attrs = append(attrs, attribute.String("relay.workspace_id", p.Workspace.ID))
	}
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	span.End()
}

func setSecurityHeaders(c *fiber.Ctx) {
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	c.Set("Cross-Origin-Resource-Policy", "same-origin")
	c.Set("Cache-Control", "no-store")
}

// handleError writes the problem response for err. Fiber also calls it for
// requests it refuses before any middleware runs (a body over the limit,
// oversized headers), so it sets what observe would have set.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	err = s.outage(c, err)
	p, internal := problemFor(err)
	rid, _ := c.Locals(localRequestID).(string)
	if rid == "" {
		rid = core.NewID()
		c.Set("X-Request-Id", rid)
		setSecurityHeaders(c)
	}
	p.RequestID = rid
	// Only a path that matched a route is named: any other may be
	// anything the client sent, keys included.
	if _, matched := c.Locals(localRoute).(string); matched {
		p.Instance = c.Path()
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		retryAfterHeader(c, ce)
	}
	if internal {
		var fe *fiber.Error
		if errors.As(err, &fe) {
			// What the HTTP layer says may quote the request.
			err = fmt.Errorf("HTTP layer error %d", fe.Code)
		}
		s.log.Error("internal error", "request_id", rid, "method", c.Method(), "path", c.Path(), "error", err)
	}
	if observed, _ := c.Locals(localObserved).(bool); !observed {
		// Refused before the body was read: fasthttp closes the
		// connection after this answer, so let the client finish sending.
		if lc, ok := c.Context().Conn().(*lingerConn); ok {
			lc.lingerOnClose()
		}
		s.log.Info("request refused", "request_id", rid, "status", p.Status, "code", p.Code, "ip", c.IP())
		s.metrics.requests.WithLabelValues(c.Method(), "unmatched", strconv.Itoa(p.Status)).Inc()
	}
	return writeProblem(c, p)
}

// outageRetryAfter is what a 503 for a dependency outage asks the client
// to wait: restarts and failovers take seconds.
const outageRetryAfter = 2 * time.Second

// outageDetector is a store that tells a database outage from other
// failures (sqlstore.Store does).
type outageDetector interface{ Outage(error) bool }

// outage turns an error that says the database is unreachable into 503
// unavailable with Retry-After, as docs/api.md promises for "a dependency
// is down": a client that retries on 503 (with the same Idempotency-Key)
// then gets through once it is back. The cause goes to the log.
func (s *Server) outage(c *fiber.Ctx, err error) error {
	d, ok := s.cfg.Store.(outageDetector)
	if !ok || core.ErrorCode(err) != core.EInternal || !d.Outage(err) {
		return err
	}
	rid, _ := c.Locals(localRequestID).(string)
	s.log.Warn("the database is unavailable", "request_id", rid, "method", c.Method(), "path", c.Path(), "error", err)
	return &core.Error{Code: core.EUnavailable, RetryAfter: outageRetryAfter,
		Message: "the database is unavailable; retry shortly (with the same Idempotency-Key)"}
}

func (s *Server) logPanic(c *fiber.Ctx, v any) {
	rid, _ := c.Locals(localRequestID).(string)
	stack := string(debug.Stack())
	s.log.Error("panic in handler", "request_id", rid, "panic", v, "stack", stack)
}

// principal is who is calling: the key presented and its workspace.
type principal struct {
	Key       *core.APIKey
	Workspace *core.Workspace
}

// handle wraps a route's handler with the check every /v1 route passes
// (admit).
func (s *Server) handle(r route) fiber.Handler {
	template := openAPIPath(r.path)
	open := r.role == "" && strings.HasPrefix(r.path, "/v1/")
	return func(c *fiber.Ctx) error {
		c.Locals(localRoute, template)
		if r.role == "" && (!open || !carriesAPIKey(c)) {
			if open {
				if _, err := s.charge(c, policyAddress, "ip:"+c.IP(), s.cfg.DefaultRateLimit); err != nil {
					return err
				}
			}
			return r.handler(c, nil)
		}
		p, err := s.admit(c, r)
		if err != nil {
			return err
		}
		return r.handler(c, p)
	}
}

// admit authenticates the caller, charges the workspace's quota, then
// enforces the route's role. The order matters: a refused call still
// costs quota. A key is checked before anything about the client's
// address, so that a flood of bad keys from an address (a NAT, a proxy)
// does not lock out the valid keys that share it; only a request whose
// key fails is charged to its address.
func (s *Server) admit(c *fiber.Ctx, r route) (*principal, error) {
	p, err := s.authenticate(c)
	if err != nil {
		if core.ErrorCode(err) != core.EUnauthenticated {
			return nil, err // the store failed: not the caller's fault
		}
		return nil, s.chargeFailure(c, err)
	}
	c.Locals(localPrincipal, p)
	limit := s.cfg.DefaultRateLimit
	if p.Workspace.RateLimit != nil {
		limit = *p.Workspace.RateLimit
	}
	if _, err := s.charge(c, policyWorkspace, "ws:"+p.Workspace.ID, limit); err != nil {
		return nil, err
	}
	if !p.Key.Role.Allows(r.role) {
		if r.method != fiber.MethodGet {
			// A refused attempt to change something is on record too.
			s.auditDenied(c, p, r)
		}
		return nil, core.Errorf(core.EForbidden, "this needs a key with the %s role; this key is %s", r.role, p.Key.Role)
	}
	return p, nil
}

// chargeFailure charges a failed authentication to the client's address,
// and returns the error to answer with: authErr, or 429 once the address
// has used up its quota. An address over its quota is remembered until it
// may try again, so that its next attempts cost not even the limiter.
func (s *Server) chargeFailure(c *fiber.Ctx, authErr error) error {
	ip := c.IP()
	limit := s.cfg.DefaultRateLimit
	if wait := s.guessers.blockedFor(ip, time.Now()); wait > 0 {
		setRateLimitHeaders(c, policyAddress, limit, 0, wait)
		return &core.Error{Code: core.ERateLimited, RetryAfter: wait, // handleError sets Retry-After
			Message: fmt.Sprintf("too many failed authentications from this address; retry in %d s", max(1, ceilSeconds(wait)))}
	}
	d, err := s.charge(c, policyAddress, "ip:"+ip, limit)
	if err != nil {
		if !d.Allowed {
			s.guessers.block(ip, time.Now().Add(d.RetryAfter))
		}
		return err
	}
	return authErr
}

// carriesAPIKey reports whether the request's Authorization is an API
// key's (a public route may take another kind of token).
func carriesAPIKey(c *fiber.Ctx) bool {
	scheme, token, ok := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(strings.TrimSpace(token), core.KeyPrefix)
}

// authenticate checks the bearer key. A malformed key is refused before the
// store is asked; every refusal says the same so it tells an attacker nothing.
func (s *Server) authenticate(c *fiber.Ctx) (*principal, error) {
	unauth := core.Errorf(core.EUnauthenticated, "a valid API key is required: Authorization: Bearer rly_…")
	h := c.Get(fiber.HeaderAuthorization)
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, unauth
	}
	id, secret, err := core.ParseKey(strings.TrimSpace(token))
	if err != nil {
		return nil, unauth
	}
	ctx := c.UserContext()
	key, ws, err := s.cfg.Store.KeyForAuth(ctx, id)
	if core.ErrorCode(err) == core.ENotFound {
		return nil, unauth
	} else if err != nil {
		return nil, err
	}
	if !s.cfg.Hasher.Verify(id, secret, key.Hash) {
		return nil, unauth
	}
	return &principal{Key: key, Workspace: ws}, nil
}

// The quotas a request is charged to, as the RateLimit headers name them:
// the workspace's for an authenticated request, the client address's for
// one whose key failed.
const (
	policyWorkspace = `"workspace"`
	policyAddress   = `"address"`
)

// charge takes one request from the quota named bucket, sets the RateLimit
// headers (draft-ietf-httpapi-ratelimit-headers) and refuses with 429 when
// the quota is used up.
func (s *Server) charge(c *fiber.Ctx, policy, bucket string, limit core.RateLimit) (core.RateDecision, error) {
	d, err := s.cfg.Limiter.Allow(c.UserContext(), bucket, limit)
	if err != nil {
		// Never let a request through unlimited: refuse it instead.
		s.log.Error("rate limiter failed", "error", err)
		return d, &core.Error{Code: core.EUnavailable, RetryAfter: outageRetryAfter,
			Message: "the rate limiter is unavailable; retry shortly"}
	}
	setRateLimitHeaders(c, policy, limit, d.Remaining, d.ResetAfter)
	if !d.Allowed {
		wait := max(1, ceilSeconds(d.RetryAfter))
		return d, &core.Error{Code: core.ERateLimited, RetryAfter: time.Duration(wait) * time.Second, // handleError sets Retry-After
			Message: fmt.Sprintf("over the limit of %d requests/s (burst %d); retry in %d s", limit.Rate, limit.Burst, wait)}
	}
	return d, nil
}

func setRateLimitHeaders(c *fiber.Ctx, policy string, limit core.RateLimit, remaining int, reset time.Duration) {
	window := (limit.Burst + limit.Rate - 1) / limit.Rate
	c.Set("RateLimit-Policy", policy+";q="+strconv.Itoa(limit.Burst)+";w="+strconv.Itoa(window))
	c.Set("RateLimit", policy+";r="+strconv.Itoa(remaining)+";t="+strconv.Itoa(ceilSeconds(reset)))
}

// guessers remembers the addresses whose failed authentications used up
// their quota, until they may try again.
type guessers struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// maxGuessers bounds the memory an attack from many addresses can take;
// past it, expired entries are dropped, and if none are, the table starts
// over (those addresses are then charged by the limiter again).
const maxGuessers = 100_000

func (g *guessers) blockedFor(ip string, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.until[ip]
	if !ok {
		return 0
	}
	if !now.Before(t) {
		delete(g.until, ip)
		return 0
	}
	return t.Sub(now)
}

func (g *guessers) block(ip string, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.until == nil || len(g.until) >= maxGuessers {
		now := time.Now()
		for k, t := range g.until {
			if !now.Before(t) {
				delete(g.until, k)
			}
		}
		if g.until == nil || len(g.until) >= maxGuessers {
			g.until = map[string]time.Time{}
		}
	}
	g.until[ip] = until
}

// auditDenied records a mutation refused for the key's role.
func (s *Server) auditDenied(c *fiber.Ctx, p *principal, r route) {
	details, _ := jsonMarshal(map[string]string{"needs": string(r.role)})
	action := strings.ToLower(r.method) + " " + openAPIPath(r.path)
	if err := s.cfg.Actions.Audit(c.UserContext(), p.caller(c), action, c.Path(), "denied", details); err != nil {
		s.log.Error("audit append failed", "action", action, "error", err)
	}
}
