// Package billing prices what workspaces run. Publishers set a price plan
// on each of their listings (a template or a connector package); a run's
// usage is counted in the transaction that records its end
// (core/sqlstore, usage_daily), so it is metered exactly once; billing
// reads those counts and prices them with the plan in effect in their
// period (docs/billing.md).
package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry"
)

// Config is what billing runs on.
type Config struct {
	// DB is the server's database (core/sqlstore.Store is one).
	DB DB
	// Registry holds the listings and their publishers.
	Registry *registry.Service
	// Secrets seals the secrets of alert hooks with the workspace's data
	// key (core/secrets' keyring is one).
	Secrets Sealer
	// EgressAllow are the operator's exceptions to the addresses an
	// alert hook may not reach (private, loopback, …), as for connectors.
	EgressAllow []netip.Prefix
	// PaymentGrace is how long a workspace may be past due (a payment
	// failed at the provider, marketplace/billing/payments) before its
	// runs of priced listings are refused with payment_required; default
	// DefaultPaymentGrace.
	PaymentGrace time.Duration
	// Logf logs what goes wrong in the background; default nothing.
	Logf func(msg string, args ...any)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Sealer seals and opens secrets with a workspace's data key.
type Sealer interface {
	Seal(ctx context.Context, workspaceID, owner, field string, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, workspaceID, owner, field string, ciphertext []byte) ([]byte, error)
}

// DB is the database: the registry's, and the meter's months.
type DB interface {
	registry.DB
	// CloseUsagePeriod closes a month's usage (core/sqlstore).
	CloseUsagePeriod(ctx context.Context, period string) (bool, error)
}

// Service is billing.
type Service struct {
	cfg         Config
	budgetCache budgetCache
	// plans are the priced plans of plansMonth (monthPlans).
	plansMu    sync.Mutex
	plansMonth string
	plans      map[string]*Plan
	// deliveries are the alert posts under way, which end with bg.
	deliveries sync.WaitGroup
	bg         context.Context
	stop       context.CancelFunc
}

// New returns the billing of cfg.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	bg, stop := context.WithCancel(context.Background())
	return &Service{cfg: cfg, bg: bg, stop: stop}
}

// UseSecrets sets Config.Secrets, for a sealer made after billing. Call
// it before billing is used.
func (s *Service) UseSecrets(sec Sealer) { s.cfg.Secrets = sec }

// Wait waits for the alert posts under way.
func (s *Service) Wait() { s.deliveries.Wait() }

// Stop gives up the alert posts under way (their alerts stay recorded,
// not delivered) and waits for them to stop.
func (s *Service) Stop() {
	s.stop()
	s.deliveries.Wait()
}

// NoticeDays is how far ahead a price must be announced: a plan takes
// effect on the first day of a month at least this many days after it
// was set, so that every workspace that has the listing sees it coming.
const NoticeDays = 14

// Scheduled is a plan and the day (the first of a month, UTC) it takes
// effect.
type Scheduled struct {
	EffectiveFrom string `json:"effective_from"` // YYYY-MM-DD
	Plan          *Plan  `json:"plan"`
}

// Price is a listing's price: the plan in effect (free when its publisher
// set none) and, when one is announced, the next.
type Price struct {
	Current *Scheduled `json:"current"`
	Pending *Scheduled `json:"pending,omitempty"`
}

// freeSince is the current price of a listing that never had a plan.
var freeSince = &Scheduled{EffectiveFrom: "0001-01-01", Plan: &FreePlan}

// Price returns listing's price as of now.
func (s *Service) Price(ctx context.Context, listing string) (*Price, error) {
	return s.price(ctx, s.cfg.DB.DB(), listing, s.today())
}

// today is the current day, UTC.
func (s *Service) today() string { return s.cfg.Now().UTC().Format(time.DateOnly) }

func (s *Service) price(ctx context.Context, db sqlx.ExtContext, listing, day string) (*Price, error) {
	var rows []struct {
		EffectiveFrom string `db:"effective_from"`
		Plan          string `db:"plan"`
	}
	// The plan in effect on day and the one after it, if any.
	err := sqlx.SelectContext(ctx, db, &rows, db.Rebind(`SELECT effective_from, plan FROM price_plans
		WHERE listing = ? AND effective_from >= COALESCE(
			(SELECT MAX(effective_from) FROM price_plans WHERE listing = ? AND effective_from <= ?), '')
		ORDER BY effective_from LIMIT 2`), listing, listing, day)
	if err != nil {
		return nil, fmt.Errorf("billing: read price of %s: %w", listing, err)
	}
	p := &Price{Current: freeSince}
	for _, r := range rows {
		var plan Plan
		if err := json.Unmarshal([]byte(r.Plan), &plan); err != nil {
			return nil, fmt.Errorf("billing: stored plan of %s from %s: %w", listing, r.EffectiveFrom, err)
		}
		sch := &Scheduled{EffectiveFrom: r.EffectiveFrom, Plan: &plan}
		if r.EffectiveFrom <= day {
			p.Current = sch
		} else if p.Pending == nil {
			p.Pending = sch
		}
	}
	return p, nil
}

