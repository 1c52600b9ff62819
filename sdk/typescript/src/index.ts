// Relay's TypeScript client: the types are generated from Relay's OpenAPI
// document (src/schema.d.ts, `npm run generate`); createRelayClient is
// openapi-fetch's typed client with the API key on every request;
// idempotencyKey makes the key an execute is retried with; followRun
// follows a run's Server-Sent Events to its end.
import createClient, { type Client } from "openapi-fetch";
import { EventSource } from "eventsource";

import type { components, paths } from "./schema.js";

export type { components, paths, operations } from "./schema.js";

export type Schemas = components["schemas"];
export type Run = Schemas["Run"];
export type RunStatus = Schemas["RunStatus"];
export type Action = Schemas["Action"];
export type PreviewResult = Schemas["PreviewResult"];
export type Problem = Schemas["Problem"];

/** A client of one Relay server, as one API key. */
export type RelayClient = Client<paths>;

export interface RelayOptions {
  /** Where the server listens, e.g. http://127.0.0.1:8080. */
  baseUrl: string;
  /** An API key, rly_<id>_<secret>. */
  apiKey: string;
  /** The fetch to use; the global one by default. */
  fetch?: typeof globalThis.fetch;
}

/**
 * A typed client: every path, parameter, body and answer of the API is
 * checked by the compiler. Each call resolves to `{ data, error, response }`:
 * `error` is the problem document (with its stable `code`) when the server
 * refused.
 */
export function createRelayClient(options: RelayOptions): RelayClient {
  const client = createClient<paths>({ baseUrl: trimSlash(options.baseUrl), fetch: options.fetch });
  client.use({
    onRequest({ request }) {
      request.headers.set("Authorization", `Bearer ${options.apiKey}`);
      return request;
    },
  });
  return client;
}

/**
 * A new idempotency key. Send it as the Idempotency-Key header of an
 * execute, and send the same key again to retry that execute: the server
 * runs it once and answers a retry with the first run
 * (Idempotent-Replayed: true).
 */
export function idempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

/** The statuses after which a run does not change. */
export const finalStatuses: readonly RunStatus[] = ["succeeded", "failed", "interrupted"];

/**
 * Follows a run's events (GET /v1/runs/{id}/events) until it ends, calling
 * onStatus with the run at each status it reaches, and resolves with the
 * final run. The stream resumes where it left off when the connection
 * drops (Last-Event-ID). `signal` stops following (the promise rejects).
 */
export function followRun(
  options: RelayOptions,
  runId: string,
  onStatus?: (run: Run) => void,
  signal?: AbortSignal,
): Promise<Run> {
  const doFetch = options.fetch ?? globalThis.fetch;
  const url = `${trimSlash(options.baseUrl)}/v1/runs/${encodeURIComponent(runId)}/events`;
  return new Promise<Run>((resolve, reject) => {
    let last: Run | undefined;
    const es = new EventSource(url, {
      fetch: (input, init) =>
        doFetch(input, { ...init, headers: { ...init.headers, Authorization: `Bearer ${options.apiKey}` } }),
    });
    const stop = (err?: Error) => {
      es.close();
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else if (last) resolve(last);
    };
    const onAbort = () => stop(new Error("stopped following the run"));
    signal?.addEventListener("abort", onAbort);
    es.addEventListener("status", (e) => {
      last = JSON.parse(e.data) as Run;
      onStatus?.(last);
      if (finalStatuses.includes(last.status)) stop();
    });
    es.addEventListener("error", (e) => {
      // The client reconnects by itself; it stops (CLOSED) on an answer
      // it cannot follow, e.g. 404, 401 or the 204 after the final event.
      if (es.readyState !== EventSource.CLOSED) return;
      if (last && finalStatuses.includes(last.status)) stop();
      else stop(new Error(`the run's event stream ended: ${e.message ?? "closed"} (${e.code ?? "no status"})`));
    });
  });
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
