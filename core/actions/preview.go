package actions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/redact"
	"github.com/relayhq/relay/core/tracing"
)

// Request is what a caller sends to preview or execute an action.
type Request struct {
	Params       json.RawMessage `json:"params"`
	Connection   string          `json:"connection,omitempty"`
	ConfirmToken string          `json:"confirm_token,omitempty"`
	Mode         string          `json:"mode,omitempty"` // "sync" (default) or "async"
}

// PreviewResult is what would happen, and the token that lets it happen.
type PreviewResult struct {
	Action       string          `json:"action"`
	Connection   string          `json:"connection"`
	Preview      json.RawMessage `json:"preview"`
	ConfirmToken string          `json:"confirm_token"`
	ExpiresAt    time.Time       `json:"expires_at"`
}

const confirmTokenPrefix = "ct_"

// Preview validates the params, asks the connector what it would do (no
// side effects), and issues a single-use confirm token bound to the
// workspace, action, connection and these exact params. With the
// Idempotency-Key the execute will carry, the connector previews with the
// idempotency key that execute will give it (a webhook's webhook-id, for
// one); the key is not claimed.
func (s *Service) Preview(ctx context.Context, c Caller, actionID string, req Request, idemKey string) (*PreviewResult, error) {
	if err := checkIdempotencyKey(idemKey); err != nil {
		return nil, err
	}
	var key string
	if idemKey != "" {
		key = connectorKey(c.WorkspaceID, idemKey, "")
	}
	t, params, err := s.prepare(ctx, c, actionID, req)
	if err != nil {
		s.auditOutcome(ctx, c, "action.preview", "action:"+actionID, err, nil)
		return nil, err
	}
	secrets, err := s.openSecrets(ctx, t.conn)
	if err != nil {
		return nil, err
	}
	callCtx, span := startCallSpan(ctx, "connector.preview", t, "")
	out, err := s.cfg.Runtime.Preview(callCtx, t.conn.Ref(), core.ActionCall{
		Action: t.action.Name, Input: params, InputValidated: t.inputValidated(), WorkspaceID: c.WorkspaceID,
		IdempotencyKey: key, Connection: core.ConnectionData{Config: t.conn.Config, Secrets: secrets},
		TraceParent: tracing.TraceParent(callCtx),
	})
	endCallSpan(span, err, secrets)
	details := s.callDetails(t, params)
	if err != nil {
		err = scrubErr(err, secrets)
		s.auditOutcome(ctx, c, "action.preview", "action:"+actionID, err, details)
		return nil, err
	}
	token, hash := newConfirmToken()
	expires := s.now().Add(core.ConfirmTokenTTL)
	if err := s.cfg.Store.SaveConfirmToken(ctx, &core.ConfirmToken{
		Hash: hash, WorkspaceID: c.WorkspaceID, Action: actionID, ConnectionID: t.conn.ID,
		RequestHash: requestHash(actionID, t.conn.ID, params), ExpiresAt: expires,
	}); err != nil {
		return nil, err
	}
	s.auditOutcome(ctx, c, "action.preview", "action:"+actionID, nil, details)
	// What a connector says it would do may quote the params, headers and
	// all: it is shown with secrets hidden by name, as a run's output is.
	return &PreviewResult{Action: actionID, Connection: t.conn.Name, Preview: redact.Value(nil, out), ConfirmToken: token, ExpiresAt: expires}, nil
}

