// The Studio's one way to the API: the typed client of sdk/typescript, as
// the signed-in key, on the origin that served the Studio.
import { createRelayClient, followRun, type RelayClient, type Run, type Schemas } from "@relay/client";

export type { Action, PreviewResult, Run, RunStatus, Schemas } from "@relay/client";
export { finalStatuses, idempotencyKey } from "@relay/client";
export type Problem = Schemas["Problem"];
export type Workspace = Schemas["Workspace"];
export type Role = Schemas["Role"];

// The key is kept for this tab only: sessionStorage, never localStorage
// or a URL.
const keyItem = "relay.studio.key";

export function storedKey(): string | null {
  return sessionStorage.getItem(keyItem);
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(keyItem);
  else sessionStorage.setItem(keyItem, key);
}

export interface Session {
  key: string;
  api: RelayClient;
  workspace: Workspace;
}

/** Signs in with key: the server says whose it is, or refuses it. */
export async function signIn(key: string): Promise<Session> {
  const api = createRelayClient({ baseUrl: location.origin, apiKey: key });
  const { data, error } = await api.GET("/v1/workspace");
  if (error) throw new ProblemError(error);
  return { key, api, workspace: data };
}

/** Follows a run's events until it ends (see sdk/typescript). */
export function follow(s: Session, runId: string, onStatus: (r: Run) => void, signal: AbortSignal): Promise<Run> {
  return followRun({ baseUrl: location.origin, apiKey: s.key }, runId, onStatus, signal);
}

/** A refusal of the server, with its problem document. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ? `${problem.code}: ${problem.detail}` : problem.code);
  }
}

/** May the role do what the least role allows? */
export function can(role: Role, least: Role): boolean {
  const rank = { viewer: 0, developer: 1, admin: 2 } as const;
  return rank[role] >= rank[least];
}
