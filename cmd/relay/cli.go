package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
	"github.com/relayhq/relay/core/goplugin"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/wasmrt"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/sdk/egress"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	// A tool that failed (go test) gives its own code.
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return ee.ExitCode()
	}
	return 1
}

// env returns the RELAY_* variable for a flag, or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv("RELAY_" + name); ok {
		return v
	}
	return def
}

// retentionFlag is a serve flag of a retention: a whole number from min
// to max, its default from RELAY_<NAME> when set, else def.
type retentionFlag struct {
	v             *int
	name          string
	def, min, max int
	usage         string
}

// register adds the flag to fs; an error when the variable is out of
// bounds.
func (f retentionFlag) register(fs *flag.FlagSet) error {
	envName := strings.ToUpper(strings.ReplaceAll(f.name, "-", "_"))
	def := f.def
	if v := env(envName, ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < f.min || n > f.max {
			return usageError{fmt.Sprintf("RELAY_%s=%q: want %d to %d", envName, v, f.min, f.max)}
		}
		def = n
	}
	fs.IntVar(f.v, f.name, def, f.usage+" (RELAY_"+envName+")")
	return nil
}

// storeFlags registers the flags every command that opens the store takes.
func storeFlags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.DataDir, "data-dir", env("DATA_DIR", "./relay-data"), "folder for the SQLite database and the master key (RELAY_DATA_DIR)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", env("DATABASE_URL", ""), "postgres://… to use PostgreSQL; default SQLite in --data-dir (RELAY_DATABASE_URL)")
	fs.StringVar(&cfg.MasterKeyFile, "master-key-file", env("MASTER_KEY_FILE", ""), "file holding the 32-byte master key as hex; default master.key in --data-dir, made on first start (RELAY_MASTER_KEY_FILE)")
}

// connectorFlags registers the flags of commands that run connectors. It
// fails when RELAY_EGRESS_ALLOW does not parse.
func connectorFlags(fs *flag.FlagSet, cfg *Config) error {
	fs.StringVar(&cfg.ConnectorsDir, "connectors-dir", env("CONNECTORS_DIR", ""), "folder of connectors, <name>/<version>/…; default: connectors beside the relay binary (RELAY_CONNECTORS_DIR)")
	fs.StringVar(&cfg.PackagesDir, "packages-dir", env("PACKAGES_DIR", ""), "folder of the first-party packages, relay-<name>-<version>.relaypkg; default: packages beside the relay binary (RELAY_PACKAGES_DIR)")
	prefixes, err := egress.ParseAllow(env("EGRESS_ALLOW", ""))
	if err != nil {
		return usageError{"RELAY_EGRESS_ALLOW: " + err.Error()}
	}
	cfg.EgressAllow = prefixes
	for _, f := range []struct {
		v         *int
		name, env string
		def       int
		usage     string
	}{
		{&cfg.WASMPoolSize, "wasm-pool-size", "WASM_POOL_SIZE", wasmrt.DefaultPoolSize, "instances of one WASM connector version, so the calls it serves at once"},
		{&cfg.WASMMemoryLimitMiB, "wasm-memory-limit", "WASM_MEMORY_LIMIT", 128, "memory ceiling of a WASM connector instance, MiB; a module that needs more is refused"},
	} {
		def := f.def
		if v := env(f.env, ""); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return usageError{fmt.Sprintf("RELAY_%s=%q: want a positive whole number", f.env, v)}
			}
			def = n
		}
		fs.IntVar(f.v, f.name, def, f.usage+" (RELAY_"+f.env+")")
	}
	sandbox, err := goplugin.ParseSandboxMode(env("NATIVE_SANDBOX", ""))
	if err != nil {
		return usageError{"RELAY_NATIVE_SANDBOX: " + err.Error()}
	}
	cfg.NativeSandbox = sandbox
	fs.Func("native-sandbox", "auto (default: sandbox native connectors as far as the kernel allows), required (refuse to start one that cannot be), or off (trust their code) (RELAY_NATIVE_SANDBOX)", func(s string) error {
		m, err := goplugin.ParseSandboxMode(s)
		if err != nil {
			return errors.New("want auto, required or off")
		}
		cfg.NativeSandbox = m
		return nil
	})
	fs.StringVar(&cfg.WASMCacheDir, "wasm-cache-dir", env("WASM_CACHE_DIR", ""), "folder for compiled WASM connectors, made with mode 0700; default wasm-cache in --data-dir (RELAY_WASM_CACHE_DIR)")
	fromFlags := false // the flags replace the variable's list, as every flag does
	fs.Func("egress-allow", "a CIDR connectors may reach although it is private, loopback or link-local; repeatable (RELAY_EGRESS_ALLOW, comma-separated)", func(s string) error {
		prefixes, err := egress.ParseAllow(s)
		if err != nil {
			return err
		}
		if !fromFlags {
			cfg.EgressAllow, fromFlags = nil, true
		}
		cfg.EgressAllow = append(cfg.EgressAllow, prefixes...)
		return nil
	})
	return nil
}

