package client

import (
	"context"
	"net/http"

	"aead.dev/minisign"

	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/relaypkg"
)

// Upstream is the client's registry as a server's upstream
// (registry.Config.Upstream): the registry `relay serve --registry-url`
// installs from, its index verified with key, the one the server pins
// (--registry-key).
func (c *Client) Upstream(key minisign.PublicKey) registry.Upstream {
	return upstream{c: c, key: key}
}

type upstream struct {
	c   *Client
	key minisign.PublicKey
}

func (u upstream) Name() string  { return u.c.base }
func (u upstream) KeyID() string { return relaypkg.KeyID(u.key.ID()) }

func (u upstream) Index(ctx context.Context, seen int64) (*registry.Index, error) {
	x, err := u.c.Index(ctx, u.key, seen)
	if err != nil {
		return nil, err
	}
	return x.Index, nil
}

func (u upstream) Version(ctx context.Context, pkg, version string) (*registry.VersionDetail, error) {
	return u.c.Version(ctx, pkg, version)
}

// Listings reads a page of the registry's marketplace listings (its
// public GET /v1/marketplace/… routes): path with its query, decoded into
// out.
func (u upstream) Listings(ctx context.Context, path string, out any) error {
	return u.c.call(ctx, http.MethodGet, path, anonymous, nil, out)
}

func (u upstream) Download(ctx context.Context, pkg, version, sum string) (*registry.VersionDetail, []byte, error) {
	d, err := u.c.Download(ctx, pkg, version, sum)
	if err != nil {
		return nil, nil, err
	}
	return d.Version, d.Data, nil
}
