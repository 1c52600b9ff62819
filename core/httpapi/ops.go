package httpapi

import (
	"context"
	"sync"

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
func (s *Server) readyz(c *fiber.Ctx, _ *principal) error {
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
			if err := check(c.UserContext()); err != nil {
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
			c.Status(fiber.StatusServiceUnavailable)
		}
	}
	return c.JSON(fiber.Map{"status": status, "checks": results})
}

func (s *Server) metricsHandler() func(*fiber.Ctx, *principal) error {
	h := adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	return func(c *fiber.Ctx, _ *principal) error { return h(c) }
}

func (s *Server) openAPI(c *fiber.Ctx, _ *principal) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(schemas.OpenAPI())
}
