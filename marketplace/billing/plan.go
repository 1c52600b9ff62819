package billing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/relayhq/relay/core"
)

// Plan kinds.
const (
	Free         = "free"
	PerExecution = "per_execution"
	Monthly      = "monthly"
	Tiered       = "tiered"
)

// Tier modes: graduated prices each run at the tier it falls in; volume
// prices every run of the period at the tier the period's total reaches.
const (
	Graduated = "graduated"
	Volume    = "volume"
)

// Plan is what a listing (a template, or a connector package) costs a
// workspace that runs it, per billing period (a calendar month, UTC).
// Amounts are minor units of Currency.
type Plan struct {
	Kind     string `json:"kind"`
	Currency string `json:"currency,omitempty"`
	// UnitAmount is the price of PerUnits succeeded runs (per_execution);
	// Actions overrides it for some presets (a template's) or actions (a
	// connector's), by name.
	UnitAmount int64            `json:"unit_amount,omitempty"`
	Actions    map[string]int64 `json:"actions,omitempty"`
	// PerUnits is how many runs UnitAmount (or a tier's) buys: 1000 and
	// 5 prices runs at half a cent each in USD. Default 1.
	PerUnits int64 `json:"per_units,omitempty"`
	// MonthlyAmount is the flat price of a month (monthly), prorated by
	// the days of the month an installation had the listing.
	MonthlyAmount int64 `json:"monthly_amount,omitempty"`
	// Tiers are the volume tiers (tiered), in order, the last without
	// UpTo; TiersMode is graduated (the default) or volume.
	Tiers     []Tier `json:"tiers,omitempty"`
	TiersMode string `json:"tiers_mode,omitempty"`
	// FreeAllowance is how many succeeded runs of a period a workspace
	// gets before any is priced (per_execution; a tiered plan's free runs
	// are a first tier priced 0).
	FreeAllowance int64 `json:"free_allowance,omitempty"`
}

// Tier is one volume tier: runs up to and including UpTo (nil: all the
// rest) cost UnitAmount per the plan's PerUnits.
type Tier struct {
	UpTo       *int64 `json:"up_to"`
	UnitAmount int64  `json:"unit_amount"`
}

// FreePlan is a listing's plan when its publisher has set none.
var FreePlan = Plan{Kind: Free}

// per is the plan's PerUnits, 1 when unset.
func (p *Plan) per() int64 {
	if p.PerUnits == 0 {
		return 1
	}
	return p.PerUnits
}

// Metered reports whether the plan prices runs (rather than time, or
// nothing).
func (p *Plan) Metered() bool { return p.Kind == PerExecution || p.Kind == Tiered }

// maxPlanBytes bounds a plan's JSON.
const maxPlanBytes = 16 << 10

var actionNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ParsePlan reads a plan and checks it (Validate). Unknown fields are
// refused: a misspelt price must not pass for no price.
func ParsePlan(data []byte) (*Plan, error) {
	if len(data) > maxPlanBytes {
		return nil, invalid("", "a price plan is at most %d bytes", maxPlanBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, invalid("", "not a price plan: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("", "not a price plan: more after the object")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// invalid is a price_plan_invalid error pointing at pointer ("" for the
// whole plan).
func invalid(pointer, format string, args ...any) error {
	e := core.Errorf(core.EPricePlanInvalid, format, args...)
	e.Fields = []core.FieldError{{Pointer: pointer, Message: e.Message}}
	return e
}

// Validate checks that the plan is one Relay can bill: a known kind with
// exactly the fields it uses, a currency Relay knows, amounts that are
// not negative, tiers that grow and end open.
func (p *Plan) Validate() error {
	if p.Kind == Free {
		if p.Currency != "" || p.UnitAmount != 0 || p.Actions != nil || p.PerUnits != 0 || p.MonthlyAmount != 0 ||
			p.Tiers != nil || p.TiersMode != "" || p.FreeAllowance != 0 {
			return invalid("", "a free plan has only its kind")
		}
		return nil
	}
	if !slices.Contains([]string{PerExecution, Monthly, Tiered}, p.Kind) {
		return invalid("/kind", "kind %q: want free, per_execution, monthly or tiered", p.Kind)
	}
	if _, ok := currencies[p.Currency]; !ok {
		return invalid("/currency", "currency %q: want an ISO 4217 code Relay bills in, such as USD or EUR", p.Currency)
	}
	if p.PerUnits < 0 {
		return invalid("/per_units", "per_units must be at least 1")
	}
	if p.FreeAllowance < 0 {
		return invalid("/free_allowance", "free_allowance must not be negative")
	}
	unused := func(field string, set bool) error {
		if set {
			return invalid("/"+field, "a %s plan has no %s", p.Kind, field)
		}
		return nil
	}
	switch p.Kind {
	case PerExecution:
		if p.UnitAmount < 0 {
			return invalid("/unit_amount", "unit_amount must not be negative")
		}
		for _, name := range slices.Sorted(maps.Keys(p.Actions)) {
			if !actionNameRE.MatchString(name) {
				return invalid("/actions/"+name, "%q is not a preset or action name", name)
			}
			if p.Actions[name] < 0 {
				return invalid("/actions/"+name, "a price must not be negative")
			}
		}
		return firstErr(unused("monthly_amount", p.MonthlyAmount != 0), unused("tiers", p.Tiers != nil),
			unused("tiers_mode", p.TiersMode != ""))
	case Monthly:
		if p.MonthlyAmount <= 0 {
			return invalid("/monthly_amount", "a monthly plan needs a monthly_amount above zero")
		}
		return firstErr(unused("unit_amount", p.UnitAmount != 0), unused("actions", p.Actions != nil),
			unused("per_units", p.PerUnits != 0), unused("tiers", p.Tiers != nil), unused("tiers_mode", p.TiersMode != ""),
			unused("free_allowance", p.FreeAllowance != 0))
	}
	// Tiered.
	if p.TiersMode != "" && p.TiersMode != Graduated && p.TiersMode != Volume {
		return invalid("/tiers_mode", "tiers_mode %q: want graduated or volume", p.TiersMode)
	}
	if len(p.Tiers) == 0 || len(p.Tiers) > 20 {
		return invalid("/tiers", "a tiered plan has 1 to 20 tiers")
	}
	var last int64
	for i, t := range p.Tiers {
		at := fmt.Sprintf("/tiers/%d", i)
		if t.UnitAmount < 0 {
			return invalid(at+"/unit_amount", "a price must not be negative")
		}
		open := i == len(p.Tiers)-1
		switch {
		case open && t.UpTo != nil:
			return invalid(at+"/up_to", "the last tier has no up_to (null): it takes every run beyond the others")
		case !open && t.UpTo == nil:
			return invalid(at+"/up_to", "only the last tier may be open")
		case !open && *t.UpTo <= last:
			return invalid(at+"/up_to", "up_to must grow from tier to tier, above 0")
		}
		if !open {
			last = *t.UpTo
		}
	}
	return firstErr(unused("unit_amount", p.UnitAmount != 0), unused("actions", p.Actions != nil),
		unused("monthly_amount", p.MonthlyAmount != 0), unused("free_allowance", p.FreeAllowance != 0))
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
