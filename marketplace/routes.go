package marketplace

import (
	"github.com/relayhq/relay/core"
)

// Routes are the marketplace's endpoints, which the core's HTTP server
// mounts with its own authentication, roles and error handling.
func (s *Service) Routes() []core.Route {
	return s.installationRoutes()
}
