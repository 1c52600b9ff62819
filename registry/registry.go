// Package registry is Relay's connector registry: publishers and their
// signing keys, packages (registry/relaypkg) and their immutable, signed
// versions, the blobs of those packages, yanks and deprecations, search,
// and an index of it all that the registry signs, so that a server
// installing from another one trusts a publisher's key only through it.
// Every `relay serve` is a registry (its routes, under /v1/registry, are
// Routes); docs/registry.md is the guide.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"aead.dev/minisign"
	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// DB is the database the registry keeps its rows in, shared with the
// server's store (core/sqlstore.Store is one): reads from the pool, and
// writes in transactions where the audit records of a change commit with
// it.
type DB interface {
	Dialect() string // "sqlite" or "postgres"
	DB() *sqlx.DB
	InAuditedTx(ctx context.Context, fn func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error) error
	// UniqueViolation reports whether err is a duplicate key.
	UniqueViolation(err error) bool
}

// Config wires a registry.
type Config struct {
	DB    DB
	Blobs BlobStore
	// Hasher hashes publisher tokens, as it does API keys.
	Hasher *core.KeyHasher
	// SigningKey signs the registry's index.
	SigningKey minisign.PrivateKey
	// IndexTTL is how long a signed index is good for; default 7 days.
	IndexTTL time.Duration
	// Limits bound a package's size; default relaypkg.DefaultLimits.
	Limits relaypkg.Limits
	// Now is the clock; default time.Now.
	Now func() time.Time

	// CacheDir is where installed packages are unpacked, each in a
	// folder named after its SHA-256.
	CacheDir string
	// Reserved reports whether a connector name is one of the server's
	// own, which an installed connector may not take.
	Reserved func(name string) bool
	// RelayVersion is the server's version, against which a package's
	// min_relay_version is checked (a development build passes all), and
	// Protocols the connector protocol versions it speaks (none: any).
	RelayVersion string
	Protocols    []int
	// Upstream, when set, is the registry the server installs from
	// instead of its own (but for its first-party packages, relay/…).
	Upstream Upstream
	// Templates reads the template packages published here (the
	// marketplace does); without it, a template is refused.
	Templates Templates
}

// Templates is what the registry asks of the marketplace about a template
// package: the registry keeps, signs, versions and yanks templates as it
// does connectors, but does not read them.
type Templates interface {
	// CheckTemplate checks a template version about to be published (its
	// template.json, exactly as packed) and returns its description and
	// its permission summary, which the registry keeps as the version's
	// capabilities.
	CheckTemplate(ctx context.Context, doc []byte) (description string, summary json.RawMessage, err error)
	// TemplatePublished runs in the transaction that publishes a template
	// version, so that what the marketplace keeps of it commits with it.
	TemplatePublished(ctx context.Context, tx *sqlx.Tx, doc []byte) error
	// InstallationNamed reports whether the workspace has a template
	// installed under name: its presets' ids start with it, and no
	// connector may take it.
	InstallationNamed(ctx context.Context, workspaceID, name string) (bool, error)
}

// SetTemplates makes t the reader of the template packages published
// here (Config.Templates), for a marketplace made after the registry.
// Call it before the registry is used.
func (s *Service) SetTemplates(t Templates) { s.cfg.Templates = t }

// Service is a registry.
type Service struct {
	cfg      Config
	index    indexCache
	upstream upstreamCache
}

// DefaultIndexTTL is how long a signed index is good for.
const DefaultIndexTTL = 7 * 24 * time.Hour

// New returns the registry of cfg.
func New(cfg Config) *Service {
	if cfg.IndexTTL <= 0 {
		cfg.IndexTTL = DefaultIndexTTL
	}
	if cfg.Limits == (relaypkg.Limits{}) {
		cfg.Limits = relaypkg.DefaultLimits
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}
}

// PublicKey is the key that signs the registry's index: what a server that
// installs from this registry pins (--registry-key).
func (s *Service) PublicKey() minisign.PublicKey {
	return s.cfg.SigningKey.Public().(minisign.PublicKey)
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// rebind rewrites ? placeholders for the database.
func (s *Service) rebind(q string) string { return s.cfg.DB.DB().Rebind(q) }

func (s *Service) isUnique(err error) bool { return err != nil && s.cfg.DB.UniqueViolation(err) }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