func newLogger(level string, out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "relay",
		Level:      hclog.LevelFromString(level),
		Output:     out,
		JSONFormat: !isTerminal(out),
		TimeFormat: time.RFC3339Nano,
	})
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func cmdServe(fs *flag.FlagSet) runFunc {
	var cfg Config
	storeFlags(fs, &cfg)
	fs.StringVar(&cfg.Addr, "addr", env("ADDR", "127.0.0.1:8080"), "address to listen on (RELAY_ADDR)")
	fs.StringVar(&cfg.RedisURL, "redis-url", env("REDIS_URL", ""), "redis://… to share rate limits between replicas (RELAY_REDIS_URL)")
	fs.StringVar(&cfg.LogLevel, "log-level", env("LOG_LEVEL", "info"), "trace, debug, info, warn or error (RELAY_LOG_LEVEL)")
	if err := durationFlag(fs, &cfg.RunStaleAfter, "run-stale-after", "30s",
		"how long a server may miss heartbeats before the others take over its unfinished runs"); err != nil {
		return fail(err)
	}
	queueLimit := actions.DefaultQueueLimit
	if v := env("QUEUE_LIMIT", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fail(usageError{fmt.Sprintf("RELAY_QUEUE_LIMIT=%q: want a positive whole number", v)})
		}
		queueLimit = n
	}
	fs.IntVar(&cfg.QueueLimit, "queue-limit", queueLimit, "most async runs of one connector version waiting on this server; past it async executes answer 503 with Retry-After (RELAY_QUEUE_LIMIT)")
	fs.StringVar(&cfg.RegistryURL, "registry-url", env("REGISTRY_URL", ""), "another Relay's registry to install connectors and templates from instead of this server's own; needs --registry-key (RELAY_REGISTRY_URL)")
	fs.StringVar(&cfg.RegistryKey, "registry-key", env("REGISTRY_KEY", ""), "the public key of --registry-url's registry, which signs its index: its base64 line, as that server logs at start, or a file holding it (RELAY_REGISTRY_KEY)")
	feePercent := feeFlag(fs)
	fs.StringVar(&cfg.StripeKey, "stripe-key", env("STRIPE_KEY", ""), "a Stripe secret key (sk_…): send closed invoices to Stripe and pay publishers with Connect transfers; empty: no payment provider (RELAY_STRIPE_KEY)")
	fs.StringVar(&cfg.StripeWebhookSecret, "stripe-webhook-secret", env("STRIPE_WEBHOOK_SECRET", ""), "the signing secret (whsec_…) of the Stripe webhook endpoint at /v1/billing/stripe/webhook; empty: the endpoint is off (RELAY_STRIPE_WEBHOOK_SECRET)")
	fs.StringVar(&cfg.StripeAPIURL, "stripe-api-url", env("STRIPE_API_URL", ""), "Stripe's API address, for stripe-mock in tests; empty: Stripe's own (RELAY_STRIPE_API_URL)")
	if err := durationFlag(fs, &cfg.PaymentGrace, "payment-grace", "168h",
		"how long a workspace may be past due (a failed Stripe payment) before its runs of priced listings answer 402 payment_required"); err != nil {
		return fail(err)
	}
	if err := auditVerifyFlag(fs, &cfg.AuditVerifyInterval); err != nil {
		return fail(err)
	}
	retention := []retentionFlag{
		{&cfg.RunRetentionDays, "run-retention-days", 90, 0, core.MaxRunRetentionDays,
			"days a workspace without a retention of its own keeps its ended runs; 0 keeps them forever"},
		{&cfg.AuditRetentionDays, "audit-retention-days", 365, 0, core.MaxAuditRetentionDays,
			"days a workspace without a retention of its own keeps its audit records, older ones giving way to a signed checkpoint; 0 keeps them forever"},
		{&cfg.IdempotencyRetentionHours, "idempotency-retention-hours", 24, 1, core.MaxIdempotencyRetentionHours,
			"hours a workspace without a retention of its own remembers an Idempotency-Key"},
	}
	for _, f := range retention {
		if err := f.register(fs); err != nil {
			return fail(err)
		}
	}
	if err := durationFlag(fs, &cfg.PurgeEvery, "purge-every", "1h",
		"how often to purge the runs and audit records past their workspace's retention (the first purge is a minute after start)"); err != nil {
		return fail(err)
	}
	if err := connectorFlags(fs, &cfg); err != nil {
		return fail(err)
	}
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 {
			return usageError{"serve takes no arguments"}
		}
		if err := checkAuditVerifyInterval(cfg.AuditVerifyInterval); err != nil {
			return err
		}
		for _, f := range retention {
			if *f.v < f.min || *f.v > f.max {
				return usageError{fmt.Sprintf("--%s %d: want %d to %d", f.name, *f.v, f.min, f.max)}
			}
		}
		if cfg.PurgeEvery < time.Minute {
			return usageError{fmt.Sprintf("--purge-every %s: want a minute or more", cfg.PurgeEvery)}
		}
		var err error
		if cfg.FeeBasisPoints, err = billing.ParseFeePercent(*feePercent); err != nil {
			return usageError{"--platform-fee-percent: " + err.Error()}
		}
		if cfg.PaymentGrace <= 0 {
			return usageError{fmt.Sprintf("--payment-grace %s: want a positive duration", cfg.PaymentGrace)}
		}
		if cfg.StripeKey == "" && cfg.StripeWebhookSecret != "" {
			return usageError{"--stripe-webhook-secret needs --stripe-key"}
		}
		if cfg.RegistryURL != "" && cfg.RegistryKey == "" {
			return usageError{"--registry-url needs --registry-key: the registry's public key, which it logs at start (\"registry key\"); a server trusts no registry it has not pinned"}
		}
		if cfg.RegistryURL == "" && cfg.RegistryKey != "" {
			return usageError{"--registry-key pins the registry of --registry-url, which is not set"}
		}
		if hclog.LevelFromString(cfg.LogLevel) == hclog.NoLevel {
			return usageError{fmt.Sprintf("--log-level %q: want trace, debug, info, warn or error", cfg.LogLevel)}
		}
		if cfg.RunStaleAfter <= 0 {
			return usageError{fmt.Sprintf("--run-stale-after %s: want a positive duration", cfg.RunStaleAfter)}
		}
		if cfg.QueueLimit < 1 {
			return usageError{fmt.Sprintf("--queue-limit %d: want a positive whole number", cfg.QueueLimit)}
		}
		m := &Main{Config: cfg, Stdout: stdout, Log: newLogger(cfg.LogLevel, stdout)}
		if err := m.Open(ctx); err != nil {
			return err
		}
		err = m.Wait(ctx)
		m.Log.Info("shutting down: finishing the requests in flight")
		return errors.Join(err, m.Close())
	}
}

