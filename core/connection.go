package core

import (
	"context"
	"encoding/json"
	"regexp"
	"time"
)

// Connection is a connector enabled in a workspace: which connector, which
// version, its config, and (stored apart, encrypted) its secrets.
type Connection struct {
	ID          string `json:"id" db:"id"`
	WorkspaceID string `json:"workspace_id" db:"workspace_id"`
	Name        string `json:"name" db:"name"`
	// Connector is the name the workspace uses the connector under: the
	// first part of its action ids.
	Connector string `json:"connector" db:"connector"`
	// Package is the registry package (publisher/name) of a connector
	// installed into the workspace; empty for the server's own.
	Package string `json:"package,omitempty" db:"package"`
	// VersionConstraint is what the admin asked for ("^1.2", "1.0.0", or
	// empty for the newest); Version is what it resolved to.
	VersionConstraint string          `json:"version_constraint,omitempty" db:"version_constraint"`
	Version           string          `json:"version" db:"version"`
	Runtime           string          `json:"runtime" db:"runtime"` // native or wasm
	Config            json.RawMessage `json:"config" db:"config"`   // the non-secret fields
	CreatedAt         time.Time       `json:"created_at" db:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at" db:"updated_at"`
	CreatedBy         string          `json:"created_by,omitempty" db:"created_by"`
}

// Ref is the connector version the connection uses: by its package when
// it has one.
func (c *Connection) Ref() ConnectorRef {
	name := c.Connector
	if c.Package != "" {
		name = c.Package
	}
	return ConnectorRef{Name: name, Version: c.Version, Runtime: c.Runtime}
}

var connectionNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateConnectionName checks a connection's name: lower-case letters,
// digits, '-' and '_', 1 to 63 characters.
func ValidateConnectionName(name string) error {
	if !connectionNameRE.MatchString(name) {
		return Errorf(EInvalid, "connection name must match %s", connectionNameRE)
	}
	return nil
}

// SealedSecret is one secret field of a connection, encrypted. The
// ciphertext is bound to (workspace, connection, field): moved to another
// row it does not decrypt.
type SealedSecret struct {
	Field      string `db:"field"`
	Ciphertext []byte `db:"ciphertext"`
}

// ConnectionStore keeps connections and their sealed secrets. Every method
// is scoped to a workspace: another workspace's connection is ENotFound.
type ConnectionStore interface {
	// CreateConnection stores c and its secrets together, with audit (when
	// not nil) in the same transaction; EConflict when the workspace has a
	// connection of that name. So do UpdateConnection and DeleteConnection
	// with theirs.
	CreateConnection(ctx context.Context, c *Connection, secrets []SealedSecret, audit *AuditRecord) error
	Connection(ctx context.Context, workspaceID, id string) (*Connection, error)
	ConnectionByName(ctx context.Context, workspaceID, name string) (*Connection, error)
	ListConnections(ctx context.Context, workspaceID string, p Page) ([]*Connection, string, error)
	// ConnectionsOf lists every connection of the workspace using a connector.
	ConnectionsOf(ctx context.Context, workspaceID, connector string) ([]*Connection, error)
	// UpdateConnection replaces c's name, version, runtime and config, and
	// sets each secret given (a nil Ciphertext deletes that field).
	UpdateConnection(ctx context.Context, c *Connection, secrets []SealedSecret, audit *AuditRecord) error
	DeleteConnection(ctx context.Context, workspaceID, id string, audit *AuditRecord) error
	// Secrets returns the sealed secrets of a connection.
	Secrets(ctx context.Context, workspaceID, connectionID string) ([]SealedSecret, error)
}

// DataKeyStore keeps each workspace's data key, wrapped by the master key.
type DataKeyStore interface {
	// WrappedDataKey returns the workspace's wrapped data key, or ENotFound.
	WrappedDataKey(ctx context.Context, workspaceID string) ([]byte, error)
	// CreateWrappedDataKey stores the first data key of a workspace; when a
	// concurrent caller stored one first, it returns that one instead.
	CreateWrappedDataKey(ctx context.Context, workspaceID string, wrapped []byte) ([]byte, error)
	// RewrapDataKeys replaces every wrapped data key, and every wrapped
	// server key (see ServerKeyStore), with rewrap's result, all or none,
	// and returns how many workspace data keys it replaced (server keys are
	// not counted). rewrap's first argument is the workspace id for a data
	// key, and ServerKeyScope + name for a server key: a workspace id never
	// holds a ':'.
	RewrapDataKeys(ctx context.Context, rewrap func(id string, wrapped []byte) ([]byte, error)) (int, error)
}

// ServerKeyScope prefixes a server key's name in the id RewrapDataKeys
// gives its rewrap function.
const ServerKeyScope = "server:"

// ServerKeyStore keeps keys of the whole server (such as the API key
// pepper), each under a name, wrapped by the master key like a data key.
// DataKeyStore.RewrapDataKeys re-wraps them with the data keys.
type ServerKeyStore interface {
	// WrappedServerKey returns the named wrapped key, or ENotFound.
	WrappedServerKey(ctx context.Context, name string) ([]byte, error)
	// CreateWrappedServerKey stores the named key unless one is stored
	// already, and returns the one stored: when a concurrent caller stored
	// one first, that one.
	CreateWrappedServerKey(ctx context.Context, name string, wrapped []byte) ([]byte, error)
}
