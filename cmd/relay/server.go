package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aead.dev/minisign"
	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/crypto/hkdf"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/goplugin"
	"github.com/relayhq/relay/core/httpapi"
	"github.com/relayhq/relay/core/ratelimit"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/studio"
	"github.com/relayhq/relay/core/tracing"
	"github.com/relayhq/relay/core/wasmrt"
	"github.com/relayhq/relay/marketplace"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/marketplace/billing/payments"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/client"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/protocol"
)

// Config is everything `relay serve` reads from flags and RELAY_* variables.
type Config struct {
	// Studio is the web console's files; nil serves the build embedded in
	// the binary (make build). Tests serve a build of their own.
	Studio        fs.FS
	Addr          string
	DataDir       string
	DatabaseURL   string // empty: SQLite in DataDir
	RedisURL      string
	MasterKeyFile string // empty: master.key in DataDir
	LogLevel      string
	ShutdownGrace time.Duration
	// RunStaleAfter is how long a server may go without a heartbeat
	// before the others (or its own next start) interrupt its unfinished
	// runs; zero: the engine's default, 30 s.
	RunStaleAfter time.Duration
	// QueueLimit is the most async runs of one connector version waiting
	// on this server; zero: the engine's default.
	QueueLimit int
	// ConnectorsDir holds connectors the server can run, laid out as
	// core/catalog reads them (an author's local builds); empty: the
	// connectors folder beside the relay binary.
	ConnectorsDir string
	// PackagesDir holds the first-party packages (relay-<name>-<version>
	// .relaypkg) that the server publishes into its registry at start;
	// empty: the packages folder beside the relay binary.
	PackagesDir string
	// EgressAllow are the operator's exceptions to the ranges connectors
	// may never reach (private, loopback, link-local, …).
	EgressAllow []netip.Prefix
	// NativeSandbox is --native-sandbox: how native connectors' processes
	// are kept from the host (goplugin.SandboxMode).
	NativeSandbox goplugin.SandboxMode
	// WASMPoolSize is the most instances (so concurrent calls) of one WASM
	// connector version; WASMMemoryLimitMiB the memory ceiling of each.
	WASMPoolSize       int
	WASMMemoryLimitMiB int
	// WASMCacheDir holds compiled WASM modules; empty: wasm-cache in
	// DataDir.
	WASMCacheDir string
	// RegistryURL is another Relay whose registry the server installs
	// connectors and templates from instead of its own; RegistryKey that registry's
	// public key (its base64 line, or a file holding it), pinned.
	RegistryURL string
	RegistryKey string
	// FeeBasisPoints is the platform's share of publishers' gross, in
	// basis points (--platform-fee-percent).
	FeeBasisPoints int
	// StripeKey turns on Stripe (marketplace/billing/payments): invoices
	// and payouts are sent there. StripeWebhookSecret verifies its events;
	// StripeAPIURL points at another Stripe API (stripe-mock).
	StripeKey           string
	StripeWebhookSecret string
	StripeAPIURL        string
	// PaymentGrace is how long a workspace may be past due before runs of
	// priced listings are refused; 0 is billing's default.
	PaymentGrace time.Duration
	// stripeSyncEvery is how often closed invoices and statements are
	// sent to Stripe; 0 is every 10 minutes (tests shorten it).
	stripeSyncEvery time.Duration
	// AuditVerifyInterval is how often the server verifies the audit
	// records appended since its last pass (audit.Checker); 0 turns the
	// check off (--audit-verify-interval's default is a minute).
	AuditVerifyInterval time.Duration
	// RunRetentionDays and AuditRetentionDays are how long a workspace
	// without its own retention keeps its ended runs and its audit
	// records (0: forever); PurgeEvery how often they are purged (0:
	// hourly). IdempotencyRetentionHours is how long it remembers an
	// Idempotency-Key (0: 24 hours).
	RunRetentionDays          int
	AuditRetentionDays        int
	IdempotencyRetentionHours int
	PurgeEvery                time.Duration
}

func (c Config) connectorsDir() string { return besideBinary(c.ConnectorsDir, "connectors") }

func (c Config) packagesDir() string { return besideBinary(c.PackagesDir, "packages") }

// besideBinary is dir, or when it is empty the folder name beside the
// relay binary, where make build puts it.
func besideBinary(dir, name string) string {
	if dir != "" {
		return dir
	}
	exe, err := os.Executable()
	if err != nil {
		return name
	}
	return filepath.Join(filepath.Dir(exe), name)
}