// durationFlag registers a duration flag --name, whose default is its
// RELAY_ variable's (NAME, dashes as underscores) or def; a variable that
// is not a positive duration is a usage error.
func durationFlag(fs *flag.FlagSet, p *time.Duration, name, def, usage string) error {
	variable := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	d, err := time.ParseDuration(env(variable, def))
	if err != nil || d <= 0 {
		return usageError{fmt.Sprintf("RELAY_%s: want a positive duration such as %s", variable, def)}
	}
	fs.DurationVar(p, name, d, usage+" (RELAY_"+variable+")")
	return nil
}

// feeFlag registers --platform-fee-percent: the platform's share of what
// publishers earn, which closing a billing month applies.
func feeFlag(fs *flag.FlagSet) *string {
	return fs.String("platform-fee-percent", env("PLATFORM_FEE_PERCENT", "20"),
		"the platform's share of publishers' gross when a billing month is closed, a percentage with at most two decimals (RELAY_PLATFORM_FEE_PERCENT)")
}

// apiKeyHasher returns the hasher of API keys, under the pepper stored in
// st (stored first, from the master key, on a store that has none yet).
// keyFile names the master key's file in the error of a key that does not
// unwrap the stored pepper.
func apiKeyHasher(ctx context.Context, masterKey []byte, st core.ServerKeyStore, keyFile string) (*core.KeyHasher, error) {
	pepper, err := secrets.APIKeyPepper(ctx, masterKey, st)
	if errors.Is(err, secrets.ErrUnwrap) {
		return nil, fmt.Errorf("%w; is %s the master key the servers run on?", err, keyFile)
	} else if err != nil {
		return nil, err
	}
	defer clear(pepper)
	return core.NewKeyHasherFromPepper(pepper)
}

