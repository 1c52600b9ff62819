package registry

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// FirstParty is the publisher of Relay's own connectors: no one else may
// publish under it, so that a third party can never shadow a built-in.
const FirstParty = "relay"

// Publisher is who publishes packages: a name (the first part of theirs),
// owned by the workspace that registered it, and the keys it signs with.
type Publisher struct {
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name,omitempty"`
	WorkspaceID string    `json:"-"`
	Keys        []Key     `json:"keys"`
	CreatedAt   time.Time `json:"created_at"`
}

// Key is a publisher's signing key.
type Key struct {
	ID        string     `json:"id"`         // relaypkg.KeyID
	PublicKey string     `json:"public_key"` // minisign's base64 line
	AddedAt   time.Time  `json:"added_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Active reports whether the key may sign.
func (k *Key) Active() bool { return k.RevokedAt == nil }

var publisherNameRE = regexp.MustCompile(`^[a-z](?:[a-z0-9]|-[a-z0-9]){0,38}$`)

// A publisher token reads rpt_<id>_<secret>; only a keyed hash of the
// secret is kept.
const tokenPrefix = "rpt_"

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newToken() (id, secret, token string) {
	id = core.NewID()
	var raw [32]byte
	rand.Read(raw[:])
	secret = tokenEncoding.EncodeToString(raw[:])
	return id, secret, tokenPrefix + id + "_" + secret
}

func parseToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(rest) != core.IDLen+1+52 || rest[core.IDLen] != '_' {
		return "", "", false
	}
	id, secret = rest[:core.IDLen], rest[core.IDLen+1:]
	return id, secret, core.ValidID(id)
}

// tokenHash binds a publisher token's hash to its kind, so that it cannot
// pass for an API key's.
func (s *Service) tokenHash(id, secret string) []byte {
	return s.cfg.Hasher.Hash("publisher-token:"+id, secret)
}

// RegisterPublisher makes a publisher named name, owned by the caller's
// workspace (an admin's), with publicKey (minisign's) as its first signing
// key, and returns it with its token, shown only here. EConflict when the
// name is taken or reserved.
func (s *Service) RegisterPublisher(ctx context.Context, c *core.Caller, name, displayName, publicKey string) (*Publisher, string, error) {
	if !publisherNameRE.MatchString(name) {
		return nil, "", core.Errorf(core.EInvalid, "publisher name %q: lower-case letters, digits and single hyphens, starting with a letter", name)
	}
	if relaypkg.Skeleton(name) == relaypkg.Skeleton(FirstParty) {
		return nil, "", core.Errorf(core.EConflict, "the publisher name %q is, or looks like, %q: Relay's own", name, FirstParty)
	}
	if err := s.ownRegistry(); err != nil {
		return nil, "", err
	}
	if len(displayName) > 100 {
		return nil, "", core.Errorf(core.EInvalid, "display_name is at most 100 characters")
	}
	key, err := relaypkg.ParsePublicKey(publicKey)
	if err != nil {
		return nil, "", err
	}
	id, secret, token := newToken()
	now := s.now()
	p := &Publisher{Name: name, DisplayName: displayName, WorkspaceID: c.WorkspaceID, CreatedAt: now,
		Keys: []Key{{ID: relaypkg.KeyID(key.ID()), PublicKey: relaypkg.PublicKeyLine(key), AddedAt: now}}}
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		if err := checkNameFree(ctx, tx, "registry_publishers", "publisher name", name); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_publishers (name, workspace_id, display_name, token_id, token_hash, created_at, skeleton)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), name, c.WorkspaceID, displayName, id, s.tokenHash(id, secret), now, relaypkg.Skeleton(name))
		if s.isUnique(err) {
			return core.Errorf(core.EConflict, "the publisher name %q, or one that looks like it, is taken", name)
		}
		if err != nil {
			return fmt.Errorf("registry: insert publisher: %w", err)
		}
		if err := s.insertKey(ctx, tx, name, p.Keys[0]); err != nil {
			return err
		}
		if err := bumpIndex(ctx, tx); err != nil {
			return err
		}
		return audit(c.AuditRecord("registry.publisher.register", "publisher:"+name, "success", details(map[string]any{"key_id": p.Keys[0].ID})))
	})
	if err != nil {
		return nil, "", err
	}
	return p, token, nil
}

// checkNameFree refuses, in tx, a publisher or package name that is
// taken, by itself or by a name that looks like it (its skeleton), naming
// which. Two that race past it meet the skeleton's unique index.
func checkNameFree(ctx context.Context, tx *sqlx.Tx, table, what, name string) error {
	var other string
	err := tx.GetContext(ctx, &other, tx.Rebind(`SELECT name FROM `+table+` WHERE skeleton = ?`), relaypkg.Skeleton(name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("registry: names like %s: %w", name, err)
	case other == name:
		return core.Errorf(core.EConflict, "the %s %q is taken", what, name)
	}
	return core.Errorf(core.EConflict, "the %s %q looks like %q, which is taken (names that differ only by hyphens, 0/o, 1/l, 5/s, rn/m or vv/w are one)", what, name, other)
}

func (s *Service) insertKey(ctx context.Context, tx *sqlx.Tx, publisher string, k Key) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_keys (publisher, key_id, public_key, added_at) VALUES (?, ?, ?, ?)`),
		publisher, k.ID, k.PublicKey, k.AddedAt)
	if s.isUnique(err) {
		return core.Errorf(core.EConflict, "publisher %s has key %s already", publisher, k.ID)
	}
	if err != nil {
		return fmt.Errorf("registry: insert key: %w", err)
	}
	return nil
}

// Publisher returns a publisher with its keys, revoked ones included;
// ENotFound when there is none.
func (s *Service) Publisher(ctx context.Context, name string) (*Publisher, error) {
	return s.publisher(ctx, s.cfg.DB.DB(), name)
}