func (c Config) databaseURL() string {
	if c.DatabaseURL != "" {
		return c.DatabaseURL
	}
	return filepath.Join(c.DataDir, "relay.db")
}

func (c Config) masterKeyFile() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, "master.key")
}

// Main owns a running server: Open starts everything, Close stops it in the
// reverse order. An end-to-end test drives the same type as `relay serve`.
type Main struct {
	Config Config
	Stdout io.Writer // the start-up banner, with the first admin key
	Log    hclog.Logger

	store    *sqlstore.Store
	redis    *redis.Client
	catalog  *catalog.Catalog
	runtime  *runtimes
	claim    *dataDirClaim
	actions  *actions.Service
	registry *registry.Service
	market   *marketplace.Service
	billing  *billing.Service
	// stopBilling ends the loops that close ended billing months and
	// send them to Stripe; billingDone is closed when they have.
	stopBilling context.CancelFunc
	billingDone chan struct{}
	server      *httpapi.Server
	auditCheck  *auditCheck
	listener    net.Listener
	served      chan error
	// traces exports spans when OTEL_* variables turn tracing on.
	traces *sdktrace.TracerProvider
}

// Open prepares the store, makes the first workspace and key on an empty
// store, and starts answering on Config.Addr.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.closeDeps()
		}
	}()
	var prevInstance string
	if m.claim, prevInstance, err = claimDataDir(m.Config.DataDir); err != nil {
		return err
	}
	if m.traces, err = openTracing(ctx, m.Log); err != nil {
		return err
	}
	masterKey, created, err := secrets.LoadOrCreateMasterKey(m.Config.masterKeyFile(), m.Config.MasterKeyFile == "")
	if err != nil {
		return err
	}
	if created {
		m.Log.Info("created a new master key", "path", m.Config.masterKeyFile())
	}
	if m.store, err = openStore(ctx, m.Config, m.Log); err != nil {
		return err
	}
	hasher, err := apiKeyHasher(ctx, masterKey, m.store, m.Config.masterKeyFile())
	if err != nil {
		return err
	}
	auditKey, err := auditSigner(ctx, masterKey, m.store, true)
	if err != nil {
		return err
	}
	if m.catalog, m.runtime, err = openConnectors(ctx, m.Config, m.Log); err != nil {
		return err
	}
	if m.registry, err = openRegistry(ctx, m.Config, masterKey, m.store, hasher, m.catalog); err != nil {
		return err
	}
	m.Log.Info("registry key (pin it to install from this server's registry)",
		"key_id", relaypkg.KeyID(m.registry.PublicKey().ID()), "public_key", relaypkg.PublicKeyLine(m.registry.PublicKey()))
	if up := m.Config.RegistryURL; up != "" {
		m.Log.Info("installing connectors and templates from another registry", "url", up, "pinned_key_id", m.registry.UpstreamKeyID())
	}
	if err := loadBuiltins(ctx, m.Config, m.registry, m.catalog, m.Log); err != nil {
		return err
	}
	// Connectors installed from the registry, each workspace its own, are
	// the catalog's other source; the connectors dir's names are theirs.
	m.catalog.SetSource(m.registry)
	m.runtime.warm(m.catalog, m.Log)
	// The server is its own marketplace: templates are its registry's
	// packages of that kind, and their presets the actions' other source.
	m.billing = billing.New(billing.Config{DB: m.store, Registry: m.registry, EgressAllow: m.Config.EgressAllow,
		PaymentGrace: m.Config.PaymentGrace, Logf: m.Log.Named("billing").Warn})
	routes := slices.Concat(m.registry.Routes(), m.billing.Routes())
	var stripe *payments.Stripe
	if m.Config.StripeKey != "" {
		stripe = payments.New(payments.Config{DB: m.store, Billing: m.billing, Key: m.Config.StripeKey,
			WebhookSecret: m.Config.StripeWebhookSecret, APIURL: m.Config.StripeAPIURL, Logf: m.Log.Named("stripe").Info})
		routes = append(routes, stripe.Routes()...)
	}
	m.market = marketplace.New(marketplace.Config{DB: m.store, Registry: m.registry, Prices: m.billing,
		Reserved: func(name string) bool { return len(m.catalog.Versions(name)) > 0 }})
	if up, ok := m.registry.Upstream().(marketplace.Upstream); ok {
		// The pinned registry's server is the marketplace its templates
		// are found in.
		m.market.UseUpstream(up)
	}
	m.registry.SetTemplates(m.market)

	// Listen before making the first key: if the address is taken, the key
	// is not made only to be lost with a failed start.
	if m.listener, err = net.Listen("tcp", m.Config.Addr); err != nil {
		return err
	}
	key, token, err := core.NewAPIKey(hasher, "", "first admin key", core.RoleAdmin, "")
	if err != nil {
		return err
	}
	bootstrapped, err := m.store.Bootstrap(ctx, core.DefaultWorkspace, key)
	if err != nil {
		return fmt.Errorf("creating the first workspace: %w", err)
	}

	checks := map[string]func(context.Context) error{}
	var rdb *redis.Client
	if m.Config.RedisURL != "" {
		// The parser's errors quote the URL, password and all.
		opts, err := redis.ParseURL(m.Config.RedisURL)
		if err != nil {
			return fmt.Errorf("--redis-url is not a valid redis:// URL")
		}
		// Redis calls then honour the context deadline the limiter sets.
		opts.ContextTimeoutEnabled = true
		rdb = redis.NewClient(opts)
		m.redis = rdb
		checks["redis"] = func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
		if err := rdb.Ping(ctx).Err(); err != nil {
			// Not fatal: the limiter falls back to counting in-process.
			m.Log.Warn("redis does not answer; rate limits are counted in this process until it does", "error", err)
		}
	}
	limiter := ratelimit.New(rdb, "relay:ratelimit:", m.Log.Named("ratelimit"))

	keyring, err := secrets.NewKeyring(masterKey, m.store)
	if err != nil {
		return err
	}
	m.billing.UseSecrets(keyring)
	// Runs end from Recover on, before the server exists: they are
	// counted in its metrics from when it does.
	var observer atomic.Pointer[httpapi.Server]
	// The audit log's check, made before the engine, whose purge goes no
	// further than the check has verified; it starts with the server.
	m.auditCheck = newAuditCheck(m.store, m.Config.AuditVerifyInterval, auditKey.PublicKey(), m.Log.Named("audit"))
	m.actions = actions.New(actions.Config{
		Store: m.store, Catalog: m.catalog, Runtime: m.runtime, Secrets: keyring, Presets: m.market, Guard: m.billing,
		Logger:  m.Log.Named("actions"),
		Respond: httpapi.RunResponse,
		Observe: func(run *core.Run, took time.Duration) {
			if srv := observer.Load(); srv != nil {
				srv.ObserveRun(run, took)
			}
		},
		StaleAfter:                m.Config.RunStaleAfter,
		QueueLimit:                m.Config.QueueLimit,
		RunRetentionDays:          m.Config.RunRetentionDays,
		AuditRetentionDays:        m.Config.AuditRetentionDays,
		AuditSigner:               auditKey,
		AuditVerified:             m.auditCheck.verified(),
		IdempotencyRetentionHours: m.Config.IdempotencyRetentionHours,
		PurgeInterval:             m.Config.PurgeEvery,
	})
	m.market.UseConnections(m.actions)
	// Runs left unfinished by processes that are gone (no heartbeat for
	// RunStaleAfter, or stopped cleanly) are recovered before anything
	// can ask for them: the running ones interrupted (or queued again,
	// when they may run again), the queued ones taken over. The runs of
	// live replicas are left alone. The engine repeats this with each
	// heartbeat.
	if prevInstance != "" {
		// The server that held this data dir before is gone (its lock
		// was free): its unfinished runs are orphans now, not after
		// --run-stale-after.
		if err := m.store.DeleteInstance(ctx, prevInstance); err != nil {
			m.actions.Close(ctx)
			return fmt.Errorf("releasing the previous server's runs: %w", err)
		}
	}
	if _, err := m.actions.Recover(ctx); err != nil {
		m.actions.Close(ctx)
		return fmt.Errorf("recovering unfinished runs: %w", err)
	}
	if err := m.claim.recordInstance(m.actions.InstanceID()); err != nil {
		m.actions.Close(ctx)
		return fmt.Errorf("recording the engine's instance id: %w", err)
	}
	m.Log.Info("engine started", "instance", m.actions.InstanceID())
	studioFiles, ok := m.Config.Studio, m.Config.Studio != nil
	if !ok {
		studioFiles, ok = studio.Files()
	}
	if !ok {
		m.Log.Info("this binary was built without the Studio (make build builds it); /studio says so")
	}
	srv := httpapi.New(httpapi.Config{
		Studio:      studioFiles,
		Store:       m.store,
		Hasher:      hasher,
		Limiter:     limiter,
		Logger:      m.Log.Named("http"),
		ReadyChecks: checks,
		Actions:     m.actions,
		Version:     version,
		Routes:      slices.Concat(routes, m.market.Routes()),
		Load: httpapi.Load{
			GroupWriter: m.store.GroupStats,
			Connectors:  []func() core.PoolStats{m.runtime.native.PoolStats, m.runtime.wasm.PoolStats},
			AuditVerify: m.auditCheck.stats(),
		},
	})
	observer.Store(srv)
	m.server = srv
	m.served = make(chan error, 1)
	go func() {
		m.served <- m.server.Serve(m.listener)
		close(m.served) // Wait and Close may both read it
	}()
	// On the 1st, one of the servers closes the month that ended.
	billingCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	m.stopBilling, m.billingDone = stop, make(chan struct{})
	fee := m.Config.FeeBasisPoints
	var loops sync.WaitGroup
	loops.Go(func() { m.billing.CloseEndedMonths(billingCtx, fee, time.Hour, m.Log.Named("billing").Info) })
	if stripe != nil {
		// Closed invoices and statements go to Stripe within minutes.
		loops.Go(func() { stripe.Loop(billingCtx, cmp.Or(m.Config.stripeSyncEvery, 10*time.Minute)) })
	}
	go func() {
		loops.Wait()
		close(m.billingDone)
	}()
	m.auditCheck.start()

	addr := m.URL()
	m.Log.Info("relay is listening", "url", addr, "database", redactURL(m.Config.databaseURL()), "redis", m.Config.RedisURL != "")
	banner := fmt.Sprintf("Relay is listening on %s\n", addr)
	if bootstrapped {
		// The key goes to stdout once, never through the logger.
		banner += fmt.Sprintf("\nCreated the workspace %q and its first admin API key.\n"+
			"It is shown only this once, so keep it safe:\n\n    %s\n\n"+
			"Try it:\n    curl -H \"Authorization: Bearer %s\" %s/v1/keys\n\n",
			core.DefaultWorkspace, token, token, addr)
	}
	// One write, so that whoever watches for the URL sees the key with it.
	fmt.Fprint(m.Stdout, banner)
	return nil
}