// withStore runs f against the store named by the flags, migrated to the
// current schema. The server may be running on the same store meanwhile.
func withStore(ctx context.Context, cfg Config, stderr io.Writer, f func(*sqlstore.Store) error) error {
	st, err := openStore(ctx, cfg, newLogger("warn", stderr))
	if err != nil {
		return err
	}
	defer st.Close()
	return f(st)
}

func cmdMigrate(fs *flag.FlagSet) runFunc {
	var cfg Config
	storeFlags(fs, &cfg)
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		if cfg.DatabaseURL == "" {
			if err := makePrivateDir(cfg.DataDir); err != nil {
				return err
			}
		}
		st, err := openDatabase(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		applied, err := st.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "the database schema is up to date")
			return nil
		}
		for _, v := range applied {
			fmt.Fprintf(stdout, "applied migration %d\n", v)
		}
		return nil
	}
}

func cmdWorkspacesCreate(fs *flag.FlagSet) runFunc {
	var cfg Config
	storeFlags(fs, &cfg)
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 {
			return usageError{"usage: relay workspaces create NAME"}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			ws, err := st.CreateWorkspace(ctx, pos[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created workspace %s (%s)\n", ws.Name, ws.ID)
			return nil
		})
	}
}

func cmdWorkspacesList(fs *flag.FlagSet) runFunc {
	var cfg Config
	storeFlags(fs, &cfg)
	output := outputFlag(fs)
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if err := checkOutput(*output); err != nil {
			return err
		} else if len(pos) > 0 {
			return usageError{"workspaces list takes no arguments"}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			list, err := st.ListWorkspaces(ctx)
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(stdout, list)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tRATE LIMIT\tCREATED")
			for _, ws := range list {
				limit := "default"
				if ws.RateLimit != nil {
					limit = fmt.Sprintf("%d/s burst %d", ws.RateLimit.Rate, ws.RateLimit.Burst)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ws.Name, ws.ID, limit, ws.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		})
	}
}

func cmdWorkspacesSetLimit(fs *flag.FlagSet) runFunc {
	var cfg Config
	var rate, burst int
	var useDefault bool
	storeFlags(fs, &cfg)
	fs.IntVar(&rate, "rate", 0, "requests per second")
	fs.IntVar(&burst, "burst", 0, "requests allowed at once")
	fs.BoolVar(&useDefault, "default", false, "go back to the server's default quota")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 || useDefault == (rate != 0 || burst != 0) {
			return usageError{"usage: relay workspaces set-limit NAME --rate N --burst N | --default"}
		}
		var limit *core.RateLimit
		if !useDefault {
			limit = &core.RateLimit{Rate: rate, Burst: burst}
			if err := limit.Validate(); err != nil {
				return err
			}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			ws, err := st.WorkspaceByName(ctx, pos[0])
			if err != nil {
				return err
			}
			if err := st.SetWorkspaceRateLimit(ctx, ws.ID, limit); err != nil {
				return err
			}
			if limit == nil {
				fmt.Fprintf(stdout, "workspace %s now has the default rate limit\n", ws.Name)
			} else {
				fmt.Fprintf(stdout, "workspace %s: %d requests/s, burst %d\n", ws.Name, limit.Rate, limit.Burst)
			}
			return nil
		})
	}
}

