package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/audit"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
)

// This file holds the operator's maintenance commands: rotating the master
// key and verifying the audit log.

// cmdSecretsRotateMaster re-wraps every workspace's data key, and the API
// key pepper, from the current master key to the one in --new-key-file, in
// one transaction, so that secrets keep opening and API keys keep verifying.
// A store upgraded from a Relay that derived the pepper from the master key,
// and not opened since by a server, has no stored pepper: it is stored
// first, from the current key, once a data key proves that key right.
//
// Servers must be stopped first: a running server keeps the data keys it
// has unwrapped, so it goes on working for a while, but it wraps the data
// key of any workspace that seals its first secret with the old master
// key, which the new one cannot unwrap. Data keys already wrapped with the
// new key are kept as they are, so running the command again re-wraps
// just those that such a server made.
//
// Without --install it changes only the database and tells the operator to
// put the new key in place; with --install it also replaces the current key
// file with the new key (a temporary file of mode 0600 renamed over it) and
// keeps the old key beside it, as <file>.replaced-<UTC time>.
func cmdSecretsRotateMaster(fs *flag.FlagSet) runFunc {
	var cfg Config
	var newKeyFile string
	var install bool
	storeFlags(fs, &cfg)
	fs.StringVar(&newKeyFile, "new-key-file", "", "file holding the new master key: 64 hex digits, mode 0600 (required)")
	fs.BoolVar(&install, "install", false, "after the rotation, replace the current master key file with the new key; stop every server first")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 || newKeyFile == "" {
			return usageError{"usage: relay secrets rotate-master --new-key-file FILE [--install]"}
		}
		current := cfg.masterKeyFile()

		// Never made here: a new current key would wrap nothing the store has.
		oldKey, _, err := secrets.LoadOrCreateMasterKey(current, false)
		if errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("no master key at %s: nothing to rotate from; pass --master-key-file (or --data-dir) as the servers do", current)
		} else if err != nil {
			return fmt.Errorf("the current %w", err)
		}
		defer clear(oldKey)
		newKey, _, err := secrets.LoadOrCreateMasterKey(newKeyFile, false)
		if errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("no new master key at %s: write one first, for example (umask 077; openssl rand -hex 32 > %s)", newKeyFile, newKeyFile)
		} else if err != nil {
			return fmt.Errorf("the new %w", err)
		}
		defer clear(newKey)
		if subtle.ConstantTimeCompare(oldKey, newKey) == 1 {
			return fmt.Errorf("the new master key in %s is the current one in %s: nothing to rotate", newKeyFile, current)
		}

		// With --install, the new key waits beside the current one to be
		// renamed over it, and the current one gets a second name, so that it
		// outlives the rename: data keys a server still on it wraps meanwhile
		// need it (see docs/operations.md). Both are made before the rotation:
		// a folder that refuses them stops it while nothing has changed.
		var staged, kept string
		if install {
			if staged, err = stageMasterKey(current, newKey); err != nil {
				return fmt.Errorf("--install: %w; nothing changed", err)
			}
			defer func() {
				if staged != "" {
					os.Remove(staged)
				}
			}()
			kept = current + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
			if err := os.Link(current, kept); err != nil {
				return fmt.Errorf("--install: keeping the current key: %w; nothing changed", err)
			}
			defer func() {
				if staged != "" { // not installed: the current key is still in place
					os.Remove(kept)
				}
			}()
		}

		var n, already int
		var pepper string // what became of the API key pepper
		err = withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			if err := storeLegacyPepper(ctx, st, oldKey, current); err != nil {
				return err
			}
			rs := &resumingStore{Store: st, newKey: newKey}
			total, err := secrets.RotateMaster(ctx, rs, oldKey, newKey)
			if errors.Is(err, secrets.ErrUnwrap) {
				return fmt.Errorf("%w; is %s the master key the servers run on?", err, current)
			} else if err != nil {
				return err
			}
			n, already, pepper = total-rs.kept, rs.kept, rs.pepper
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "re-wrapped %s with the new master key from %s\n", plural(n, "workspace data key"), newKeyFile)
		if already > 0 {
			was := "data keys were"
			if already == 1 {
				was = "data key was"
			}
			fmt.Fprintf(stdout, "%d %s already wrapped with it, by an earlier rotation, and kept as is\n", already, was)
		}
		if pepper != "" {
			fmt.Fprintln(stdout, pepper)
		}

		if install {
			if err := os.Rename(staged, current); err != nil {
				return fmt.Errorf("the data keys are now wrapped with the key in %s, but installing it failed: %w; "+
					"copy %s over %s (mode 0600) yourself before any server starts", newKeyFile, err, newKeyFile, current)
			}
			staged = ""
			syncDir(filepath.Dir(current))
			fmt.Fprintf(stdout, "installed the new master key in %s\n", current)
			fmt.Fprintf(stdout, "the old key is kept in %s: delete it once no server runs on it and no backup you keep needs it\n", kept)
			fmt.Fprintln(stdout, "next: start the servers again; they read the new key at start")
		} else {
			fmt.Fprintf(stdout, "next: stop every server, replace %s with %s (mode 0600), start them again\n", current, newKeyFile)
			fmt.Fprintf(stdout, "until then, a server started on %s cannot open any secret\n", current)
		}
		return nil
	}
}

