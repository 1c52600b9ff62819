package wasmhost

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/sdk/internal/outbound"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// doHTTP makes the request encoded in raw within ctx (the call's) and
// returns the answer the guest gets: the response, or an error. Messages
// name the host, never the whole URL, which may carry a token.
func (m *Module) doHTTP(ctx context.Context, raw []byte, maxMessage int) *connectorv1.HttpResponse {
	if len(raw) > maxMessage {
		return outbound.ErrorResponse(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT,
			"the request is %d bytes, over the %s message limit", len(raw), formatSize(maxMessage))
	}
	var hr connectorv1.HttpRequest
	if err := proto.Unmarshal(raw, &hr); err != nil {
		return outbound.ErrorResponse(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "the request does not decode as relay.connector.v1.HttpRequest: %v", err)
	}
	return outbound.Serve(ctx, m.http, m.guard, &hr, m.e.o.HTTPTimeout, m.e.o.MaxHTTPResponse)
}