// prepare resolves the action and connection and validates the params,
// returning them in canonical form: re-encoded, the same JSON value that
// passed the action's input schema.
func (s *Service) prepare(ctx context.Context, c Caller, actionID string, req Request) (*target, []byte, error) {
	t, err := s.resolveTarget(ctx, c.WorkspaceID, actionID, req.Connection)
	if err != nil {
		return nil, nil, err
	}
	raw := req.Params
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage(`{}`)
	}
	schema := t.action.InputSchema
	if t.presetDef != nil {
		schema = t.presetDef.InputSchema
	}
	if err := s.schemas.validate(schema, raw, core.EInvalidParams, "params"); err != nil {
		return nil, nil, err
	}
	if t.presetDef == nil {
		params, err := canonical(raw)
		if err != nil {
			return nil, nil, core.Errorf(core.EInvalidParams, "params are not JSON: %v", err)
		}
		return t, params, nil
	}
	// The preset's input makes its action's params, canonical, which must
	// pass the action's own schema: a template that fit the connector
	// version when it was installed fits it still.
	params, err := t.presetDef.Params(raw)
	if err != nil {
		return nil, nil, core.Errorf(core.EInvalidParams, "preset %s cannot make its action's params: %s", t.id, core.ErrorMessage(err))
	}
	if err := s.schemas.validate(t.action.InputSchema, params, core.EInvalidParams, "the params preset "+t.id+" makes for "+t.conn.Connector+"."+t.action.Name); err != nil {
		return nil, nil, err
	}
	return t, params, nil
}

// callDetails is what the audit log keeps of a call: the connection and the
// params with secrets redacted, by the action's schema and by name.
func (s *Service) callDetails(t *target, params []byte) []byte {
	return redactedCallDetails(t, redact.Value(t.action.InputSchema, params))
}

// redactedCallDetails is callDetails for params already redacted.
func redactedCallDetails(t *target, redacted json.RawMessage) []byte {
	return startDetails(t, redacted, "")
}

// startDetails is what the audit log keeps of a run's start: the call's
// details, and the run it retries.
func startDetails(t *target, redacted json.RawMessage, retryOf string) []byte {
	m := map[string]any{"connection": t.conn.Name, "connector": t.conn.Ref().String(), "params": redacted}
	if t.preset != nil {
		m["preset"] = t.preset
	}
	if retryOf != "" {
		m["retry_of"] = retryOf
	}
	d, _ := json.Marshal(m)
	return d
}

func (s *Service) auditOutcome(ctx context.Context, c Caller, action, target string, err error, details []byte) {
	outcome := "success"
	if err != nil {
		outcome = "failure"
		if core.ErrorCode(err) == core.EForbidden {
			outcome = "denied"
		}
		if details == nil {
			details, _ = json.Marshal(map[string]string{"error": core.ErrorCode(err)})
		}
	}
	if aerr := s.cfg.Store.AppendAudit(ctx, c.audit(action, target, outcome, details)); aerr != nil {
		s.log.Error("audit append failed", "action", action, "error", aerr)
	}
}

func newConfirmToken() (token string, hash []byte) {
	var b [32]byte
	rand.Read(b[:])
	token = confirmTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, hashToken(token)
}

// confirmTokenShape reports whether token could be one newConfirmToken
// made, so that anything else is refused before the store is asked.
func confirmTokenShape(token string) bool {
	return strings.HasPrefix(token, confirmTokenPrefix) && len(token) <= 100
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// useConfirmToken consumes the token if it was issued for exactly this
// request; a token presented with other params is refused and kept.
func (s *Service) useConfirmToken(ctx context.Context, c Caller, t *target, token string, reqHash []byte) error {
	if token == "" {
		return core.Errorf(core.EConfirmationRequired,
			"%s is %s and needs confirmation: preview it with the same params and pass the confirm_token", t.id, t.sideEffect())
	}
	invalid := core.Errorf(core.EConfirmationInvalid, "the confirm token is unknown, used, expired, or for another request; preview again")
	if !confirmTokenShape(token) {
		return invalid
	}
	_, err := s.cfg.Store.UseConfirmToken(ctx, &core.ConfirmToken{
		Hash: hashToken(token), WorkspaceID: c.WorkspaceID, Action: t.id, ConnectionID: t.conn.ID, RequestHash: reqHash,
	}, s.now())
	if core.ErrorCode(err) == core.ENotFound {
		return invalid
	} else if err != nil {
		return err
	}
	return nil
}
