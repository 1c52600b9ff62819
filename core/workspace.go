package core

import (
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
	// RunRetentionDays is how long the workspace keeps its ended runs;
	// nil: the server default.
	RunRetentionDays *int      `json:"run_retention_days,omitempty" db:"-"`
	CreatedAt        time.Time `json:"created_at" db:"created_at"`
}

// MaxRunRetentionDays bounds a workspace's run retention: ten years.
const MaxRunRetentionDays = 3650

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