// storeLegacyPepper stores the API key pepper, from the current master key,
// in a store that has none yet, so that the rotation re-wraps it: else the
// servers on the new key would derive another pepper, under which no API
// key of the store verifies. It stores it only once a data key unwraps
// with the current key: a pepper from a wrong key would break every API
// key for good. Without such proof it refuses when the store has API keys.
func storeLegacyPepper(ctx context.Context, st *sqlstore.Store, current []byte, currentFile string) error {
	_, err := st.WrappedServerKey(ctx, secrets.APIKeyPepperName)
	if core.ErrorCode(err) != core.ENotFound {
		return err // stored, or a store error
	}
	proven, err := unwrapsADataKey(ctx, st, current)
	if err != nil {
		return err
	}
	if proven {
		_, err := secrets.APIKeyPepper(ctx, current, st)
		return err
	}
	apiKeys, err := countAPIKeys(ctx, st)
	if err != nil || apiKeys == 0 {
		return err
	}
	return fmt.Errorf("the store has %s but no stored API key pepper, and no data key unwraps with %s to prove it the master key the servers run on; "+
		"start relay serve once on the current key (it stores the pepper), stop it and rotate again; nothing changed",
		plural(apiKeys, "active API key"), currentFile)
}

// unwrapsADataKey reports whether master unwraps the data key of some
// workspace.
func unwrapsADataKey(ctx context.Context, st *sqlstore.Store, master []byte) (bool, error) {
	list, err := st.ListWorkspaces(ctx)
	if err != nil {
		return false, err
	}
	for _, ws := range list {
		wrapped, err := st.WrappedDataKey(ctx, ws.ID)
		if core.ErrorCode(err) == core.ENotFound {
			continue
		} else if err != nil {
			return false, err
		}
		if unwraps(ctx, ws.ID, wrapped, master) {
			return true, nil
		}
	}
	return false, nil
}

// resumingStore re-wraps, through the store, only the data keys (and server
// keys) the new master key does not already unwrap, so that rotate-master
// can be run again after a rotation, or after a server on the old key made
// data keys since: those are re-wrapped, the others kept, in the same one
// transaction.
type resumingStore struct {
	*sqlstore.Store
	newKey []byte
	kept   int    // data keys already wrapped with newKey
	pepper string // what became of the API key pepper, when the store holds one
}

func (r *resumingStore) RewrapDataKeys(ctx context.Context, rewrap func(string, []byte) ([]byte, error)) (int, error) {
	r.kept, r.pepper = 0, ""
	return r.Store.RewrapDataKeys(ctx, func(id string, wrapped []byte) ([]byte, error) {
		isPepper := id == core.ServerKeyScope+secrets.APIKeyPepperName
		if unwraps(ctx, id, wrapped, r.newKey) {
			if isPepper {
				r.pepper = "the API key pepper was already wrapped with it, and kept as is"
			} else if !strings.HasPrefix(id, core.ServerKeyScope) {
				r.kept++
			}
			return wrapped, nil
		}
		if isPepper {
			r.pepper = "re-wrapped the API key pepper too: API keys keep working"
		}
		return rewrap(id, wrapped)
	})
}

// unwraps reports whether master unwraps the wrapped key of id (a workspace
// id, or core.ServerKeyScope and a server key's name), by a rotation over a
// store of that one key that keeps nothing.
func unwraps(ctx context.Context, id string, wrapped, master []byte) bool {
	other := make([]byte, secrets.MasterKeySize)
	rand.Read(other)
	_, err := secrets.RotateMaster(ctx, probeStore{id, wrapped}, master, other)
	return err == nil
}

// probeStore holds one wrapped key; RewrapDataKeys shows it to rewrap and
// drops the result.
type probeStore struct {
	id      string // as RewrapDataKeys gives it
	wrapped []byte
}

func (p probeStore) WrappedDataKey(context.Context, string) ([]byte, error) { return p.wrapped, nil }

func (p probeStore) CreateWrappedDataKey(context.Context, string, []byte) ([]byte, error) {
	return nil, errors.New("probe store: read only")
}

func (p probeStore) RewrapDataKeys(_ context.Context, rewrap func(string, []byte) ([]byte, error)) (int, error) {
	if _, err := rewrap(p.id, p.wrapped); err != nil {
		return 0, err
	}
	return 1, nil
}