func cmdKeysCreate(fs *flag.FlagSet) runFunc {
	var cfg Config
	var workspace, role, name string
	storeFlags(fs, &cfg)
	fs.StringVar(&workspace, "workspace", "", "workspace name (required)")
	fs.StringVar(&role, "role", "", "admin, developer or viewer (required)")
	fs.StringVar(&name, "name", "", "a label for the key")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 || workspace == "" || role == "" {
			return usageError{"usage: relay keys create --workspace NAME --role admin|developer|viewer [--name N]"}
		}
		r, err := core.ParseRole(role)
		if err != nil {
			return err
		}
		// Only serve makes the master key: a key hashed under a master key
		// the server does not have would never verify.
		masterKey, _, err := secrets.LoadOrCreateMasterKey(cfg.masterKeyFile(), false)
		if errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("no master key at %s: start relay serve once with this data dir, or pass --master-key-file", cfg.masterKeyFile())
		} else if err != nil {
			return err
		}
		defer clear(masterKey)
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			ws, err := st.WorkspaceByName(ctx, workspace)
			if err != nil {
				return err
			}
			hasher, err := apiKeyHasher(ctx, masterKey, st, cfg.masterKeyFile())
			if err != nil {
				return err
			}
			k, token, err := core.NewAPIKey(hasher, ws.ID, name, r, "")
			if err != nil {
				return err
			}
			details, _ := json.Marshal(map[string]string{"role": string(k.Role), "name": k.Name, "via": "cli"})
			if err := st.CreateKey(ctx, k, cliAudit(ws.ID, "key.create", "key:"+k.ID, details)); err != nil {
				return err
			}
			fmt.Fprintln(stdout, token)
			return nil
		})
	}
}

func cmdKeysList(fs *flag.FlagSet) runFunc {
	var cfg Config
	var workspace string
	storeFlags(fs, &cfg)
	fs.StringVar(&workspace, "workspace", "", "workspace name (required)")
	output := outputFlag(fs)
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if err := checkOutput(*output); err != nil {
			return err
		} else if workspace == "" || len(pos) > 0 {
			return usageError{"usage: relay keys list --workspace NAME"}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			ws, err := st.WorkspaceByName(ctx, workspace)
			if err != nil {
				return err
			}
			all := []*core.APIKey{}
			page := core.Page{Limit: core.MaxPageLimit}
			for {
				keys, next, err := st.ListKeys(ctx, ws.ID, page)
				if err != nil {
					return err
				}
				all = append(all, keys...)
				if next == "" {
					break
				}
				page.Cursor = next
			}
			if *output == "json" {
				return writeJSON(stdout, all)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tNAME\tCREATED")
			for _, k := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Role, k.Name, k.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		})
	}
}

func cmdKeysRevoke(fs *flag.FlagSet) runFunc {
	var cfg Config
	var workspace string
	storeFlags(fs, &cfg)
	fs.StringVar(&workspace, "workspace", "", "workspace name (required)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if workspace == "" || len(pos) != 1 {
			return usageError{"usage: relay keys revoke --workspace NAME ID"}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			ws, err := st.WorkspaceByName(ctx, workspace)
			if err != nil {
				return err
			}
			if err := st.RevokeKey(ctx, ws.ID, pos[0], time.Now().UTC(), cliAudit(ws.ID, "key.revoke", "key:"+pos[0], []byte(`{"via":"cli"}`))); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "revoked key %s\n", pos[0])
			return nil
		})
	}
}

// cliAudit is the audit record of a change made with the CLI: no key, no
// address, the role "operator" (whoever can run relay on the server).
func cliAudit(workspaceID, action, target string, details []byte) *core.AuditRecord {
	return &core.AuditRecord{WorkspaceID: workspaceID, Role: "operator", Action: action, Target: target,
		Outcome: "success", Details: details}
}
