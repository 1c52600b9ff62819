// Package httpapi is Relay's HTTP API on Fiber: the /v1 routes, the one
// place where keys are checked, roles enforced and quotas charged, RFC 9457
// errors, and the operational endpoints (/healthz, /readyz, /metrics,
// /openapi.json).
package httpapi

import (
	"context"
	"encoding/json"
	"io/fs"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
)

// Config is what the server needs. Store, Hasher, Limiter and Logger are
// required; zero limits and timeouts take the defaults below.
type Config struct {
	Store   core.Store
	Hasher  *core.KeyHasher
	Limiter core.RateLimiter
	Logger  hclog.Logger
	// Actions is the engine behind connections, actions and runs.
	Actions *actions.Service
	// Version is the server's version, which the MCP endpoint names.
	Version string

	// DefaultRateLimit applies to workspaces without their own.
	DefaultRateLimit core.RateLimit
	// ReadyChecks are probed by /readyz besides the database, by name.
	ReadyChecks map[string]func(context.Context) error

	BodyLimit      int           // bytes; default 1 MiB
	ReadTimeout    time.Duration // default 10 s
	WriteTimeout   time.Duration // default 30 s
	IdleTimeout    time.Duration // default 60 s
	RequestTimeout time.Duration // deadline of a handler's context; default 25 s
	ReadyCacheTTL  time.Duration // how long a /readyz result is reused; default 1 s
	// MaxEventStreams caps the run event streams a workspace holds open
	// at once on this server; default 32.
	MaxEventStreams int
	// Routes are other packages' endpoints (the registry's), served with
	// the same checks as the server's own.
	Routes []core.Route
	// Studio is the built web console (index.html and assets/), served at
	// /studio; nil serves a page that says how to build it.
	Studio fs.FS
	// Load is what /metrics reads of the store, the connector runtimes
	// and the audit log's check at each scrape (load.go).
	Load Load
}

// Defaults for Config's zero values.
const (
	DefaultBodyLimit       = 1 << 20
	DefaultReadTimeout     = 10 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultRequestTimeout  = 25 * time.Second
	DefaultMaxEventStreams = 32
)

// Server is the HTTP API. Make it with New, run it with Serve, stop it with
// Shutdown.
type Server struct {
	cfg      Config
	app      *fiber.App
	log      hclog.Logger
	metrics  *metrics
	routes   []route
	studio   *studio
	guessers guessers
	ready    readiness

	mu       sync.Mutex
	listener net.Listener // what Serve serves on
	shutDown bool

	// streams ends every event stream when the server shuts down.
	streams     context.Context
	stopStreams context.CancelFunc
	openStreams streamCounts
}

// New builds the server and registers every route.
func New(cfg Config) *Server {
	if cfg.DefaultRateLimit == (core.RateLimit{}) {
		cfg.DefaultRateLimit = core.DefaultRateLimit
	}
	setDefault(&cfg.BodyLimit, DefaultBodyLimit)
	setDefault(&cfg.ReadTimeout, DefaultReadTimeout)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.ReadyCacheTTL, time.Second)
	setDefault(&cfg.MaxEventStreams, DefaultMaxEventStreams)

	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Load)}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.app = fiber.New(fiber.Config{
		AppName:               "relay",
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		ReadBufferSize:        16 << 10, // also the cap on request headers
		DisableStartupMessage: true,
		// Values from the request (method, params, headers, IP) outlive it in
		// metric labels, logs, audit records and async runs; fasthttp reuses
		// its buffers, so they must be copies.
		Immutable:    true,
		ErrorHandler: s.handleError,
		JSONEncoder:  json.Marshal,
		JSONDecoder:  json.Unmarshal,
	})
	// fasthttp's errors for a request it cannot parse quote the request's
	// bytes, keys and all; handleError never shows them, and with this
	// they do not even hold them.
	s.app.Server().SecureErrorLogMessage = true
	s.app.Use(s.observe)
	s.app.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: s.logPanic}))
	s.routes = append(s.routeTable(), s.groupRoutes()...)
	for _, r := range s.routes {
		s.app.Add(r.method, r.path, s.handle(r))
	}
	s.studio = newStudio(cfg.Studio, cfg.Logger)
	s.app.Get("/studio", s.studio.serve)
	s.app.Get("/studio/*", s.studio.serve)
	// After every route: a /v1 path that none matched.
	s.app.Use("/v1", s.noRoute)
	return s
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutDown {
		s.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	s.listener = ln
	s.mu.Unlock()
	return s.app.Listener(lingerListener{ln})
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in flight to finish.
//
// Event streams end first: they would otherwise hold their connections
// open, and the shutdown with them, for as long as their runs take.
//
// A Shutdown that comes before Serve has handed its listener to fasthttp
// (a server stopped as it starts) closes the listener itself: fasthttp
// closes only the listeners it has, and would serve on for ever.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopStreams()
	s.mu.Lock()
	s.shutDown = true
	ln := s.listener
	s.mu.Unlock()
	err := s.app.ShutdownWithContext(ctx)
	if ln != nil {
		ln.Close()
	}
	return err
}
