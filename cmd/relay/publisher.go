package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/author"
	"github.com/relayhq/relay/registry/client"
	"github.com/relayhq/relay/registry/relaypkg"
)

// The commands that talk to a registry: thin over registry/client.

// registryURLFlag registers --registry-url.
func registryURLFlag(fs *flag.FlagSet) *string {
	return fs.String("registry-url", env("REGISTRY_URL", "http://127.0.0.1:8080"), "the registry's server (RELAY_REGISTRY_URL)")
}

// tokenFlags are the flags of the commands that act as a publisher.
type tokenFlags struct{ token, file string }

func (t *tokenFlags) register(fs *flag.FlagSet) {
	// Secrets are read from the environment after parsing, so that -h
	// never shows them as a default.
	fs.StringVar(&t.token, "token", "", "the publisher's token, rpt_…, that relay publisher register printed (RELAY_PUBLISHER_TOKEN)")
	fs.StringVar(&t.file, "token-file", env("PUBLISHER_TOKEN_FILE", ""), "a file holding the publisher's token, as relay publisher register --token-file writes it (RELAY_PUBLISHER_TOKEN_FILE)")
}

// value is the token: --token's, else --token-file's, else
// RELAY_PUBLISHER_TOKEN's.
func (t *tokenFlags) value() (string, error) {
	switch {
	case t.token != "":
		return t.token, nil
	case t.file != "":
		data, err := os.ReadFile(t.file)
		if err != nil {
			return "", fmt.Errorf("the publisher's token: %w", err)
		}
		return strings.TrimSpace(string(data)), nil
	case env("PUBLISHER_TOKEN", "") != "":
		return env("PUBLISHER_TOKEN", ""), nil
	}
	return "", usageError{"no publisher token: pass --token or --token-file, or set RELAY_PUBLISHER_TOKEN to the token relay publisher register printed"}
}

// publisherClient is a client of the registry at url acting as the
// publisher of tokens.
func publisherClient(url string, tokens *tokenFlags) (*client.Client, error) {
	token, err := tokens.value()
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{URL: url, Token: token})
}

// projectPackage is the package that the relay.json in dir names, for a
// command that was not told which; what names the flag to pass instead.
func projectPackage(dir, what string) (string, error) {
	p, err := author.LoadProject(dir)
	if core.ErrorCode(err) == core.ENotFound {
		return "", usageError{fmt.Sprintf("%s has no %s to take the package from: pass %s", dir, author.ProjectFile, what)}
	} else if err != nil {
		return "", err
	}
	return p.Package, nil
}

// defaultPublicKey is the public half of the key relay connector sign
// uses by default: beside RELAY_PUBLISHER_KEY, or ~/.relay/publisher.pub.
func defaultPublicKey() string {
	if k := env("PUBLISHER_KEY", ""); k != "" {
		return strings.TrimSuffix(k, ".key") + ".pub"
	}
	return filepath.Join(defaultKeyDir(), author.PublicKeyFile)
}

// readPublicKey reads a minisign public key file.
func readPublicKey(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return "", core.Errorf(core.ENotFound, "no public key at %s: make a key pair with `relay publisher keygen`, or pass --key", path)
	} else if err != nil {
		return "", err
	}
	if _, err := relaypkg.ParsePublicKey(string(data)); err != nil {
		return "", core.Errorf(core.EInvalid, "%s: %s", path, core.ErrorMessage(err))
	}
	return string(data), nil
}