// stageMasterKey writes key, as hex, to a new file of mode 0600 beside
// path, synced, and returns its name, for a rename over path.
func stageMasterKey(path string, key []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".master-key-*") // mode 0600
	if err != nil {
		return "", err
	}
	_, err = tmp.WriteString(hex.EncodeToString(key) + "\n")
	if serr := tmp.Sync(); err == nil {
		err = serr
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// syncDir makes a rename in dir durable where the system allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// countAPIKeys counts the active API keys of every workspace.
func countAPIKeys(ctx context.Context, st *sqlstore.Store) (int, error) {
	list, err := st.ListWorkspaces(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ws := range list {
		page := core.Page{Limit: core.MaxPageLimit}
		for {
			keys, next, err := st.ListKeys(ctx, ws.ID, page)
			if err != nil {
				return 0, err
			}
			n += len(keys)
			if next == "" {
				break
			}
			page.Cursor = next
		}
	}
	return n, nil
}

// cmdAuditVerify checks the audit log's hash chains, of one workspace or of
// all, and names the first record that was edited, inserted, deleted or
// reordered. It fails (exit 1) on a break, with the record in the error.
func cmdAuditVerify(fs *flag.FlagSet) runFunc {
	var cfg Config
	var workspace string
	storeFlags(fs, &cfg)
	fs.StringVar(&workspace, "workspace", "", "the workspace to check, by name; default every workspace")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 {
			return usageError{"usage: relay audit verify [--workspace NAME]"}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			names := map[string]string{} // workspace id → name
			var workspaceID string
			if workspace != "" {
				ws, err := st.WorkspaceByName(ctx, workspace)
				if err != nil {
					return err
				}
				workspaceID, names[ws.ID] = ws.ID, ws.Name
			} else {
				list, err := st.ListWorkspaces(ctx)
				if err != nil {
					return err
				}
				for _, ws := range list {
					names[ws.ID] = ws.Name
				}
			}
			key, err := auditCheckKey(ctx, cfg, st)
			if err != nil {
				return err
			}
			// The records are counted as Verify reads them, so the count is
			// of what was verified, even while a server appends meanwhile.
			counted := &countingAudit{AuditStore: st, workspaces: map[string]bool{}}
			b, err := audit.Verify(ctx, counted, workspaceID, key)
			if err != nil {
				return err
			}
			if b == nil {
				for id := range names {
					counted.workspaces[id] = true
				}
				fmt.Fprintf(stdout, "audit log intact: %s in %s\n",
					plural(counted.records, "record"), plural(len(counted.workspaces), "workspace"))
				if counted.checkpoints > 0 {
					fmt.Fprintf(stdout, "%s of records purged by retention, signed by audit key %s\n",
						plural(counted.checkpoints, "checkpoint"), audit.KeyID(key))
				}
				return nil
			}
			name, ok := names[b.WorkspaceID]
			if !ok { // made after the list was read
				if ws, err := st.Workspace(ctx, b.WorkspaceID); err == nil {
					name = ws.Name
				} else {
					name = "?"
				}
			}
			fmt.Fprintf(stdout, "audit log BROKEN in workspace %s (id %s)\n", name, b.WorkspaceID)
			fmt.Fprintf(stdout, "  record: seq %d, id %s\n", b.Seq, b.ID)
			fmt.Fprintf(stdout, "  kind:   %s\n", b.Kind)
			fmt.Fprintf(stdout, "  detail: %s\n", b.Detail)
			return fmt.Errorf("audit log broken: workspace %s: record seq %d (id %s) %s: %s", name, b.Seq, b.ID, b.Kind, b.Detail)
		})
	}
}

// auditCheckKey is the key that checks the audit log's checkpoints, from
// the master key; nil when there is no master key here or the store has
// no checkpoint key yet (then a checkpoint, if any, is reported as not
// holding, the reason given).
func auditCheckKey(ctx context.Context, cfg Config, st *sqlstore.Store) (ed25519.PublicKey, error) {
	masterKey, _, err := secrets.LoadOrCreateMasterKey(cfg.masterKeyFile(), false)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, nil // no master key here; Verify says so if a checkpoint needs one
	} else if err != nil {
		return nil, err
	}
	defer clear(masterKey)
	signer, err := auditSigner(ctx, masterKey, st, false)
	if errors.Is(err, errNoAuditKey) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w; is %s the master key the servers run on?", err, cfg.masterKeyFile())
	}
	return signer.PublicKey(), nil
}

// countingAudit counts the records and workspaces that ScanAudit hands on.
type countingAudit struct {
	core.AuditStore
	records     int
	checkpoints int
	workspaces  map[string]bool
}

func (c *countingAudit) ScanAudit(ctx context.Context, workspaceID string, fn func(*core.AuditRecord) error) error {
	return c.AuditStore.ScanAudit(ctx, workspaceID, func(r *core.AuditRecord) error {
		c.records++
		if r.Action == audit.CheckpointAction {
			c.checkpoints++
		}
		c.workspaces[r.WorkspaceID] = true
		return fn(r)
	})
}

// plural is "1 record", "2 records".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
