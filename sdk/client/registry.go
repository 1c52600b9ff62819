package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The registry: connectors installed into the workspace from it, and what
// publishers do. A publisher's calls take its token (rpt_…) where others
// take an API key: make a client with New(baseURL, token, nil).

// Installation is a connector installed from the registry: the exact
// version the workspace's lock pins, and what it was allowed.
type Installation struct {
	Name         string            `json:"name"`
	Package      string            `json:"package"`
	Version      string            `json:"version"`
	SHA256       string            `json:"sha256"`
	Artifacts    map[string]string `json:"artifacts"`
	Signer       string            `json:"signer"`
	Capabilities json.RawMessage   `json:"capabilities"`
	Yanked       json.RawMessage   `json:"yanked,omitempty"`
	Previous     json.RawMessage   `json:"previous,omitempty"`
	InstalledAt  time.Time         `json:"installed_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
}

// UpgradePlan is what upgrading an installed connector would change, and
// the digest that accepts it.
type UpgradePlan struct {
	Name   string          `json:"name"`
	From   string          `json:"from"`
	To     string          `json:"to"`
	Accept string          `json:"accept"`
	Diff   json.RawMessage `json:"diff"`
}

// Publisher is a registry publisher and its signing keys.
type Publisher struct {
	Name        string         `json:"name"`
	DisplayName string         `json:"display_name,omitempty"`
	Keys        []PublisherKey `json:"keys"`
	CreatedAt   time.Time      `json:"created_at"`
}

// PublisherKey is one of a publisher's minisign public keys.
type PublisherKey struct {
	ID        string     `json:"id"`
	PublicKey string     `json:"public_key"`
	AddedAt   time.Time  `json:"added_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// RegisteredPublisher is a new publisher with its token: the only time it
// is shown.
type RegisteredPublisher struct {
	Publisher Publisher `json:"publisher"`
	Token     string    `json:"token"`
}

// Upload is a package being uploaded in parts.
type Upload struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// Package is a registry package.
type Package struct {
	Name         string          `json:"name"`
	Publisher    string          `json:"publisher"`
	Description  string          `json:"description,omitempty"`
	Deprecated   string          `json:"deprecated,omitempty"`
	Latest       string          `json:"latest,omitempty"`
	Versions     json.RawMessage `json:"versions"`
	Capabilities json.RawMessage `json:"capabilities,omitempty"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

// PackagePage is a page of packages; NextCursor is empty on the last.
type PackagePage struct {
	Data       []Package `json:"data"`
	NextCursor string    `json:"next_cursor"`
}

// Version is a published version of a package, with what a client
// verifies: its index and the publisher's signature of it.
type Version struct {
	Package      string          `json:"package"`
	Kind         string          `json:"kind"` // connector or template
	Version      string          `json:"version"`
	SHA256       string          `json:"sha256"`
	Size         int64           `json:"size"`
	IndexSHA256  string          `json:"index_sha256"`
	Index        string          `json:"index"`
	Signature    string          `json:"signature"`
	Signer       string          `json:"signer"`
	PublishedAt  time.Time       `json:"published_at"`
	Yanked       json.RawMessage `json:"yanked,omitempty"`
	Manifest     json.RawMessage `json:"manifest"`
	Capabilities json.RawMessage `json:"capabilities,omitempty"`
	Deprecated   string          `json:"deprecated,omitempty"`
}

// InstallConnector installs a connector package into the workspace
// (POST /v1/connectors/install, admin); version is a semver range, ""
// for the newest.
func (c *Client) InstallConnector(ctx context.Context, pkg, version string) (*Installation, error) {
	var in Installation
	return &in, c.do(ctx, http.MethodPost, "/v1/connectors/install", map[string]string{"package": pkg, "version": version}, &in)
}

// ConnectorLock returns the workspace's installed connectors (GET
// /v1/connectors/lock).
func (c *Client) ConnectorLock(ctx context.Context) ([]Installation, error) {
	var out struct {
		Data []Installation `json:"data"`
	}
	return out.Data, c.do(ctx, http.MethodGet, "/v1/connectors/lock", nil, &out)
}

// PlanConnectorUpgrade says what upgrading an installed connector to
// version (a range; "" for the newest) would change (POST
// /v1/connectors/{name}/upgrade/plan, admin).
func (c *Client) PlanConnectorUpgrade(ctx context.Context, name, version string) (*UpgradePlan, error) {
	var p UpgradePlan
	return &p, c.do(ctx, http.MethodPost, "/v1/connectors/"+url.PathEscape(name)+"/upgrade/plan", map[string]string{"version": version}, &p)
}

// UpgradeConnector upgrades an installed connector to the plan's version;
// accept is the plan's digest (POST /v1/connectors/{name}/upgrade,
// admin).
func (c *Client) UpgradeConnector(ctx context.Context, name, version, accept string) (*Installation, error) {
	var in Installation
	body := map[string]string{"version": version, "accept": accept}
	return &in, c.do(ctx, http.MethodPost, "/v1/connectors/"+url.PathEscape(name)+"/upgrade", body, &in)
}

// RollbackConnector returns an installed connector to the version before
// its last upgrade (POST /v1/connectors/{name}/rollback, admin).
func (c *Client) RollbackConnector(ctx context.Context, name string) (*Installation, error) {
	var in Installation
	return &in, c.do(ctx, http.MethodPost, "/v1/connectors/"+url.PathEscape(name)+"/rollback", nil, &in)
}

// UninstallConnector removes an installed connector no connection uses
// (DELETE /v1/connectors/{name}, admin).
func (c *Client) UninstallConnector(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/connectors/"+url.PathEscape(name), nil, nil)
}

// RegisterPublisher registers a publisher with its minisign public key
// (POST /v1/registry/publishers, admin of the operator's workspace).
func (c *Client) RegisterPublisher(ctx context.Context, name, displayName, publicKey string) (*RegisteredPublisher, error) {
	var p RegisteredPublisher
	body := map[string]string{"name": name, "display_name": displayName, "public_key": publicKey}
	return &p, c.do(ctx, http.MethodPost, "/v1/registry/publishers", body, &p)
}

// Publisher returns a publisher and its keys (GET
// /v1/registry/publishers/{publisher}).
func (c *Client) Publisher(ctx context.Context, name string) (*Publisher, error) {
	var p Publisher
	return &p, c.do(ctx, http.MethodGet, "/v1/registry/publishers/"+url.PathEscape(name), nil, &p)
}

// AddPublisherKey adds a signing key (POST
// /v1/registry/publishers/{publisher}/keys, publisher token).
func (c *Client) AddPublisherKey(ctx context.Context, publisher, publicKey string) (*PublisherKey, error) {
	var k PublisherKey
	path := "/v1/registry/publishers/" + url.PathEscape(publisher) + "/keys"
	return &k, c.do(ctx, http.MethodPost, path, map[string]string{"public_key": publicKey}, &k)
}

// RevokePublisherKey revokes a signing key (DELETE
// /v1/registry/publishers/{publisher}/keys/{key_id}, publisher token).
func (c *Client) RevokePublisherKey(ctx context.Context, publisher, keyID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/registry/publishers/"+url.PathEscape(publisher)+"/keys/"+url.PathEscape(keyID), nil, nil)
}

// CreateUpload starts an upload of a package (POST /v1/registry/uploads,
// publisher token).
func (c *Client) CreateUpload(ctx context.Context) (*Upload, error) {
	var u Upload
	return &u, c.do(ctx, http.MethodPost, "/v1/registry/uploads", nil, &u)
}

// UploadPart sends part n (from 1) of an upload (PUT
// /v1/registry/uploads/{id}/parts/{n}, publisher token).
func (c *Client) UploadPart(ctx context.Context, uploadID string, n int, data []byte) (*Upload, error) {
	var u Upload
	path := "/v1/registry/uploads/" + url.PathEscape(uploadID) + "/parts/" + strconv.Itoa(n)
	_, err := c.send(ctx, http.MethodPut, path, nil, rawBody{data, "application/octet-stream"}, &u)
	return &u, err
}

// PublishVersion publishes an uploaded package under the publisher's
// minisign signature of its index (POST
// /v1/registry/packages/{publisher}/{name}/versions, publisher token).
func (c *Client) PublishVersion(ctx context.Context, pkg, uploadID, signature string) (*Version, error) {
	var v Version
	body := map[string]string{"upload": uploadID, "signature": signature}
	return &v, c.do(ctx, http.MethodPost, "/v1/registry/packages/"+pkgPath(pkg)+"/versions", body, &v)
}

// DeprecatePackage marks a package deprecated with a message ("" to undo)
// (POST /v1/registry/packages/{publisher}/{name}/deprecate, publisher
// token).
func (c *Client) DeprecatePackage(ctx context.Context, pkg, message string) error {
	return c.do(ctx, http.MethodPost, "/v1/registry/packages/"+pkgPath(pkg)+"/deprecate", map[string]string{"message": message}, nil)
}

// YankVersion withdraws a version: no range picks it again; installations
// locked to it keep it (POST
// /v1/registry/packages/{publisher}/{name}/versions/{version}/yank,
// publisher token).
func (c *Client) YankVersion(ctx context.Context, pkg, version, reason string) error {
	return c.do(ctx, http.MethodPost, "/v1/registry/packages/"+pkgPath(pkg)+"/versions/"+url.PathEscape(version)+"/yank",
		map[string]string{"reason": reason}, nil)
}

// ListPackages searches the registry's connector packages by words and
// publisher (GET /v1/registry/packages).
func (c *Client) ListPackages(ctx context.Context, query, publisher string, limit int, cursor string) (*PackagePage, error) {
	q := url.Values{}
	if query != "" {
		q.Set("q", query)
	}
	if publisher != "" {
		q.Set("publisher", publisher)
	}
	var p PackagePage
	return &p, c.do(ctx, http.MethodGet, "/v1/registry/packages"+pageQuery(q, limit, cursor), nil, &p)
}

// Package returns a package, pkg being publisher/name (GET
// /v1/registry/packages/{publisher}/{name}).
func (c *Client) Package(ctx context.Context, pkg string) (*Package, error) {
	var p Package
	return &p, c.do(ctx, http.MethodGet, "/v1/registry/packages/"+pkgPath(pkg), nil, &p)
}

// PackageVersion returns a published version (GET
// /v1/registry/packages/{publisher}/{name}/versions/{version}).
func (c *Client) PackageVersion(ctx context.Context, pkg, version string) (*Version, error) {
	var v Version
	return &v, c.do(ctx, http.MethodGet, "/v1/registry/packages/"+pkgPath(pkg)+"/versions/"+url.PathEscape(version), nil, &v)
}

// DownloadVersion returns a version's .relaypkg file (GET
// /v1/registry/packages/{publisher}/{name}/versions/{version}/download):
// check it against the version's sha256 and signature before trusting it.
func (c *Client) DownloadVersion(ctx context.Context, pkg, version string) ([]byte, error) {
	return c.bytes(ctx, "/v1/registry/packages/"+pkgPath(pkg)+"/versions/"+url.PathEscape(version)+"/download")
}

// RegistryIndex returns the registry's signed index and its minisign
// signature (GET /v1/registry/index and GET /v1/registry/index.minisig):
// verify the signature with the registry's public key before trusting it.
func (c *Client) RegistryIndex(ctx context.Context) (index, signature []byte, err error) {
	if index, err = c.bytes(ctx, "/v1/registry/index"); err != nil {
		return nil, nil, err
	}
	signature, err = c.bytes(ctx, "/v1/registry/index.minisig")
	return index, signature, err
}

// bytes returns the body of a GET of path as it is.
func (c *Client) bytes(ctx context.Context, path string) ([]byte, error) {
	var out []byte
	_, err := c.send(ctx, http.MethodGet, path, nil, nil, &out)
	return out, err
}

// pkgPath is a package's name, publisher/name, as a path: each part
// escaped.
func pkgPath(pkg string) string {
	publisher, name, _ := strings.Cut(pkg, "/")
	return url.PathEscape(publisher) + "/" + url.PathEscape(name)
}