func (s *Service) publisher(ctx context.Context, db sqlx.ExtContext, name string) (*Publisher, error) {
	var row struct {
		Name        string    `db:"name"`
		DisplayName string    `db:"display_name"`
		WorkspaceID string    `db:"workspace_id"`
		CreatedAt   time.Time `db:"created_at"`
	}
	err := sqlx.GetContext(ctx, db, &row, db.Rebind(`SELECT name, display_name, COALESCE(workspace_id, '') AS workspace_id, created_at FROM registry_publishers WHERE name = ?`), name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no publisher %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: get publisher: %w", err)
	}
	p := &Publisher{Name: row.Name, DisplayName: row.DisplayName, WorkspaceID: row.WorkspaceID, CreatedAt: row.CreatedAt.UTC()}
	if p.Keys, err = s.keys(ctx, db, name); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Service) keys(ctx context.Context, db sqlx.ExtContext, publisher string) ([]Key, error) {
	var rows []struct {
		ID        string     `db:"key_id"`
		PublicKey string     `db:"public_key"`
		AddedAt   time.Time  `db:"added_at"`
		RevokedAt *time.Time `db:"revoked_at"`
	}
	if err := sqlx.SelectContext(ctx, db, &rows, db.Rebind(`SELECT key_id, public_key, added_at, revoked_at FROM registry_keys
		WHERE publisher = ? ORDER BY added_at, key_id`), publisher); err != nil {
		return nil, fmt.Errorf("registry: list keys: %w", err)
	}
	keys := make([]Key, len(rows))
	for i, r := range rows {
		keys[i] = Key{ID: r.ID, PublicKey: r.PublicKey, AddedAt: r.AddedAt.UTC(), RevokedAt: utcPtr(r.RevokedAt)}
	}
	return keys, nil
}

// Authenticate checks a publisher token (the Authorization header's bearer
// token) and returns the publisher it is for, with the audit caller of its
// actions; EUnauthenticated otherwise, saying nothing more.
func (s *Service) Authenticate(ctx context.Context, authorization, ip, requestID string) (*Publisher, *core.Caller, error) {
	unauth := core.Errorf(core.EUnauthenticated, "a valid publisher token is required: Authorization: Bearer rpt_…")
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, nil, unauth
	}
	id, secret, ok := parseToken(strings.TrimSpace(token))
	if !ok {
		return nil, nil, unauth
	}
	var row struct {
		Name string `db:"name"`
		Hash []byte `db:"token_hash"`
	}
	db := s.cfg.DB.DB()
	err := db.GetContext(ctx, &row, db.Rebind(`SELECT name, token_hash FROM registry_publishers WHERE token_id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, unauth
	}
	if err != nil {
		return nil, nil, fmt.Errorf("registry: authenticate: %w", err)
	}
	if !equalHash(s.tokenHash(id, secret), row.Hash) {
		return nil, nil, unauth
	}
	p, err := s.Publisher(ctx, row.Name)
	if err != nil {
		return nil, nil, err
	}
	return p, &core.Caller{WorkspaceID: p.WorkspaceID, KeyID: id, Role: "publisher", IP: ip, RequestID: requestID}, nil
}

// AddKey adds a signing key to a publisher (key rotation: add the new
// key, publish with it, then revoke the old one).
func (s *Service) AddKey(ctx context.Context, p *Publisher, c *core.Caller, publicKey string) (*Key, error) {
	key, err := relaypkg.ParsePublicKey(publicKey)
	if err != nil {
		return nil, err
	}
	k := Key{ID: relaypkg.KeyID(key.ID()), PublicKey: relaypkg.PublicKeyLine(key), AddedAt: s.now()}
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		if err := s.insertKey(ctx, tx, p.Name, k); err != nil {
			return err
		}
		if err := bumpIndex(ctx, tx); err != nil {
			return err
		}
		return audit(c.AuditRecord("registry.key.add", "publisher:"+p.Name, "success", details(map[string]any{"key_id": k.ID})))
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// RevokeKey revokes a publisher's key: the versions it signed stay, but it
// signs nothing more, and a server that re-checks a lock signed by it
// learns of the revocation through the index. A publisher's last active
// key cannot be revoked: add its successor first.
func (s *Service) RevokeKey(ctx context.Context, p *Publisher, c *core.Caller, keyID string) error {
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		keys, err := s.keys(ctx, tx, p.Name)
		if err != nil {
			return err
		}
		active, found := 0, false
		for _, k := range keys {
			if k.Active() {
				active++
				found = found || k.ID == keyID
			}
		}
		if !found {
			return core.Errorf(core.ENotFound, "publisher %s has no active key %s", p.Name, keyID)
		}
		if active == 1 {
			return core.Errorf(core.EConflict, "key %s is publisher %s's last active key: add another first", keyID, p.Name)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE registry_keys SET revoked_at = ? WHERE publisher = ? AND key_id = ? AND revoked_at IS NULL`),
			s.now(), p.Name, keyID); err != nil {
			return fmt.Errorf("registry: revoke key: %w", err)
		}
		if err := bumpIndex(ctx, tx); err != nil {
			return err
		}
		return audit(c.AuditRecord("registry.key.revoke", "publisher:"+p.Name, "success", details(map[string]any{"key_id": keyID})))
	})
}

// bumpIndex moves the index's version on by one: every change to what it
// lists does, in the change's transaction.
func bumpIndex(ctx context.Context, tx *sqlx.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE registry_state SET index_version = index_version + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("registry: index version: %w", err)
	}
	return nil
}

func details(v map[string]any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func equalHash(a, b []byte) bool { return hmac.Equal(a, b) }
