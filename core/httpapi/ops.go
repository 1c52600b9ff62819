package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/relayhq/relay/schemas"
)

// healthz says the process is up; it checks nothing else, so an orchestrator
// does not restart a server whose database is briefly away.
func (s *Server) healthz(c *fiber.Ctx, _ *principal) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz says whether the server can do its work: the database answers, and
// so does every other dependency it was configured with. It answers 503 with
// the failing checks named, and the errors themselves go to the log.
//
// It is public, so a burst of probes must not become a burst of database
// and Redis pings: a result is reused for ReadyCacheTTL.
func (s *Server) readyz(c *fiber.Ctx, _ *principal) error {
	s.ready.mu.Lock()
	defer s.ready.mu.Unlock()
	if time.Since(s.ready.at) >= s.cfg.ReadyCacheTTL {
		s.ready.status, s.ready.results = s.probe(c.UserContext())
		s.ready.at = time.Now()
	}
	if s.ready.status != "ok" {
		c.Status(fiber.StatusServiceUnavailable)
	}
	return c.JSON(fiber.Map{"status": s.ready.status, "checks": s.ready.results})
}

// readiness is the last /readyz result.
type readiness struct {
	mu      sync.Mutex
	at      time.Time
	status  string
	results map[string]string
}

func (s *Server) probe(ctx context.Context) (string, map[string]string) {
	checks := map[string]func(context.Context) error{"database": s.cfg.Store.Ping}
	for name, check := range s.cfg.ReadyChecks {
		checks[name] = check
	}
	results := make(map[string]string, len(checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range checks {
		wg.Go(func() {
			res := "ok"
			if err := check(ctx); err != nil {
				s.log.Warn("readiness check failed", "check", name, "error", err)
				res = "failing"
			}
			mu.Lock()
			results[name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	status := "ok"
	for _, res := range results {
		if res != "ok" {
			status = "unavailable"
		}
	}
	return status, results
}

func (s *Server) metricsHandler() func(*fiber.Ctx, *principal) error {
	h := adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx, _ *principal) error { return h(c) }
}

func (s *Server) openAPI(c *fiber.Ctx, _ *principal) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(schemas.OpenAPI())
}
