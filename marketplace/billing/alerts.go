package billing

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/egress"
)

// alert is a budget's spend reaching a threshold (80 or 100, percent) in
// a month: recorded once (billing_alerts), as an audit record, and posted
// to the workspace's alert hook when it has one.
type alert struct {
	Workspace string    `json:"workspace_id"`
	Period    string    `json:"period"`
	Scope     string    `json:"scope"`
	Threshold int       `json:"threshold"`
	Currency  string    `json:"currency"`
	Amount    int64     `json:"amount"`
	Spend     int64     `json:"spend"`
	At        time.Time `json:"created_at"`
}

// recordAlerts stores the alerts not stored before (each budget alerts at
// each threshold once a month) inside tx, with an audit record each, and
// returns those.
func (s *Service) recordAlerts(ctx context.Context, tx *sqlx.Tx, alerts []alert, now time.Time, audit func(*core.AuditRecord) error) ([]alert, error) {
	var fresh []alert
	for _, a := range alerts {
		a.At = now.Truncate(time.Microsecond)
		res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_alerts (workspace_id, period, scope, threshold, currency,
			amount, spend, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workspace_id, period, scope, threshold) DO NOTHING`),
			a.Workspace, a.Period, a.Scope, a.Threshold, a.Currency, a.Amount, a.Spend, a.At)
		if err != nil {
			return nil, fmt.Errorf("billing: record alert: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		fresh = append(fresh, a)
		r := &core.AuditRecord{WorkspaceID: a.Workspace, Action: "billing.budget.alert", Target: "budget:" + a.Scope, Outcome: "success",
			Details: auditJSON(map[string]any{"period": a.Period, "threshold": a.Threshold, "spend": a.Spend, "amount": a.Amount,
				"currency": a.Currency})}
		if err := audit(r); err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

func auditJSON(v map[string]any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// AlertHook is where a workspace's budget alerts are posted.
type AlertHook struct {
	URL string `json:"url"`
	// Secret signs each post (Relay-Signature); shown only when set.
	Secret    string    `json:"secret,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// alertHookField names the sealed secret of a workspace's alert hook.
const alertHookField = "billing-alert-hook"

// SetAlertHook sets the URL the workspace's budget alerts are posted to,
// with a new signing secret, returned only here.
func (s *Service) SetAlertHook(ctx context.Context, c *core.Caller, rawURL string) (*AlertHook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(rawURL) > 2048 {
		return nil, &core.Error{Code: core.EInvalid, Message: fmt.Sprintf("url %q: want an http or https URL without credentials", rawURL),
			Fields: []core.FieldError{{Pointer: "/url", Message: "not an http(s) URL"}}}
	}
	// A name is checked where it resolves, at each post; an address now.
	if addr, perr := netip.ParseAddr(u.Hostname()); perr == nil {
		if err := s.guard().CheckAddr(u.Hostname(), addr); err != nil {
			return nil, &core.Error{Code: core.EEgressDenied, Message: err.Error(), Fields: []core.FieldError{{Pointer: "/url", Message: err.Error()}}}
		}
	}
	if err := s.guard().CheckHost(u.Hostname()); err != nil {
		return nil, &core.Error{Code: core.EEgressDenied, Message: err.Error(), Fields: []core.FieldError{{Pointer: "/url", Message: err.Error()}}}
	}
	if s.cfg.Secrets == nil {
		return nil, errors.New("billing: no sealer for alert hook secrets")
	}
	var raw [24]byte
	rand.Read(raw[:])
	secret := "whsec_" + base64.RawURLEncoding.EncodeToString(raw[:])
	sealed, err := s.cfg.Secrets.Seal(ctx, c.WorkspaceID, alertHookField, "secret", []byte(secret))
	if err != nil {
		return nil, err
	}
	h := &AlertHook{URL: rawURL, Secret: secret, UpdatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)}
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_alert_hooks (workspace_id, url, secret, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (workspace_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at`),
			c.WorkspaceID, h.URL, sealed, h.UpdatedAt)
		if err != nil {
			return fmt.Errorf("billing: set alert hook: %w", err)
		}
		return audit(c.AuditRecord("billing.alert_hook.set", "alert_hook", "success", auditJSON(map[string]any{"url": h.URL})))
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// AlertHookOf returns the workspace's alert hook, without its secret;
// ENotFound when it has none.
func (s *Service) AlertHookOf(ctx context.Context, workspaceID string) (*AlertHook, error) {
	h, _, err := s.alertHook(ctx, workspaceID)
	return h, err
}

func (s *Service) alertHook(ctx context.Context, workspaceID string) (*AlertHook, []byte, error) {
	db := s.cfg.DB.DB()
	var row struct {
		URL       string    `db:"url"`
		Secret    []byte    `db:"secret"`
		UpdatedAt time.Time `db:"updated_at"`
	}
	err := db.GetContext(ctx, &row, db.Rebind(`SELECT url, secret, updated_at FROM billing_alert_hooks WHERE workspace_id = ?`), workspaceID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, core.Errorf(core.ENotFound, "the workspace has no alert hook")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("billing: read alert hook: %w", err)
	}
	return &AlertHook{URL: row.URL, UpdatedAt: row.UpdatedAt.UTC()}, row.Secret, nil
}

// DeleteAlertHook stops posting the workspace's alerts.
func (s *Service) DeleteAlertHook(ctx context.Context, c *core.Caller) error {
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM billing_alert_hooks WHERE workspace_id = ?`), c.WorkspaceID)
		if err != nil {
			return fmt.Errorf("billing: delete alert hook: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return core.Errorf(core.ENotFound, "the workspace has no alert hook")
		}
		return audit(c.AuditRecord("billing.alert_hook.delete", "alert_hook", "success", nil))
	})
}

