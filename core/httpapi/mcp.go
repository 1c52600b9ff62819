package httpapi

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
)

// MCP (POST /mcp): the workspace's actions as the tools of a Model
// Context Protocol server over Streamable HTTP, for AI agents, with the
// caller's API key. The server is stateless (every request stands alone,
// as with the rest of the API, so any replica answers) and answers JSON.
//
// Each action is a tool with its input schema; its annotations come from
// its side-effect class. A tool for an action that requires confirmation
// answers a call without a confirm token with the preview and the token
// (confirmToken); a call with the token executes it. A call runs under an
// idempotency key made from the key, the JSON-RPC request's id, the tool
// and the arguments, so an agent's retry of a call answers the first run
// instead of running again. Roles apply as over HTTP: a viewer is shown
// the read-only tools only, and may not run them.

// confirmArg is the argument that carries a preview's confirm token;
// connectionArg the one that names the connection, for an action that
// several of the workspace's connections offer.
const (
	confirmArg    = "relay_confirm_token"
	connectionArg = "relay_connection"
)

func (s *Server) mcp(c *fiber.Ctx, p *principal) error {
	caller := p.caller(c)
	// The JSON-RPC request's id, for the idempotency keys of its calls
	// (the Streamable HTTP transport sends one message per POST).
	var msg struct {
		ID json.RawMessage `json:"id"`
	}
	json.Unmarshal(c.Body(), &msg)
	ctx := c.UserContext()
	list, err := s.cfg.Actions.ListActions(ctx, caller.WorkspaceID)
	if err != nil {
		return err
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "relay", Title: "Relay", Version: cmp.Or(s.cfg.Version, "dev")}, nil)
	for _, a := range list {
		tool, ok := mcpTool(a)
		if !ok || (caller.Role == core.RoleViewer && !tool.Annotations.ReadOnlyHint) {
			continue
		}
		server.AddTool(tool, s.mcpCall(caller, a, msg.ID))
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return adaptor.HTTPHandler(h)(c)
}

// mcpTool is the tool of an action: false for one whose input is not a
// JSON object.
func mcpTool(a actions.ActionInfo) (*mcp.Tool, bool) {
	var schema map[string]any
	if json.Unmarshal(a.InputSchema, &schema) != nil || schema["type"] != "object" {
		return nil, false
	}
	desc := a.Title
	if a.Description != "" {
		desc += ". " + a.Description
	}
	desc += fmt.Sprintf(" (side effect: %s)", a.SideEffect)
	props, _ := schema["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
	}
	if len(a.Connections) > 1 {
		props[connectionArg] = map[string]any{"type": "string", "enum": a.Connections,
			"description": "which of the workspace's connections runs it"}
		desc += ". Several connections offer it: name one in " + connectionArg + "."
	}
	if a.RequiresConfirmation {
		props[confirmArg] = map[string]any{"type": "string",
			"description": "the confirm token of a call without it, which answers what the call would do; leave it out to see that first"}
		desc += ". It needs confirmation: call it without " + confirmArg + " to get what it would do and a token, then call it again with the same arguments and " + confirmArg + " to run it."
	}
	schema["properties"] = props
	readOnly := a.SideEffect == "none" || a.SideEffect == "read"
	destructive := a.SideEffect == "destructive"
	openWorld := true
	return &mcp.Tool{Name: a.ID, Title: a.Title, Description: desc, InputSchema: schema,
		Annotations: &mcp.ToolAnnotations{Title: a.Title, ReadOnlyHint: readOnly, DestructiveHint: &destructive,
			IdempotentHint: a.Idempotent, OpenWorldHint: &openWorld}}, true
}

// mcpCall runs a tool call: a preview and its token for an action that
// requires confirmation and was called without one, else an execution.
func (s *Server) mcpCall(caller actions.Caller, a actions.ActionInfo, rpcID json.RawMessage) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if caller.Role == core.RoleViewer {
			return s.toolError(core.Errorf(core.EForbidden, "a viewer's key may not run actions: it needs the developer role")), nil
		}
		args := map[string]json.RawMessage{}
		if len(req.Params.Arguments) > 0 && json.Unmarshal(req.Params.Arguments, &args) != nil {
			return s.toolError(core.Errorf(core.EInvalid, "the arguments are not a JSON object")), nil
		}
		var token, conn string
		for name, v := range map[string]*string{confirmArg: &token, connectionArg: &conn} {
			if raw, ok := args[name]; ok {
				if json.Unmarshal(raw, v) != nil {
					return s.toolError(core.Errorf(core.EInvalid, "%s is not a string", name)), nil
				}
				delete(args, name)
			}
		}
		params, _ := json.Marshal(args)
		key := mcpIdempotencyKey(caller.KeyID, rpcID, a.ID, conn+"\x00"+string(params))
		if a.RequiresConfirmation && token == "" {
			res, err := s.cfg.Actions.Preview(ctx, caller, a.ID, actions.Request{Params: params, Connection: conn}, "")
			if err != nil {
				return s.toolError(err), nil
			}
			out := map[string]any{"status": "confirmation_required", "action": res.Action, "connection": res.Connection,
				"preview": res.Preview, "confirm_token": res.ConfirmToken, "expires_at": res.ExpiresAt,
				"next": "call " + a.ID + " again with the same arguments and " + confirmArg + " to run it"}
			return toolResult(out, false), nil
		}
		res, err := s.cfg.Actions.Execute(ctx, caller, a.ID, actions.Request{Params: params, Connection: conn, ConfirmToken: token}, key)
		if err != nil {
			return s.toolError(err), nil
		}
		var body any
		json.Unmarshal(res.Body, &body)
		return toolResult(body, res.Status >= 400), nil
	}
}

// mcpIdempotencyKey is a tool call's idempotency key: the same request
// (key, JSON-RPC id, tool and arguments: params, with the connection),
// sent again, gets the same key.
func mcpIdempotencyKey(keyID string, rpcID json.RawMessage, tool, params string) string {
	var id bytes.Buffer
	if json.Compact(&id, rpcID) != nil {
		id.Reset()
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{keyID, id.String(), tool, params}, "\x00")))
	return "mcp-" + hex.EncodeToString(sum[:16])
}

// toolResult answers v as the call's structured content and its text.
func toolResult(v any, isError bool) *mcp.CallToolResult {
	text, _ := json.Marshal(v)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(text)}}, StructuredContent: v, IsError: isError}
}

// toolError answers err as the problem document the HTTP API would: an
// internal error's text is logged, not answered.
func (s *Server) toolError(err error) *mcp.CallToolResult {
	code, detail := core.ErrorCode(err), err.Error()
	var e *core.Error
	if errors.As(err, &e) {
		detail = e.Message
	}
	if code == core.EInternal {
		s.cfg.Logger.Error("an MCP tool call failed", "error", err)
		detail = "the server failed; it is logged"
	}
	return toolResult(map[string]any{"code": code, "detail": detail}, true)
}