// PlanFor returns the plan listing has in period (YYYY-MM): the one in
// effect on its first day.
func (s *Service) PlanFor(ctx context.Context, listing, period string) (*Plan, error) {
	p, err := s.price(ctx, s.cfg.DB.DB(), listing, period+"-01")
	if err != nil {
		return nil, err
	}
	return p.Current.Plan, nil
}

// EarliestEffective is the first day a plan set on day (YYYY-MM-DD) may
// take effect: the first of a month at least NoticeDays later.
func EarliestEffective(day time.Time) time.Time {
	d := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, NoticeDays)
	if d.Day() == 1 {
		return d
	}
	return time.Date(d.Year(), d.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// SetPrice announces plan as listing's price from effectiveFrom (a
// YYYY-MM-DD that is the first of a month, at least NoticeDays from now;
// empty for the earliest such day). It replaces a pending plan; the plan
// in effect stays until then. Only the listing's publisher may.
func (s *Service) SetPrice(ctx context.Context, p *registry.Publisher, c *core.Caller, listing string, plan *Plan, effectiveFrom string) (*Price, error) {
	if err := plan.Validate(); err != nil {
		return nil, err
	}
	if err := s.ownListing(ctx, p, listing); err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	earliest := EarliestEffective(now)
	from := earliest
	if effectiveFrom != "" {
		t, err := time.Parse(time.DateOnly, effectiveFrom)
		if err != nil || t.Day() != 1 {
			return nil, invalid("/effective_from", "effective_from %q: want the first day of a month, YYYY-MM-01", effectiveFrom)
		}
		if t.Before(earliest) {
			return nil, invalid("/effective_from", "a price takes effect at least %d days after it is announced, on the first of a month: %s at the earliest",
				NoticeDays, earliest.Format(time.DateOnly))
		}
		from = t
	}
	stored, _ := json.Marshal(plan)
	day := from.Format(time.DateOnly)
	var out *Price
	err := s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		// Announced plans not yet in effect give way to this one.
		_, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM price_plans WHERE listing = ? AND effective_from > ?`),
			listing, now.Format(time.DateOnly))
		if err != nil {
			return fmt.Errorf("billing: replace pending plan: %w", err)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at)
			VALUES (?, ?, ?, ?)`), listing, day, string(stored), now)
		if err != nil {
			return fmt.Errorf("billing: store plan: %w", err)
		}
		if out, err = s.price(ctx, tx, listing, now.Format(time.DateOnly)); err != nil {
			return err
		}
		d, _ := json.Marshal(map[string]any{"effective_from": day, "plan": plan})
		return audit(c.AuditRecord("billing.price.set", "package:"+listing, "success", d))
	})
	return out, err
}

// WithdrawPrice takes back listing's pending plan; ENotFound when it has
// none.
func (s *Service) WithdrawPrice(ctx context.Context, p *registry.Publisher, c *core.Caller, listing string) error {
	if err := s.ownListing(ctx, p, listing); err != nil {
		return err
	}
	today := s.today()
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM price_plans WHERE listing = ? AND effective_from > ?`), listing, today)
		if err != nil {
			return fmt.Errorf("billing: withdraw plan: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return core.Errorf(core.ENotFound, "%s has no announced price to withdraw", listing)
		}
		return audit(c.AuditRecord("billing.price.withdraw", "package:"+listing, "success", nil))
	})
}

// ownListing checks that listing is a package of p's.
func (s *Service) ownListing(ctx context.Context, p *registry.Publisher, listing string) error {
	if err := s.listed(ctx, listing); err != nil {
		return err
	}
	if publisher, _, _ := strings.Cut(listing, "/"); publisher != p.Name {
		return core.Errorf(core.EForbidden, "package %s is not publisher %s's", listing, p.Name)
	}
	return nil
}

// listed checks that the registry has a package named listing, of
// either kind; ENotFound when it has none.
func (s *Service) listed(ctx context.Context, listing string) error {
	db := s.cfg.DB.DB()
	var n int
	if err := db.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM registry_packages WHERE name = ?`), listing); err != nil {
		return fmt.Errorf("billing: find package %s: %w", listing, err)
	}
	if n == 0 {
		return core.Errorf(core.ENotFound, "no package %s", listing)
	}
	return nil
}
