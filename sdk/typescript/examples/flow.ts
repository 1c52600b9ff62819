// The sample flow: connect, list, preview, execute once (and replay),
// read the run, follow an async run's events. CI compiles it with
// tsc --strict and runs it against a real server (TestTypeScriptClient).
//
// Usage: node dist/examples/flow.js BASE_URL ADMIN_KEY VAULT_TOKEN
import { createRelayClient, followRun, idempotencyKey, type RelayOptions, type RunStatus } from "../src/index.js";

const [baseUrl, apiKey, token] = process.argv.slice(2);
if (!baseUrl || !apiKey || !token) {
  console.error("usage: node flow.js BASE_URL ADMIN_KEY VAULT_TOKEN");
  process.exit(2);
}
const options: RelayOptions = { baseUrl, apiKey };
const relay = createRelayClient(options);

function fail(step: string, error: unknown): never {
  console.error(`${step}: ${JSON.stringify(error)}`);
  process.exit(1);
}

// Connect: a connection to the vault connector, its secret write-only.
const conn = await relay.POST("/v1/connections", {
  body: { connector: "vault", name: "prod", secrets: { token } },
});
if (conn.error) fail("create connection", conn.error);

const actions = await relay.GET("/v1/actions");
if (actions.error) fail("list actions", actions.error);
const deleteItem = actions.data.data.find((a) => a.id === "vault.delete_item");
if (!deleteItem) fail("list actions", "no vault.delete_item");

// A destructive action: preview, then execute with the preview's token.
const params = { id: "item-42" };
const preview = await relay.POST("/v1/actions/{id}/preview", {
  params: { path: { id: deleteItem.id } },
  body: { params, connection: "prod" },
});
if (preview.error) fail("preview", preview.error);

const key = idempotencyKey();
const execute = () =>
  relay.POST("/v1/actions/{id}/execute", {
    params: { path: { id: deleteItem.id }, header: { "Idempotency-Key": key } },
    body: { params, connection: "prod", confirm_token: preview.data.confirm_token },
  });
const first = await execute();
if (first.error) fail("execute", first.error);
const replay = await execute();
if (replay.error) fail("replay", replay.error);

const run = await relay.GET("/v1/runs/{id}", { params: { path: { id: first.data.id } } });
if (run.error) fail("get run", run.error);

// An async run, followed to its end.
const queued = await relay.POST("/v1/actions/{id}/execute", {
  params: { path: { id: "vault.slow" }, header: { "Idempotency-Key": idempotencyKey() } },
  body: { params: { ms: 300 }, connection: "prod", mode: "async" },
});
if (queued.error) fail("async execute", queued.error);
const statuses: RunStatus[] = [];
const final = await followRun(options, queued.data.id, (r) => statuses.push(r.status));

// What a refusal looks like: a problem with a stable code.
const missing = await relay.GET("/v1/runs/{id}", { params: { path: { id: "no-such-run" } } });

console.log(
  JSON.stringify({
    actions: actions.data.data.length,
    requires_confirmation: deleteItem.requires_confirmation,
    preview: preview.data.preview,
    idempotency_key: key,
    run: { id: first.data.id, status: first.data.status, output: first.data.output },
    replay: { id: replay.data.id, replayed: replay.response.headers.get("Idempotent-Replayed") },
    read: { id: run.data.id, status: run.data.status },
    followed: { id: final.id, status: final.status, statuses },
    missing: { status: missing.response.status, code: missing.error?.code },
  }),
);
