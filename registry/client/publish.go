package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/relaypkg"
)

// RegisterPublisher registers a publisher named name, owned by the
// workspace of the client's API key (an admin's), with publicKey (a
// minisign public key: its base64 line or a minisign .pub file) as its
// first signing key. It returns the publisher and its token, which the
// registry shows only this once. EConflict when the name is taken or
// Relay's own.
func (c *Client) RegisterPublisher(ctx context.Context, name, displayName, publicKey string) (*registry.Publisher, string, error) {
	// The registry takes the key's line; a .pub file's comment line is
	// the client's to drop.
	key, err := relaypkg.ParsePublicKey(publicKey)
	if err != nil {
		return nil, "", err
	}
	in := map[string]string{"name": name, "display_name": displayName, "public_key": relaypkg.PublicKeyLine(key)}
	var out struct {
		Publisher *registry.Publisher `json:"publisher"`
		Token     string              `json:"token"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/registry/publishers", apiKey, in, &out); err != nil {
		return nil, "", err
	}
	return out.Publisher, out.Token, nil
}

// Publisher returns a publisher with its keys, revoked ones included.
func (c *Client) Publisher(ctx context.Context, name string) (*registry.Publisher, error) {
	var p registry.Publisher
	return &p, c.call(ctx, http.MethodGet, publisherPath(name), anonymous, nil, &p)
}

// AddKey adds a signing key (minisign's, as RegisterPublisher takes it)
// to the token's publisher, named publisher: key rotation is add the new
// key, publish with it, revoke the old one.
func (c *Client) AddKey(ctx context.Context, publisher, publicKey string) (*registry.Key, error) {
	key, err := relaypkg.ParsePublicKey(publicKey)
	if err != nil {
		return nil, err
	}
	var k registry.Key
	return &k, c.call(ctx, http.MethodPost, publisherPath(publisher)+"/keys", publisherToken,
		map[string]string{"public_key": relaypkg.PublicKeyLine(key)}, &k)
}

// RevokeKey revokes one of the publisher's keys, by its id (16 hex
// digits): it signs nothing more. EConflict for the last active key.
func (c *Client) RevokeKey(ctx context.Context, publisher, keyID string) error {
	return c.call(ctx, http.MethodDelete, publisherPath(publisher)+"/keys/"+url.PathEscape(keyID), publisherToken, nil, nil)
}

// Upload sends a package to the registry in parts of registry.PartSize,
// each sent again after a network error or a 5xx or 429 answer (as
// Config.Retries allows), and returns the upload, ready to publish.
func (c *Client) Upload(ctx context.Context, pkg io.Reader) (*registry.Upload, error) {
	var u registry.Upload
	if err := c.call(ctx, http.MethodPost, "/v1/registry/uploads", publisherToken, nil, &u); err != nil {
		return nil, err
	}
	buf := make([]byte, registry.PartSize)
	var sent int64
	for n := 0; ; n++ {
		k, err := io.ReadFull(pkg, buf)
		if k > 0 {
			got, perr := c.putPart(ctx, u.ID, n, buf[:k])
			if perr != nil {
				return nil, perr
			}
			sent += int64(k)
			u = *got
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		} else if err != nil {
			return nil, err
		}
	}
	if sent == 0 {
		return nil, core.Errorf(core.EInvalid, "the package is empty")
	}
	if u.Size != sent {
		return nil, core.Errorf(core.EInternal, "the registry holds %d bytes of upload %s; %d were sent", u.Size, u.ID, sent)
	}
	return &u, nil
}

// putPart sends part n of an upload, again after a network error or a
// 5xx or 429 answer: the registry keeps the last copy of a part.
func (c *Client) putPart(ctx context.Context, uploadID string, n int, data []byte) (*registry.Upload, error) {
	r := request{method: http.MethodPut, path: "/v1/registry/uploads/" + url.PathEscape(uploadID) + "/parts/" + strconv.Itoa(n),
		auth: publisherToken, body: data, contentType: "application/octet-stream"}
	wait := c.cfg.RetryWait
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, r, c.cfg.Timeout, maxResponse)
		retry := false
		switch {
		case err != nil:
			retry = core.ErrorCode(err) == core.EUnavailable
		case resp.status >= 500 || resp.status == http.StatusTooManyRequests:
			err, retry = answerError(resp), true
		default:
			var u registry.Upload
			if err := decode(r, resp, &u); err != nil {
				return nil, err
			}
			return &u, nil
		}
		if !retry || attempt >= c.cfg.Retries {
			if retry && attempt > 0 {
				return nil, fmt.Errorf("part %d of the upload, sent %d times: %w", n, attempt+1, err)
			}
			return nil, err
		}
		var ce *core.Error
		d := wait
		if errors.As(err, &ce) && ce.RetryAfter > d {
			d = ce.RetryAfter
		}
		if err := sleep(ctx, min(d, maxRetryWait)); err != nil {
			return nil, err
		}
		wait *= 2
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PublishUpload publishes an upload as a version of pkg (publisher/name),
// with signature, minisign's over the package's index. The registry
// refuses a package that does not read whole (relaypkg's codes), one that
// is not the publisher's (EForbidden), a signature that does not verify
// (ESignatureInvalid) or by a key the publisher does not have
// (ESignerUnknown) or revoked (ESignerRevoked), and a version published
// before (EConflict: versions never change).
func (c *Client) PublishUpload(ctx context.Context, pkg, uploadID string, signature []byte) (*registry.VersionDetail, error) {
	path, err := packagePath(pkg)
	if err != nil {
		return nil, err
	}
	var v registry.VersionDetail
	return &v, c.call(ctx, http.MethodPost, path+"/versions", publisherToken,
		map[string]string{"upload": uploadID, "signature": string(signature)}, &v)
}

// Publish uploads a package (a .relaypkg file's bytes) and publishes it
// with signature, as PublishUpload does. The package is read whole first
// (relaypkg.Inspect), so that one the registry would refuse as corrupt
// is refused, with the same code, before it is sent.
func (c *Client) Publish(ctx context.Context, pkg, signature []byte) (*registry.VersionDetail, error) {
	p, err := relaypkg.Inspect(bytes.NewReader(pkg), c.cfg.Limits)
	if err != nil {
		return nil, err
	}
	if _, err := relaypkg.SignerOf(signature); err != nil {
		return nil, err
	}
	u, err := c.Upload(ctx, bytes.NewReader(pkg))
	if err != nil {
		return nil, err
	}
	return c.PublishUpload(ctx, p.Index.Package, u.ID, signature)
}

// Yank withdraws a version of the token's publisher's package, with a
// reason (1 to 500 characters): ranges never pick it again; those locked
// to it keep it, and see the reason. ENotFound for a version that is not
// there or yanked already.
func (c *Client) Yank(ctx context.Context, pkg, version, reason string) error {
	path, err := versionPath(pkg, version)
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPost, path+"/yank", publisherToken, map[string]string{"reason": reason}, nil)
}

// Deprecate marks the token's publisher's package deprecated with a
// message (a successor to use, say; at most 500 characters); an empty
// message lifts it.
func (c *Client) Deprecate(ctx context.Context, pkg, message string) error {
	path, err := packagePath(pkg)
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPost, path+"/deprecate", publisherToken, map[string]string{"message": message}, nil)
}
