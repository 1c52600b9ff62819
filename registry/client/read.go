package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/relaypkg"
)

// SearchOptions say what to search for.
type SearchOptions struct {
	// Query is matched, ignoring case, in names, descriptions and
	// keywords; empty lists every package.
	Query string
	// Publisher, when set, keeps that publisher's packages only.
	Publisher string
	// Limit is the page's size; 0 takes the registry's default.
	Limit int
	// Cursor is the previous page's NextCursor; empty for the first.
	Cursor string
}

// SearchPage is one page of packages, by name; NextCursor is empty on the
// last page.
type SearchPage struct {
	Data       []*registry.Package `json:"data"`
	NextCursor string              `json:"next_cursor"`
}

// Search returns a page of the packages that match opts.
func (c *Client) Search(ctx context.Context, opts SearchOptions) (*SearchPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"q": opts.Query, "publisher": opts.Publisher, "cursor": opts.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	path := "/v1/registry/packages"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var p SearchPage
	return &p, c.call(ctx, http.MethodGet, path, anonymous, nil, &p)
}

// Package describes a package: its versions, newest first, its latest
// release and that release's capabilities. ENotFound when there is none.
func (c *Client) Package(ctx context.Context, pkg string) (*registry.Package, error) {
	path, err := packagePath(pkg)
	if err != nil {
		return nil, err
	}
	var p registry.Package
	return &p, c.call(ctx, http.MethodGet, path, anonymous, nil, &p)
}

// Version describes a published version: its manifest, capabilities,
// the package's index and the publisher's signature of it, the signer and
// the package file's SHA-256. ENotFound when there is none.
func (c *Client) Version(ctx context.Context, pkg, version string) (*registry.VersionDetail, error) {
	path, err := versionPath(pkg, version)
	if err != nil {
		return nil, err
	}
	var v registry.VersionDetail
	return &v, c.call(ctx, http.MethodGet, path, anonymous, nil, &v)
}

// Downloaded is a package that Download fetched and checked.
type Downloaded struct {
	// Version is the registry's description of the version.
	Version *registry.VersionDetail
	// Data is the .relaypkg file, whose SHA-256 is Version.SHA256.
	Data []byte
	// Package is what relaypkg.Inspect read in Data: its index (the one
	// Version.Signature signs) and its manifest.
	Package *relaypkg.Package
}

// Download fetches a version's package and checks it before returning
// it: its bytes must have the SHA-256 that the registry lists for the
// version, and wantSHA256 too unless it is empty (the digest the caller
// trusts, from a verified index: registry.IndexVersion.SHA256); it must
// read whole (relaypkg.Inspect, with relaypkg's codes) and be the version
// asked for, with the index the version's signature signs. A package that
// differs is EPackageTampered. The package is held in memory, up to
// Config.Limits.Compressed bytes; Config.DownloadTimeout bounds it.
//
// The publisher's signature is not checked here: which keys to trust for
// a publisher is the registry's signed index's to say (Index), and the
// caller's.
func (c *Client) Download(ctx context.Context, pkg, version, wantSHA256 string) (*Downloaded, error) {
	v, err := c.Version(ctx, pkg, version)
	if err != nil {
		return nil, err
	}
	name := pkg + "@" + version
	if wantSHA256 != "" && v.SHA256 != wantSHA256 {
		return nil, core.Errorf(core.EPackageTampered, "the registry lists %s with SHA-256 %s, not %s", name, v.SHA256, wantSHA256)
	}
	if v.Size <= 0 || v.Size > c.cfg.Limits.Compressed {
		return nil, core.Errorf(core.EPackageTooLarge, "the registry lists %s with %d bytes, over the limit of %d", name, v.Size, c.cfg.Limits.Compressed)
	}
	path, _ := versionPath(pkg, version)
	r := request{method: http.MethodGet, path: path + "/download"}
	// A download longer than the version is refused as soon as it is.
	resp, err := c.send(ctx, r, c.cfg.DownloadTimeout, v.Size)
	if core.ErrorCode(err) == core.ETooLarge {
		return nil, core.Errorf(core.EPackageTampered, "the download of %s is longer than the %d bytes the registry lists", name, v.Size)
	} else if err != nil {
		return nil, err
	}
	if resp.status >= 300 {
		return nil, answerError(resp)
	}
	sum := sha256.Sum256(resp.body)
	if got := hex.EncodeToString(sum[:]); got != v.SHA256 {
		return nil, core.Errorf(core.EPackageTampered, "the download of %s has SHA-256 %s (%d bytes), not %s as the registry lists (%d bytes)",
			name, got, len(resp.body), v.SHA256, v.Size)
	}
	p, err := relaypkg.Inspect(bytes.NewReader(resp.body), c.cfg.Limits)
	if err != nil {
		return nil, err
	}
	if p.Index.Package != pkg || p.Index.Version != version || string(p.IndexBytes) != v.Index {
		return nil, core.Errorf(core.EPackageTampered, "the download of %s holds %s, with another index than the one its signature signs", name, p.Index)
	}
	return &Downloaded{Version: v, Data: resp.body, Package: p}, nil
}

// SignedIndex is the registry's index, verified.
type SignedIndex struct {
	*registry.Index
	// Doc and Signature are the index and the registry's signature as
	// they were served, for a caller that keeps them (minisign -V checks
	// them).
	Doc, Signature []byte
}

// indexAttempts is how many times Index fetches the index and its
// signature when they do not match: a change to the registry between the
// two requests makes a new index.
const indexAttempts = 3

// Index fetches the registry's index and its signature and checks them
// (registry.VerifyIndex): signed by registryKey, the key the caller pins
// (ESignerUnknown for another, ESignatureInvalid for an altered index),
// not older than version seen, the newest the caller has seen (0 at
// first; EIndexRollback), and not expired (Config.Now; EIndexExpired).
// The caller keeps the returned index's Version as the next seen.
func (c *Client) Index(ctx context.Context, registryKey minisign.PublicKey, seen int64) (*SignedIndex, error) {
	var err error
	for range indexAttempts {
		var doc, sig *response
		if doc, err = c.getIndexPart(ctx, "/v1/registry/index"); err != nil {
			return nil, err
		}
		if sig, err = c.getIndexPart(ctx, "/v1/registry/index.minisig"); err != nil {
			return nil, err
		}
		var x *registry.Index
		x, err = registry.VerifyIndex(registryKey, doc.body, sig.body, seen, c.cfg.Now())
		if err == nil {
			return &SignedIndex{Index: x, Doc: doc.body, Signature: sig.body}, nil
		}
		if core.ErrorCode(err) != core.ESignatureInvalid {
			return nil, err
		}
	}
	return nil, err
}

func (c *Client) getIndexPart(ctx context.Context, path string) (*response, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: path}, c.cfg.Timeout, maxIndex)
	if err != nil {
		return nil, err
	}
	if resp.status >= 300 {
		return nil, answerError(resp)
	}
	return resp, nil
}
