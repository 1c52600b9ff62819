// An AI agent's side of Relay's MCP endpoint, with the official MCP
// TypeScript SDK: list the tools, call echo, get a preview and a token
// for a destructive action, confirm it, and see the runs over the REST
// API. TestMCPWithTypeScriptSDK (core/httpapi) runs it against a server.
//
// Usage: node dist/examples/mcp-agent.js BASE_URL DEVELOPER_KEY
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { createRelayClient } from "../src/index.js";

const [baseUrl, apiKey] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  console.error("usage: node mcp-agent.js BASE_URL DEVELOPER_KEY");
  process.exit(2);
}

const client = new Client({ name: "relay-sample-agent", version: "1.0.0" });
await client.connect(
  new StreamableHTTPClientTransport(new URL("/mcp", baseUrl), {
    requestInit: { headers: { Authorization: `Bearer ${apiKey}` } },
  }),
);

const { tools } = await client.listTools();
const del = tools.find((t) => t.name === "vault.delete_item");

const echo = await client.callTool({ name: "echo.echo", arguments: { hello: "from an agent" } });
const preview = await client.callTool({ name: "vault.delete_item", arguments: { id: "item-9" } });
const token = (preview.structuredContent as { confirm_token?: string } | undefined)?.confirm_token;
const confirmed = await client.callTool({
  name: "vault.delete_item",
  arguments: { id: "item-9", relay_confirm_token: token },
});
await client.close();

const relay = createRelayClient({ baseUrl, apiKey });
const runs = await relay.GET("/v1/runs", { params: { query: { action: "vault.delete_item" } } });

console.log(
  JSON.stringify({
    tools: tools.length,
    delete_item: del && { annotations: del.annotations, confirm_arg: "relay_confirm_token" in (del.inputSchema.properties ?? {}) },
    echo: { isError: echo.isError ?? false, run: echo.structuredContent },
    preview: preview.structuredContent,
    confirmed: { isError: confirmed.isError ?? false, run: confirmed.structuredContent },
    runs: runs.data?.data.map((r) => ({ id: r.id, status: r.status })),
  }),
);
