// An admin's pages: the workspace's keys (a new one shown once, with a
// copy button) and its audit log (filtered, and exported as NDJSON).
import { useEffect, useMemo, useState } from "preact/hooks";

import { ProblemError, type Role, type Schemas, type Session } from "./api";
import { must, usePages } from "./ui";

type APIKey = Schemas["APIKey"];
type AuditRecord = Schemas["AuditRecord"];

export function KeysPage(p: { session: Session }) {
  const [keys, setKeys] = useState<APIKey[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("developer");
  const [created, setCreated] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);

  const load = async () => {
    try {
      const all: APIKey[] = [];
      for (let cursor: string | undefined; ; ) {
        const page = await must(p.session.api.GET("/v1/keys", { params: { query: { limit: 200, ...(cursor ? { cursor } : {}) } } }));
        all.push(...page.data);
        if (!page.next_cursor) break;
        cursor = page.next_cursor;
      }
      setKeys(all);
    } catch (err) {
      setError(String(err));
    }
  };
  useEffect(() => {
    load();
  }, []);

  return (
    <section>
      <h1>Keys</h1>
      <form
        class="filters"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(null);
          setCopied(false);
          try {
            const k = await must(p.session.api.POST("/v1/keys", { body: { name, role } }));
            setCreated(k.key);
            setName("");
            load();
          } catch (err) {
            setError(err instanceof ProblemError ? err.message : String(err));
          }
        }}
      >
        <div class="field inline">
          <label for="key-name">Name</label>
          <input id="key-name" type="text" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field inline">
          <label for="key-role">Role</label>
          <select id="key-role" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
            <option value="viewer">viewer</option>
            <option value="developer">developer</option>
            <option value="admin">admin</option>
          </select>
        </div>
        <button type="submit">Create key</button>
      </form>
      {created ? (
        <div class="preview confirm" role="region" aria-label="New key">
          <h2>The new key, shown only this once</h2>
          <p><code class="secret">{created}</code></p>
          <div class="buttons">
            <button
              type="button"
              onClick={async () => {
                await navigator.clipboard.writeText(created);
                setCopied(true);
              }}
            >
              Copy
            </button>
            <button type="button" class="secondary" onClick={() => setCreated(null)}>I have kept it</button>
          </div>
          {copied ? <p class="ok" role="status">Copied.</p> : null}
        </div>
      ) : null}
      {error ? <p class="error" role="alert">{error}</p> : null}
      {keys ? (
        <div class="table-wrap">
          <table>
            <thead>
              <tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Id</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Revoke</span></th></tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.id}>
                  <td>{k.name || "—"}</td>
                  <td>{k.role}</td>
                  <td><code>{k.id}</code></td>
                  <td>{new Date(k.created_at).toLocaleString()}</td>
                  <td>
                    {k.id === p.session.workspace.key.id ? (
                      <span class="muted">this key</span>
                    ) : (
                      <button
                        type="button"
                        class="danger"
                        aria-label={`Revoke ${k.name || k.id}`}
                        onClick={async () => {
                          if (!confirm(`Revoke the key ${k.name || k.id}? It is refused from its next request.`)) return;
                          try {
                            await must(p.session.api.DELETE("/v1/keys/{id}", { params: { path: { id: k.id } } }));
                            load();
                          } catch (err) {
                            setError(String(err));
                          }
                        }}
                      >
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p class="loading">Loading…</p>
      )}
    </section>
  );
}

export function AuditPage(p: { session: Session }) {
  const [q, setQ] = useState(new URLSearchParams(location.search).get("q") ?? "");
  const [outcome, setOutcome] = useState("");
  const [exportError, setError] = useState<string | null>(null);
  const pages = usePages(
    // Asked for JSON (not NDJSON): a list.
    async (after) =>
      (await must(p.session.api.GET("/v1/audit", { params: { query: { limit: 200, ...(after ? { cursor: after } : {}) } } }))) as Schemas["AuditList"],
    [],
  );
  const records: AuditRecord[] = pages.items;
  const error = pages.error ?? exportError;
  const shown = useMemo(
    () =>
      records.filter(
        (r) => (!outcome || r.outcome === outcome) && (!q || `${r.action} ${r.target ?? ""} ${r.key_id ?? ""}`.toLowerCase().includes(q.toLowerCase())),
      ),
    [records, q, outcome],
  );

  // The whole log, as the API's NDJSON pages, saved as one file.
  const exportAll = async () => {
    const lines: string[] = [];
    let url: string | null = "/v1/audit?limit=200";
    while (url) {
      const resp: Response = await fetch(url, { headers: { Authorization: `Bearer ${p.session.key}`, Accept: "application/x-ndjson" } });
      if (!resp.ok) {
        setError(`exporting the audit log failed: ${resp.status}`);
        return;
      }
      lines.push(await resp.text());
      url = /<([^>]+)>;\s*rel="next"/.exec(resp.headers.get("Link") ?? "")?.[1] ?? null;
    }
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob(lines, { type: "application/x-ndjson" }));
    a.download = `audit-${p.session.workspace.name}.ndjson`;
    a.click();
    URL.revokeObjectURL(a.href);
  };

  return (
    <section>
      <h1>Audit log</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field inline">
          <label for="audit-q">Filter</label>
          <input id="audit-q" type="search" placeholder="action, target or key" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        </div>
        <div class="field inline">
          <label for="audit-outcome">Outcome</label>
          <select id="audit-outcome" value={outcome} onChange={(e) => setOutcome(e.currentTarget.value)}>
            <option value="">any</option>
            <option value="success">success</option>
            <option value="failure">failure</option>
            <option value="started">started</option>
            <option value="denied">denied</option>
          </select>
        </div>
        <button type="button" class="secondary" onClick={exportAll}>Export (NDJSON)</button>
      </form>
      {error ? <p class="error" role="alert">{error}</p> : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Outcome</th><th scope="col">Key</th></tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <tr key={r.id}>
                <td>{r.seq}</td>
                <td>{new Date(r.time).toLocaleString()}</td>
                <td>{r.action}</td>
                <td>{r.target ?? ""}</td>
                <td>{r.outcome}</td>
                <td><code>{r.key_id ?? ""}</code></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {pages.hasMore ? <button type="button" class="secondary" disabled={pages.loading} onClick={pages.more}>Load more</button> : null}
      {pages.loading ? <p class="loading">Loading…</p> : null}
    </section>
  );
}
