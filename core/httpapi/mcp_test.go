package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/relayhq/relay/core"
)

// keyTransport adds an API key to every request.
type keyTransport struct{ key string }

func (k keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return http.DefaultTransport.RoundTrip(r)
}

// mcpSession connects an MCP client (the official Go SDK's) to the server
// as key.
func mcpSession(t *testing.T, ts *testServer, key string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "relay-test", Version: "1"}, nil)
	s, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp",
		HTTPClient: &http.Client{Transport: keyTransport{key}}}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func structured(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	var out map[string]any
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	return out
}

// The workspace's actions are the MCP server's tools, with their schemas
// and annotations; a call runs the action; an action that requires
// confirmation answers its preview and a token, and runs when called
// again with it; a viewer sees only read-only tools and runs none; a
// request sent twice runs once.
func TestMCP(t *testing.T) {
	ctx := context.Background()
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	ts.createEcho(keys[core.RoleAdmin], "main")
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "vault", "name": "prod", "secrets": map[string]any{"token": vaultToken}})

	dev := mcpSession(t, ts, keys[core.RoleDeveloper])
	tools, err := dev.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*mcp.Tool{}
	for _, tool := range tools.Tools {
		byName[tool.Name] = tool
	}
	del, slow := byName["vault.delete_item"], byName["vault.slow"]
	if del == nil || slow == nil || byName["echo.echo"] == nil {
		t.Fatalf("tools: %v", tools.Tools)
	}
	if a := del.Annotations; a.ReadOnlyHint || a.DestructiveHint == nil || !*a.DestructiveHint {
		t.Errorf("vault.delete_item's annotations: %+v", a)
	}
	if a := slow.Annotations; !a.ReadOnlyHint || *a.DestructiveHint {
		t.Errorf("vault.slow's annotations: %+v", a)
	}
	if schema, _ := json.Marshal(del.InputSchema); !bytes.Contains(schema, []byte(confirmArg)) {
		t.Errorf("vault.delete_item's input schema has no %s: %s", confirmArg, schema)
	}

	res, err := dev.CallTool(ctx, &mcp.CallToolParams{Name: "echo.echo", Arguments: map[string]any{"hello": "agent"}})
	if err != nil || res.IsError {
		t.Fatalf("echo.echo: %+v, %v", res, err)
	}
	if run := structured(t, res); run["status"] != "succeeded" || run["action"] != "echo.echo" {
		t.Fatalf("echo.echo's run: %v", run)
	}

	args := map[string]any{"id": "item-7"}
	res, err = dev.CallTool(ctx, &mcp.CallToolParams{Name: "vault.delete_item", Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("vault.delete_item without a token: %+v, %v", res, err)
	}
	preview := structured(t, res)
	token, _ := preview["confirm_token"].(string)
	if preview["status"] != "confirmation_required" || token == "" {
		t.Fatalf("the preview: %v", preview)
	}
	if runs := ts.do("GET", "/v1/runs?action=vault.delete_item", keys[core.RoleAdmin], nil); bytes.Contains(runs.Body, []byte(`"id"`)) {
		t.Fatalf("a preview ran the action: %s", runs.Body)
	}
	args[confirmArg] = token
	res, err = dev.CallTool(ctx, &mcp.CallToolParams{Name: "vault.delete_item", Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("vault.delete_item with the token: %+v, %v", res, err)
	}
	if run := structured(t, res); run["status"] != "succeeded" {
		t.Fatalf("the confirmed run: %v", run)
	}
	res, err = dev.CallTool(ctx, &mcp.CallToolParams{Name: "vault.fail", Arguments: map[string]any{}})
	if err != nil || !res.IsError {
		t.Fatalf("vault.fail: %+v, %v", res, err)
	}

	// A viewer: read-only tools, and none run.
	viewer := mcpSession(t, ts, keys[core.RoleViewer])
	vtools, err := viewer.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range vtools.Tools {
		if !tool.Annotations.ReadOnlyHint {
			t.Errorf("a viewer is shown %s", tool.Name)
		}
	}
	res, err = viewer.CallTool(ctx, &mcp.CallToolParams{Name: "vault.slow", Arguments: map[string]any{"ms": 1}})
	if err != nil || !res.IsError || structured(t, res)["code"] != core.EForbidden {
		t.Fatalf("a viewer's call: %+v, %v", res, err)
	}

	// The same request twice (an agent's retry): one run.
	call := func(id string) map[string]any {
		body := `{"jsonrpc":"2.0","id":"` + id + `","method":"tools/call","params":{"name":"echo.echo","arguments":{"n":1}}}`
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/mcp", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+keys[core.RoleDeveloper])
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out struct {
			Result struct {
				StructuredContent map[string]any `json:"structuredContent"`
			} `json:"result"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(data, &out) != nil || out.Result.StructuredContent == nil {
			t.Fatalf("tools/call: %d %s", resp.StatusCode, data)
		}
		return out.Result.StructuredContent
	}
	first, again, other := call("retry-1"), call("retry-1"), call("retry-2")
	if first["id"] == nil || first["id"] != again["id"] {
		t.Fatalf("a request sent twice ran twice: %v, %v", first["id"], again["id"])
	}
	if other["id"] == first["id"] {
		t.Fatalf("another request with the same arguments did not run: %v", other["id"])
	}

	// With two echo connections, the tool names them and a call picks one.
	ts.createEcho(keys[core.RoleAdmin], "other")
	again2 := mcpSession(t, ts, keys[core.RoleDeveloper])
	if tools, err = again2.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, tool := range tools.Tools {
		if schema, _ := json.Marshal(tool.InputSchema); tool.Name == "echo.echo" && !bytes.Contains(schema, []byte(connectionArg)) {
			t.Errorf("echo.echo's schema names no connection: %s", schema)
		}
	}
	res, err = again2.CallTool(ctx, &mcp.CallToolParams{Name: "echo.echo", Arguments: map[string]any{connectionArg: "other", "x": 1}})
	if err != nil || res.IsError || structured(t, res)["connection"] != "other" {
		t.Fatalf("echo.echo on the other connection: %+v, %v", res, err)
	}
}