func (s *Service) guard() *egress.Guard { return egress.New([]string{"*"}, s.cfg.EgressAllow) }

// alertAttempts is how many times an alert is posted before it is given
// up on; alertBackoff the wait before the second, doubling after.
const (
	alertAttempts = 4
	alertBackoff  = time.Second
)

// deliverAlerts posts alerts to their workspaces' hooks, in the
// background, each until a 2xx answer or alertAttempts tries, and marks
// each delivered.
func (s *Service) deliverAlerts(alerts []alert) {
	if len(alerts) == 0 {
		return
	}
	s.deliveries.Add(1)
	go func() {
		defer s.deliveries.Done()
		ctx := s.bg
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: s.guard().DialContext},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, a := range alerts {
			h, sealed, err := s.alertHook(ctx, a.Workspace)
			if err != nil {
				continue // none, or unreadable: the audit record stays
			}
			secret, err := s.cfg.Secrets.Open(ctx, a.Workspace, alertHookField, "secret", sealed)
			if err != nil {
				s.cfg.Logf("cannot open a workspace's alert hook secret", "workspace_id", a.Workspace, "error", err)
				continue
			}
			body, _ := json.Marshal(struct {
				Type string `json:"type"`
				alert
			}{"budget.alert", a})
			wait := alertBackoff
			for attempt := 1; attempt <= alertAttempts; attempt++ {
				if err = postAlert(ctx, client, h.URL, secret, body, s.cfg.Now()); err == nil {
					db := s.cfg.DB.DB()
					db.ExecContext(ctx, db.Rebind(`UPDATE billing_alerts SET delivered_at = ? WHERE workspace_id = ? AND period = ?
						AND scope = ? AND threshold = ?`), s.cfg.Now().UTC(), a.Workspace, a.Period, a.Scope, a.Threshold)
					break
				}
				if attempt < alertAttempts {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
					wait *= 2
				}
			}
			if err != nil {
				s.cfg.Logf("a budget alert was not delivered", "workspace_id", a.Workspace, "url", h.URL, "error", err)
			}
		}
	}()
}

// SignAlert is the Relay-Signature header of body posted at t with
// secret: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">.
func SignAlert(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

func postAlert(ctx context.Context, client *http.Client, url string, secret, body []byte, now time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Relay-Signature", SignAlert(secret, now, body))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the hook answered %s", resp.Status)
	}
	return nil
}
