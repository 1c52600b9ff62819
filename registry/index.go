package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// The index lists every publisher with its keys, revoked ones included,
// and every package (connectors and templates) with its versions and
// their digests, signed with the registry's key. Its version only grows (one more at each change), and it
// expires: a server that installs from the registry keeps the newest
// version it has seen, refuses an older one (a rollback) and one past its
// expiry (a freeze), and trusts a publisher's key only as this index
// lists it (TUF's idea, with one signed document).

// Index is the registry's signed index.
type Index struct {
	Registry   string           `json:"registry"` // the signing key's id
	Version    int64            `json:"version"`
	Expires    time.Time        `json:"expires"`
	Publishers []IndexPublisher `json:"publishers"`
	Packages   []IndexPackage   `json:"packages"`
}

// IndexPublisher is a publisher as the index lists it.
type IndexPublisher struct {
	Name string `json:"name"`
	Keys []Key  `json:"keys"`
}

// IndexPackage is a package as the index lists it.
type IndexPackage struct {
	Name string `json:"name"`
	// Kind is relaypkg.KindTemplate for a template, and empty for a
	// connector, whose entry reads as it did before templates were
	// listed.
	Kind       string         `json:"kind,omitempty"`
	Deprecated string         `json:"deprecated,omitempty"`
	Versions   []IndexVersion `json:"versions"`
}

// IndexVersion is a version as the index lists it.
type IndexVersion struct {
	Version     string `json:"version"`
	SHA256      string `json:"sha256"`       // of the .relaypkg file
	IndexSHA256 string `json:"index_sha256"` // of the package's own index
	Signer      string `json:"signer"`
	Yanked      bool   `json:"yanked,omitempty"`
	// Protocol and MinRelayVersion are the manifest's (a template's
	// min_relay_version is its template.json's, and its protocol 0): what
	// a server installing from the registry checks before it downloads
	// anything.
	Protocol        int    `json:"protocol"`
	MinRelayVersion string `json:"min_relay_version,omitempty"`
}

// indexCache keeps the last signed index until the registry changes or
// its expiry draws near.
type indexCache struct {
	mu       sync.Mutex
	version  int64
	signedAt time.Time
	doc, sig []byte
}

// SignedIndex returns the index's bytes and the registry's signature of
// them (minisign): the same bytes until the registry changes, signed
// again, with a new expiry, once half its life has passed.
func (s *Service) SignedIndex(ctx context.Context) (doc, sig []byte, err error) {
	var version int64
	db := s.cfg.DB.DB()
	if err := db.GetContext(ctx, &version, `SELECT index_version FROM registry_state WHERE id = 1`); err != nil {
		return nil, nil, fmt.Errorf("registry: index version: %w", err)
	}
	c := &s.index
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doc != nil && c.version == version && s.now().Sub(c.signedAt) < s.cfg.IndexTTL/2 {
		return c.doc, c.sig, nil
	}
	x, err := s.buildIndex(ctx, version)
	if err != nil {
		return nil, nil, err
	}
	doc, err = json.MarshalIndent(x, "", " ")
	if err != nil {
		return nil, nil, err
	}
	sig = minisign.SignWithComments(s.cfg.SigningKey, doc, fmt.Sprintf("relay registry index %d", version), "signature of a Relay registry index")
	c.version, c.signedAt, c.doc, c.sig = version, s.now(), doc, sig
	return doc, sig, nil
}

func (s *Service) buildIndex(ctx context.Context, version int64) (*Index, error) {
	db := s.cfg.DB.DB()
	x := &Index{Registry: relaypkg.KeyID(s.PublicKey().ID()), Version: version, Expires: s.now().Add(s.cfg.IndexTTL),
		Publishers: []IndexPublisher{}, Packages: []IndexPackage{}}
	var names []string
	if err := db.SelectContext(ctx, &names, `SELECT name FROM registry_publishers ORDER BY name`); err != nil {
		return nil, fmt.Errorf("registry: index publishers: %w", err)
	}
	for _, n := range names {
		keys, err := s.keys(ctx, db, n)
		if err != nil {
			return nil, err
		}
		x.Publishers = append(x.Publishers, IndexPublisher{Name: n, Keys: keys})
	}
	var rows []struct {
		Package    string  `db:"package"`
		Deprecated *string `db:"deprecated"`
		Version    string  `db:"version"`
		SHA256     string  `db:"blob_sha256"`
		Index      []byte  `db:"index_json"`
		Signer     string  `db:"signer_key_id"`
		Yanked     bool    `db:"yanked"`
		Manifest   string  `db:"manifest"`
		Kind       string  `db:"kind"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT v.package, p.deprecated, v.version, v.blob_sha256, v.index_json, v.signer_key_id,
		v.yanked_at IS NOT NULL AS yanked, v.manifest, p.kind
		FROM registry_versions v JOIN registry_packages p ON p.name = v.package ORDER BY v.package, v.version`); err != nil {
		return nil, fmt.Errorf("registry: index versions: %w", err)
	}
	for _, r := range rows {
		if n := len(x.Packages); n == 0 || x.Packages[n-1].Name != r.Package {
			p := IndexPackage{Name: r.Package}
			if r.Kind == relaypkg.KindTemplate {
				p.Kind = relaypkg.KindTemplate
			}
			if r.Deprecated != nil {
				p.Deprecated = *r.Deprecated
			}
			x.Packages = append(x.Packages, p)
		}
		var m compatibility
		if err := json.Unmarshal([]byte(r.Manifest), &m); err != nil {
			return nil, fmt.Errorf("registry: stored manifest of %s@%s: %w", r.Package, r.Version, err)
		}
		if r.Kind == relaypkg.KindTemplate {
			m.Protocol = 0 // a template speaks to no connector
		}
		p := &x.Packages[len(x.Packages)-1]
		p.Versions = append(p.Versions, IndexVersion{Version: r.Version, SHA256: r.SHA256, IndexSHA256: sha256Hex(r.Index),
			Signer: r.Signer, Yanked: r.Yanked, Protocol: m.Protocol, MinRelayVersion: m.MinRelayVersion})
	}
	return x, nil
}

// VerifyIndex checks a registry index that a server fetched: signed by
// the registry's key (ESignatureInvalid, or ESignerUnknown for another
// key), not older than the newest it has seen, seen (EIndexRollback), and
// not expired at now (EIndexExpired).
func VerifyIndex(registryKey minisign.PublicKey, doc, sig []byte, seen int64, now time.Time) (*Index, error) {
	id, err := relaypkg.SignerOf(sig)
	if err != nil {
		return nil, err
	}
	if id != registryKey.ID() {
		return nil, core.Errorf(core.ESignerUnknown, "the index is signed by key %s, not the registry's pinned key %s", relaypkg.KeyID(id), relaypkg.KeyID(registryKey.ID()))
	}
	if !minisign.Verify(registryKey, doc, sig) {
		return nil, core.Errorf(core.ESignatureInvalid, "the registry's index does not verify with its key %s", relaypkg.KeyID(id))
	}
	var x Index
	if err := json.Unmarshal(doc, &x); err != nil {
		return nil, core.Errorf(core.EPackageCorrupt, "the registry's index does not read: %v", err)
	}
	if x.Version < seen {
		return nil, core.Errorf(core.EIndexRollback, "the registry's index is version %d, older than version %d seen before", x.Version, seen)
	}
	if !now.Before(x.Expires) {
		return nil, core.Errorf(core.EIndexExpired, "the registry's index expired at %s", x.Expires.Format(time.RFC3339))
	}
	return &x, nil
}
