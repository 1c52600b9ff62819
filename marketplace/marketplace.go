// Package marketplace is where tenants find templates, install them into
// their workspaces with consent, and run their presets. A template is a
// registry package of kind template (registry/relaypkg), published,
// signed, versioned and yanked as connectors are; the marketplace reads
// what the registry keeps of it and keeps each workspace's installations:
// a template version, the connectors it runs and the connections it made,
// locked (docs/marketplace.md).
package marketplace

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/marketplace/template"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/sdk/manifest"
)

// Config is what the marketplace runs on.
type Config struct {
	// DB is the server's database (core/sqlstore.Store is one).
	DB DB
	// Registry holds the templates and the connectors they run.
	Registry *registry.Service
	// Connections checks and seals the connections an installation makes
	// (core/actions.Service is one).
	Connections ConnectionMaker
	// Upstream, when set, is the marketplace of the registry the server
	// installs from (relay serve --registry-url): listings are read
	// there.
	Upstream Upstream
	// Reserved reports whether a name is one of the server's own
	// connectors' (a built-in's), which an installation may not take.
	Reserved func(name string) bool
	// Prices, when set, gives each listing its price (marketplace/billing
	// is one).
	Prices Prices
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Prices reads a listing's price plan.
type Prices interface {
	Price(ctx context.Context, listing string) (*billing.Price, error)
}

// DB is the database: the registry's, and a way to write a connection
// (with its sealed secrets) in a transaction of the marketplace's, so
// that an installation and its connections commit together.
type DB interface {
	registry.DB
	InsertConnection(ctx context.Context, tx *sqlx.Tx, c *core.Connection, secrets []core.SealedSecret) error
}

// Upstream reads another server's marketplace listings: GET path (with
// its query) of its public /v1/marketplace routes, decoded into out, or
// that server's error. registry/client's upstream is one.
type Upstream interface {
	Listings(ctx context.Context, path string, out any) error
}

// ConnectionMaker prepares a connection of a pinned connector version:
// checked (config and secrets against the schema, and by the connector
// unless check is false) and its secrets sealed, with nothing stored.
type ConnectionMaker interface {
	PrepareConnection(ctx context.Context, workspaceID, keyID string, p core.PinnedConnection, check bool) (*core.Connection, []core.SealedSecret, error)
}

// Service is the marketplace.
type Service struct {
	cfg Config
	// templates caches parsed template versions: a version never changes.
	templates sync.Map // publisher/name@version → *template.Template
	presets   presetCache
	// maxRanked is MaxRanked, but in tests.
	maxRanked int
}

// New returns the marketplace of cfg.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, maxRanked: MaxRanked}
}

// UseUpstream sets Config.Upstream. Call it before the marketplace is
// used.
func (s *Service) UseUpstream(u Upstream) { s.cfg.Upstream = u }

// UseConnections sets Config.Connections, for a maker made after the
// marketplace. Call it before the marketplace is used.
func (s *Service) UseConnections(c ConnectionMaker) { s.cfg.Connections = c }

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

var _ registry.Templates = (*Service)(nil)

// CheckTemplate checks a template about to be published: it must read
// (template.Parse), each connector range must resolve in the registry to
// a version that is not yanked, and the template must fit those versions'
// manifests (template.Check). It returns the template's summary line and
// its permission summary against those versions (registry.Templates).
func (s *Service) CheckTemplate(ctx context.Context, doc []byte) (string, json.RawMessage, error) {
	t, err := template.Parse(doc)
	if err != nil {
		return "", nil, err
	}
	manifests, err := s.resolve(ctx, t)
	if err != nil {
		return "", nil, err
	}
	if err := t.Check(manifests); err != nil {
		return "", nil, err
	}
	summary, err := json.Marshal(t.Summarize(manifests))
	if err != nil {
		return "", nil, err
	}
	return t.Summary, summary, nil
}

// TemplatePublished makes the template's row of install counts with its
// first version, and writes its listing (registry.Templates).
func (s *Service) TemplatePublished(ctx context.Context, tx *sqlx.Tx, doc []byte) error {
	var t template.Template
	if err := json.Unmarshal(doc, &t); err != nil {
		return fmt.Errorf("marketplace: published template: %w", err)
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO marketplace_template_stats (template, installs) VALUES (?, 0)
		ON CONFLICT (template) DO NOTHING`), t.Name); err != nil {
		return err
	}
	return s.putListing(ctx, tx, &t)
}

// resolve resolves each of the template's connector ranges to the
// version installing would pick now, and returns their manifests by the
// connectors' short names. A range nothing fits (every fitting version
// yanked, say) is ETemplateInvalid, pointing at it.
func (s *Service) resolve(ctx context.Context, t *template.Template) (map[string]*manifest.Manifest, error) {
	out := make(map[string]*manifest.Manifest, len(t.Connectors))
	for i, c := range t.Connectors {
		m, err := s.cfg.Registry.ResolveConnector(ctx, c.Package, c.Version)
		switch core.ErrorCode(err) {
		case "":
		case core.ENotFound, core.EConflict, core.EInvalid:
			return nil, &core.Error{Code: core.ETemplateInvalid, Message: "the template names a connector this registry cannot give it: " + core.ErrorMessage(err),
				Fields: []core.FieldError{{Pointer: "/connectors/" + strconv.Itoa(i) + "/version", Message: core.ErrorMessage(err)}}}
		default:
			return nil, err
		}
		out[c.ShortName()] = m
	}
	return out, nil
}

// parsed returns a published template version, parsed (once per version).
func (s *Service) parsed(v *registry.TemplateVersion) (*template.Template, error) {
	key := v.Package + "@" + v.Version
	if t, ok := s.templates.Load(key); ok {
		return t.(*template.Template), nil
	}
	t, err := template.Parse(v.Doc)
	if err != nil {
		return nil, fmt.Errorf("marketplace: stored template %s: %w", key, err)
	}
	s.templates.Store(key, t)
	return t, nil
}
