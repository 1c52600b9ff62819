package connector

import (
	"context"

	"github.com/hashicorp/go-hclog"
)

type loggerKey struct{}

// LoggerFromContext returns the connector's logger, for a handler or
// CheckConfig. Natively it writes hclog JSON lines to stderr, which the host
// logs under the connector's name with their level and fields; built for
// wasip1 it writes each entry to the host's log, at its level, through the
// relay.log host function. Outside a call it is a logger that drops
// everything.
func LoggerFromContext(ctx context.Context) hclog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(hclog.Logger); ok {
		return l
	}
	return hclog.NewNullLogger()
}

// callContext is the context a handler runs in: the connector's egress
// policy and its logger.
func (s *Server) callContext(ctx context.Context) context.Context {
	return context.WithValue(withEgress(ctx, s.egress), loggerKey{}, s.logger)
}