func cmdPublisherRegister(fs *flag.FlagSet) runFunc {
	var keyPath, displayName, apiKey, tokenFile string
	registryURL := registryURLFlag(fs)
	fs.StringVar(&apiKey, "api-key", "", "an API key of the registry's server, a workspace admin's: the workspace owns the publisher (RELAY_API_KEY)")
	fs.StringVar(&keyPath, "key", defaultPublicKey(), "the publisher's minisign public key file, its first signing key (default beside RELAY_PUBLISHER_KEY, or ~/.relay/publisher.pub)")
	fs.StringVar(&displayName, "display-name", "", "the publisher's name for people, up to 100 characters")
	fs.StringVar(&tokenFile, "token-file", "", "write the token to this new file (mode 0600) instead of printing it")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 {
			return usageError{"usage: relay publisher register NAME [--key FILE] [--display-name TEXT] [--token-file FILE]"}
		}
		if apiKey == "" {
			apiKey = env("API_KEY", "")
		}
		if apiKey == "" {
			return usageError{"no API key: pass --api-key or set RELAY_API_KEY to a workspace admin's key of the registry's server"}
		}
		publicKey, err := readPublicKey(keyPath)
		if err != nil {
			return err
		}
		// The token is shown once: a file it cannot go to is found out
		// before the publisher is made.
		if tokenFile != "" {
			if _, err := os.Lstat(tokenFile); err == nil {
				return core.Errorf(core.EConflict, "%s exists: a token file is never replaced; name a new one", tokenFile)
			} else if !errors.Is(err, iofs.ErrNotExist) {
				return err
			}
		}
		c, err := client.New(client.Config{URL: *registryURL, APIKey: apiKey})
		if err != nil {
			return err
		}
		p, token, err := c.RegisterPublisher(ctx, pos[0], displayName, publicKey)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "registered publisher %s at %s, with signing key %s\n", p.Name, c.URL(), p.Keys[0].ID)
		if tokenFile != "" {
			if err := author.WriteNew(tokenFile, []byte(token+"\n"), 0o600); err != nil {
				// Lost now, it would be lost for good.
				fmt.Fprintf(stdout, "token %s\n", token)
				return fmt.Errorf("the token could not be written, so it is printed above; keep it: %w", err)
			}
			fmt.Fprintf(stdout, "wrote its token to %s (mode 0600): pass --token-file %s to the publishing commands, and keep the file safe\n", tokenFile, tokenFile)
			return nil
		}
		fmt.Fprintf(stdout, "token %s\n", token)
		fmt.Fprintln(stdout, "Keep the token: it is shown only this once, and publishing needs it (set RELAY_PUBLISHER_TOKEN to it, or pass --token).")
		return nil
	}
}

// publisherFlags are the flags of relay publisher key add and revoke.
type publisherFlags struct {
	registryURL *string
	tokens      tokenFlags
	publisher   string
	dir         string
}

func (pf *publisherFlags) register(fs *flag.FlagSet) {
	pf.registryURL = registryURLFlag(fs)
	pf.tokens.register(fs)
	fs.StringVar(&pf.publisher, "publisher", "", "the publisher whose token it is (default: the publisher of the package in DIR's relay.json)")
	fs.StringVar(&pf.dir, "dir", ".", "a connector module's folder, whose relay.json names the publisher")
}

// resolve returns the client and the publisher's name.
func (pf *publisherFlags) resolve() (*client.Client, string, error) {
	name := pf.publisher
	if name == "" {
		pkg, err := projectPackage(pf.dir, "--publisher NAME")
		if err != nil {
			return nil, "", err
		}
		name, _, _ = strings.Cut(pkg, "/")
	}
	c, err := publisherClient(*pf.registryURL, &pf.tokens)
	return c, name, err
}

func cmdPublisherKeyAdd(fs *flag.FlagSet) runFunc {
	var pf publisherFlags
	var keyPath string
	pf.register(fs)
	fs.StringVar(&keyPath, "key", "", "the new minisign public key file (required)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 || keyPath == "" {
			return usageError{"usage: relay publisher key add --key FILE [--publisher NAME]"}
		}
		publicKey, err := readPublicKey(keyPath)
		if err != nil {
			return err
		}
		c, name, err := pf.resolve()
		if err != nil {
			return err
		}
		k, err := c.AddKey(ctx, name, publicKey)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added key %s to publisher %s: it signs from now on; revoke an old key with relay publisher key revoke KEY_ID\n", k.ID, name)
		return nil
	}
}

func cmdPublisherKeyRevoke(fs *flag.FlagSet) runFunc {
	var pf publisherFlags
	var keyPath string
	pf.register(fs)
	fs.StringVar(&keyPath, "key", "", "the public key file of the key to revoke, instead of its KEY_ID")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 1 || (len(pos) == 1) == (keyPath != "") { // one or the other
			return usageError{"usage: relay publisher key revoke KEY_ID | --key FILE [--publisher NAME]"}
		}
		var keyID string
		if keyPath != "" {
			text, err := readPublicKey(keyPath)
			if err != nil {
				return err
			}
			key, _ := relaypkg.ParsePublicKey(text)
			keyID = relaypkg.KeyID(key.ID())
		} else {
			keyID = strings.ToUpper(pos[0])
		}
		c, name, err := pf.resolve()
		if err != nil {
			return err
		}
		if err := c.RevokeKey(ctx, name, keyID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked key %s of publisher %s: it signs nothing more; what it signed stays published\n", keyID, name)
		return nil
	}
}