// URL is where the server answers.
func (m *Main) URL() string { return "http://" + m.listener.Addr().String() }

// Wait blocks until the server stops on its own (an error) or ctx ends.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case err := <-m.served:
		return err
	case <-ctx.Done():
		return nil
	}
}

// Close stops accepting connections, lets the requests in flight finish
// (for up to ShutdownGrace), then closes Redis and the database.
func (m *Main) Close() error {
	var errs []error
	m.auditCheck.close()
	if m.stopBilling != nil {
		m.stopBilling()
		<-m.billingDone
		m.stopBilling = nil
		m.billing.Stop()
	}
	if m.server != nil {
		grace := m.Config.ShutdownGrace
		if grace <= 0 {
			grace = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		errs = append(errs, m.server.Shutdown(ctx))
		m.actions.Close(ctx) // async runs get what is left of the grace period
		cancel()
		if err := <-m.served; err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		m.server = nil
	}
	errs = append(errs, m.closeDeps())
	return errors.Join(errs...)
}

func (m *Main) closeDeps() error {
	var errs []error
	if m.server == nil && m.listener != nil { // a start that failed after listening
		m.listener.Close()
	}
	if m.runtime != nil {
		errs = append(errs, m.runtime.Close())
		m.runtime = nil
	}
	if m.redis != nil {
		errs = append(errs, m.redis.Close())
		m.redis = nil
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
		m.store = nil
	}
	if m.claim != nil {
		errs = append(errs, m.claim.release())
		m.claim = nil
	}
	if m.traces != nil {
		// The spans still batched are sent before the process ends.
		tracing.Install(nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, m.traces.Shutdown(ctx))
		cancel()
		m.traces = nil
	}
	return errors.Join(errs...)
}

// runtimes runs connectors in both forms: native plugins and WASM modules.
type runtimes struct {
	core.RuntimeMux
	native *goplugin.Runtime
	wasm   *wasmrt.Runtime

	stopWarm context.CancelFunc
	warming  sync.WaitGroup
}

// warm loads every WASM connector in the background, so that compiling
// a module (seconds for a large one, the first time; the compilation
// cache makes later starts fast) is not the wait of its first call;
// several load at once (wasmrt.LoadEntries). A version that fails to load
// is logged, and tried again at its first call.
func (r *runtimes) warm(cat *catalog.Catalog, log hclog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	r.stopWarm = cancel
	var entries []*catalog.Entry
	for _, e := range cat.List() {
		if e.WASM != nil {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		return
	}
	r.warming.Go(func() {
		start := time.Now()
		var loaded atomic.Int32
		r.wasm.LoadEntries(ctx, entries, func(e *catalog.Entry, took time.Duration, err error) {
			if err != nil {
				log.Warn("loading a WASM connector failed", "connector", e.Ref.String(), "error", err)
				return
			}
			loaded.Add(1)
			log.Info("WASM connector loaded", "connector", e.Ref.String(), "took", took.Round(time.Millisecond).String())
		})
		// The loads run side by side, so each one's own time overstates
		// what the start-up waited for: this is the whole of it.
		log.Info("WASM connectors loaded", "loaded", loaded.Load(), "of", len(entries), "took", time.Since(start).Round(time.Millisecond).String())
	})
}

func (r *runtimes) Close() error {
	if r.stopWarm != nil {
		r.stopWarm()
	}
	r.warming.Wait()
	return errors.Join(r.native.Close(), r.wasm.Close())
}

// openConnectors loads the catalog from the connectors dir and makes the
// runtimes that run them. A connector version that does not load is logged
// and skipped; it does not stop the server. WASM modules are compiled on
// first use, with the compilation cache in the data dir when there is one.
func openConnectors(ctx context.Context, cfg Config, log hclog.Logger) (*catalog.Catalog, *runtimes, error) {
	dir := cfg.connectorsDir()
	cat, problems := catalog.Load(dir)
	for _, p := range problems {
		log.Warn("skipping a connector", "dir", dir, "problem", p)
	}
	var refs []string
	for _, e := range cat.List() {
		refs = append(refs, e.Ref.String()+" ("+strings.Join(e.Runtimes(), ", ")+")")
	}
	log.Info("connectors loaded", "dir", dir, "connectors", refs)
	native := goplugin.New(goplugin.Config{
		Lookup:      cat.Get,
		Logger:      log.Named("connector"),
		EgressAllow: cfg.EgressAllow,
		Sandbox:     cfg.NativeSandbox,
	})
	wasm, err := wasmrt.New(ctx, wasmrt.Config{
		Lookup:              cat.Get,
		DataDir:             cfg.DataDir,
		CompilationCacheDir: cfg.WASMCacheDir,
		PoolSize:            cfg.WASMPoolSize,
		MemoryLimitPages:    uint32(cfg.WASMMemoryLimitMiB) * 16, // 64 KiB pages
		EgressAllow:         cfg.EgressAllow,
		Logger:              log.Named("connector"),
	})
	if err != nil {
		native.Close()
		return nil, nil, fmt.Errorf("starting the WASM runtime: %w", err)
	}
	return cat, &runtimes{
		RuntimeMux: core.RuntimeMux{core.RuntimeNative: native, core.RuntimeWASM: wasm},
		native:     native, wasm: wasm,
	}, nil
}

// loadBuiltins publishes the first-party packages of the packages dir
// into the registry (those published already, by an earlier start or
// another replica, are left as they are) and gives every workspace each
// version of them that the registry holds, unpacked, under its short
// name. A package that is refused, or a version that does not load, is
// logged and left out: the server starts without it.
func loadBuiltins(ctx context.Context, cfg Config, reg *registry.Service, cat *catalog.Catalog, log hclog.Logger) error {
	dir := cfg.packagesDir()
	rep, err := reg.ImportFirstParty(ctx, dir)
	if err != nil {
		log.Error("publishing the first-party packages failed; the built-in connectors are those published before", "dir", dir, "error", err)
		rep = &registry.ImportReport{}
	}
	for _, ref := range rep.Imported {
		log.Info("published a first-party package", "package", ref)
	}
	for _, r := range rep.Refused {
		log.Error("REFUSED a first-party package: it is not published, and does not run", "file", r.File, "error", r.Err)
	}
	files, problems, err := reg.FirstParty(ctx)
	if err != nil {
		return fmt.Errorf("reading the built-in connectors: %w", err)
	}
	problems = append(problems, cat.AddBuiltins(files)...)
	for _, p := range problems {
		log.Error("a built-in connector version does not load", "problem", p)
	}
	var refs []string
	for _, f := range files {
		refs = append(refs, f.Ref.String())
	}
	log.Info("built-in connectors", "packages_dir", dir, "unchanged", len(rep.Unchanged), "connectors", refs)
	return nil
}

// openStore opens the database and brings its schema up to date. SQLite's
// folder is made on first use.
func openStore(ctx context.Context, cfg Config, log hclog.Logger) (*sqlstore.Store, error) {
	if cfg.DatabaseURL == "" {
		if err := makePrivateDir(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	st, err := openDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	applied, err := st.Migrate(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("applied database migrations", "versions", applied)
	}
	return st, nil
}

// openDatabase opens the store, refusing a database URL that does not parse
// before a driver can quote it, password and all, in an error.
func openDatabase(ctx context.Context, cfg Config) (*sqlstore.Store, error) {
	if u := cfg.DatabaseURL; strings.Contains(u, "://") {
		if _, err := url.Parse(u); err != nil {
			return nil, fmt.Errorf("--database-url is not a valid URL")
		}
	}
	return sqlstore.Open(ctx, cfg.databaseURL())
}

// redactURL hides a database URL's password and query (where a password
// may also travel) before it is logged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return s
	}
	u.RawQuery = ""
	return u.Redacted()
}

// catalogNames is what the registry asks of the connectors dir: which
// names are taken.
type catalogNames interface {
	Versions(name string) []*catalog.Entry
}

// registrySigningKey is the server key (wrapped by the master key) that
// signs the registry's index.
const registrySigningKey = "registry-signing-key"

// openRegistry makes the server's registry: its index signed with a key
// kept wrapped in the store (made at the first start), its blobs under the
// data dir on SQLite and in the database on PostgreSQL, where every
// replica must have them.
func openRegistry(ctx context.Context, cfg Config, masterKey []byte, st *sqlstore.Store, hasher *core.KeyHasher, cat catalogNames) (*registry.Service, error) {
	// The stored secret is a 32-byte seed; the minisign key (its Ed25519
	// key and its id) is drawn from it, the same at every start.
	seed, err := secrets.ServerKey(ctx, masterKey, st, registrySigningKey, func() ([]byte, error) {
		seed := make([]byte, 32)
		_, err := rand.Read(seed)
		return seed, err
	})
	if err != nil {
		return nil, fmt.Errorf("the registry's signing key: %w", err)
	}
	_, key, err := minisign.GenerateKey(hkdf.New(sha256.New, seed, nil, []byte("relay registry signing key v1")))
	clear(seed)
	if err != nil {
		return nil, fmt.Errorf("the registry's signing key: %w", err)
	}
	var blobs registry.BlobStore = registry.DirBlobs{Dir: filepath.Join(cfg.DataDir, "registry")}
	if st.Dialect() == "postgres" {
		blobs = registry.SQLBlobs{DB: st.DB()}
	}
	upstream, err := cfg.upstream()
	if err != nil {
		return nil, err
	}
	reserved := func(name string) bool { return len(cat.Versions(name)) > 0 }
	return registry.New(registry.Config{DB: st, Blobs: blobs, Hasher: hasher, SigningKey: key,
		CacheDir: filepath.Join(cfg.DataDir, "packages"), Reserved: reserved,
		RelayVersion: version, Protocols: []int{protocol.Version}, Upstream: upstream}), nil
}

// upstream is the registry of --registry-url, pinned by --registry-key;
// nil without one.
func (c Config) upstream() (registry.Upstream, error) {
	if c.RegistryURL == "" {
		return nil, nil
	}
	text := c.RegistryKey
	if data, err := os.ReadFile(text); err == nil {
		text = string(data)
	}
	key, err := relaypkg.ParsePublicKey(text)
	if err != nil {
		return nil, fmt.Errorf("--registry-key: %w", err)
	}
	cl, err := client.New(client.Config{URL: c.RegistryURL})
	if err != nil {
		return nil, fmt.Errorf("--registry-url: %w", err)
	}
	return cl.Upstream(key), nil
}
