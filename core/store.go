package core

import (
	"context"
	"io"
	"time"
)

// Page asks for one page of a list. Cursor is the NextCursor of the previous
// page, or empty for the first page.
type Page struct {
	Limit  int
	Cursor string
}

// Page sizes for every list.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// WorkspaceStore keeps workspaces.
type WorkspaceStore interface {
	// CreateWorkspace returns EConflict when the name is taken and EInvalid
	// for a bad name.
	CreateWorkspace(ctx context.Context, name string) (*Workspace, error)
	// Workspace returns ENotFound when no workspace has that id.
	Workspace(ctx context.Context, id string) (*Workspace, error)
	// WorkspaceByName returns ENotFound when no workspace has that name.
	WorkspaceByName(ctx context.Context, name string) (*Workspace, error)
	ListWorkspaces(ctx context.Context) ([]*Workspace, error)
	// SetWorkspaceRateLimit sets a workspace's own quota; nil restores the
	// server default. ENotFound for an unknown id.
	SetWorkspaceRateLimit(ctx context.Context, id string, limit *RateLimit) error
	// Bootstrap creates the workspace named name and stores key in it, both
	// or neither, but only when the store has no workspace at all. It reports
	// whether it did.
	Bootstrap(ctx context.Context, name string, key *APIKey) (bool, error)
	// UpdateWorkspaceRetention changes the workspace's retention settings
	// that u sets (nil restores the server's default), all or none.
	UpdateWorkspaceRetention(ctx context.Context, id string, u RetentionUpdate) error
	// PurgeRuns deletes at most limit of the workspace's ended runs made
	// before before, oldest first, and says how many.
	PurgeRuns(ctx context.Context, workspaceID string, before time.Time, limit int) (int64, error)
	// PurgeAudit deletes at most limit of the workspace's oldest audit
	// records, those made before before and none past seq through,
	// putting the checkpoint seal makes of them in their place, and says
	// how many it deleted.
	PurgeAudit(ctx context.Context, workspaceID string, before time.Time, through int64, limit int, seal AuditSeal) (int64, error)
	// WorkspaceRowCounts counts the rows the workspace owns, by table.
	WorkspaceRowCounts(ctx context.Context, workspaceID string) (map[string]int64, error)
	// EraseWorkspace deletes the workspace and everything it owns, its
	// data key first, if token is a live confirm token for its erasure;
	// it records and returns the operator's tombstone.
	EraseWorkspace(ctx context.Context, token *ConfirmToken, e *Erasure) (*Erasure, error)
	// ExportWorkspace writes an archive of everything the workspace owns
	// but secret values and key hashes (docs/operations.md).
	ExportWorkspace(ctx context.Context, workspaceID string, w io.Writer) error
}

// KeyStore keeps API keys. Every method but KeyForAuth is scoped to a
// workspace: a key of another workspace is ENotFound.
type KeyStore interface {
	// CreateKey stores k, with audit (when not nil) in the same
	// transaction; the caller sets ID, Hash and CreatedAt.
	CreateKey(ctx context.Context, k *APIKey, audit *AuditRecord) error
	// KeyForAuth returns the active (not revoked) key with that id, hash
	// included, and its workspace, or ENotFound.
	KeyForAuth(ctx context.Context, id string) (*APIKey, *Workspace, error)
	// Key returns an active key of the workspace, or ENotFound.
	Key(ctx context.Context, workspaceID, id string) (*APIKey, error)
	// ListKeys lists the workspace's active keys, oldest first.
	ListKeys(ctx context.Context, workspaceID string, p Page) (keys []*APIKey, next string, err error)
	// RevokeKey marks an active key revoked at the given time; ENotFound if
	// there is no such active key in the workspace.
	RevokeKey(ctx context.Context, workspaceID, id string, at time.Time, audit *AuditRecord) error
}

// Store is everything the server keeps.
type Store interface {
	WorkspaceStore
	KeyStore
	ConnectionStore
	DataKeyStore
	ServerKeyStore
	RunStore
	AuditStore
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}
