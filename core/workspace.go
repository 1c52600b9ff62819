package core

import (
	"fmt"
	"regexp"
	"time"
)

// DefaultWorkspace is the workspace that the first start of an empty store
// creates, with its first admin key.
const DefaultWorkspace = "default"

var workspaceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Workspace is the tenant boundary: every tenant-owned row carries its id.
type Workspace struct {
	ID        string     `json:"id" db:"id"`
	Name      string     `json:"name" db:"name"`
	RateLimit *RateLimit `json:"rate_limit,omitempty" db:"-"` // nil: the server default
	// Retention is how long the workspace keeps its runs, audit records
	// and idempotency keys (docs/operations.md, "Retention").
	Retention
	CreatedAt time.Time `json:"created_at" db:"created_at"`
}

// Retention is a workspace's own retention settings; a nil one is the
// server's default.
type Retention struct {
	// RunDays is how long ended runs are kept, in days.
	RunDays *int `json:"run_retention_days,omitempty" db:"-"`
	// AuditDays is how long audit records are kept, in days; older ones
	// give way to a signed checkpoint (core/audit.Signer).
	AuditDays *int `json:"audit_retention_days,omitempty" db:"-"`
	// IdempotencyHours is how long an Idempotency-Key is remembered, in
	// hours, from its first use.
	IdempotencyHours *int `json:"idempotency_retention_hours,omitempty" db:"-"`
}

// Retention bounds: days of runs and audit records (ten years), hours of
// idempotency keys (30 days).
const (
	MaxRunRetentionDays          = 3650
	MaxAuditRetentionDays        = 3650
	MaxIdempotencyRetentionHours = 720
	// MinAPIAuditRetentionDays is the shortest audit retention a
	// workspace's admin may set through the API: a stolen admin key must
	// not be able to have the log of what it did purged by tomorrow. The
	// operator may set less (relay workspaces set-retention).
	MinAPIAuditRetentionDays = 30
)

// RetentionUpdate changes some of a workspace's retention settings, the
// ones marked Set; the others stay as they are.
type RetentionUpdate struct {
	Retention
	SetRunDays, SetAuditDays, SetIdempotencyHours bool
}

// Validate checks the settings being set: nil (the server's default), or
// within their bounds. The error's fields point at the JSON members.
func (u RetentionUpdate) Validate() error {
	var fields []FieldError
	check := func(set bool, v *int, name string, max int, unit string) {
		if set && v != nil && (*v < 1 || *v > max) {
			fields = append(fields, FieldError{Pointer: "/" + name, Message: fmt.Sprintf("want 1 to %d %s, or null for the server's default", max, unit)})
		}
	}
	check(u.SetRunDays, u.RunDays, "run_retention_days", MaxRunRetentionDays, "days")
	check(u.SetAuditDays, u.AuditDays, "audit_retention_days", MaxAuditRetentionDays, "days")
	check(u.SetIdempotencyHours, u.IdempotencyHours, "idempotency_retention_hours", MaxIdempotencyRetentionHours, "hours")
	if len(fields) > 0 {
		return &Error{Code: EInvalid, Message: fields[0].Pointer[1:] + ": " + fields[0].Message, Fields: fields}
	}
	return nil
}

// ValidateWorkspaceName checks a workspace name: lower-case letters, digits
// and dashes, 1 to 63 characters, not starting with a dash.
func ValidateWorkspaceName(name string) error {
	if !workspaceNameRE.MatchString(name) {
		return Errorf(EInvalid, "workspace name must match %s", workspaceNameRE)
	}
	return nil
}

// RateLimit is a request quota: Rate requests per second on average, with
// bursts of up to Burst requests.
type RateLimit struct {
	Rate  int `json:"rate"`
	Burst int `json:"burst"`
}

// DefaultRateLimit applies to a workspace without its own.
var DefaultRateLimit = RateLimit{Rate: 50, Burst: 100}

// Validate checks that both numbers are positive and sane.
func (l RateLimit) Validate() error {
	if l.Rate < 1 || l.Rate > 1_000_000 || l.Burst < 1 || l.Burst > 1_000_000 {
		return Errorf(EInvalid, "rate and burst must be between 1 and 1000000")
	}
	return nil
}

// EraseWorkspaceAction is the action a workspace erasure's confirm token
// is issued for.
const EraseWorkspaceAction = "workspace.erase"

// Erasure is the operator's tombstone of a workspace erased at its
// admin's request: who asked (the key and the request) and when, and
// where the workspace's audit chain ended (its last seq and hash; 0 and
// "" for an empty log). Nothing else of the workspace is kept.
type Erasure struct {
	WorkspaceID string    `json:"workspace_id" db:"workspace_id"`
	KeyID       string    `json:"key_id" db:"key_id"`
	RequestID   string    `json:"request_id" db:"request_id"`
	AuditSeq    int64     `json:"audit_seq" db:"audit_seq"`
	AuditHash   string    `json:"audit_hash" db:"audit_hash"`
	ErasedAt    time.Time `json:"erased_at" db:"erased_at"`
}
