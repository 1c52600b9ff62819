// An admin's pages: the workspace's keys (a new one shown once, with a
// copy button), its audit log (filtered, and exported as NDJSON) and its
// settings (retention, and an export of everything it owns).
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

type Workspace = Schemas["Workspace"];

// A workspace setting of the retention form: its API member, its label and
// unit, its bounds, and where GET /v1/workspace puts its value and whether
// that is the server's default.
const retentionSettings = [
  { name: "run_retention_days", id: "ret-runs", label: "Keep ended runs", unit: "days", min: 1, max: 3650, value: (w: Workspace) => [w.run_retention_days, w.run_retention_default] as [number, boolean] },
  { name: "audit_retention_days", id: "ret-audit", label: "Keep audit records", unit: "days", min: 30, max: 3650, value: (w: Workspace) => [w.audit_retention_days, w.audit_retention_default] as [number, boolean] },
  { name: "idempotency_retention_hours", id: "ret-idem", label: "Remember idempotency keys", unit: "hours", min: 1, max: 720, value: (w: Workspace) => [w.idempotency_retention_hours, w.idempotency_retention_default] as [number, boolean] },
] as const;

type RetentionName = (typeof retentionSettings)[number]["name"];

// The workspace's settings: its retention (each its own or the server's
// default) and an export of everything it owns.
export function SettingsPage(p: { session: Session }) {
  const [ws, setWs] = useState<Workspace | null>(null);
  const [values, setValues] = useState<Record<RetentionName, string>>({ run_retention_days: "", audit_retention_days: "", idempotency_retention_hours: "" });
  const [defaults, setDefaults] = useState<Record<RetentionName, boolean>>({ run_retention_days: true, audit_retention_days: true, idempotency_retention_hours: true });
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);

  const show = (w: Workspace) => {
    setWs(w);
    const v = {} as Record<RetentionName, string>;
    const d = {} as Record<RetentionName, boolean>;
    for (const s of retentionSettings) {
      const [value, isDefault] = s.value(w);
      v[s.name] = String(value);
      d[s.name] = isDefault;
    }
    setValues(v);
    setDefaults(d);
  };
  useEffect(() => {
    must(p.session.api.GET("/v1/workspace")).then(show, (err) => setError(String(err)));
  }, []);

  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setFieldErrors({});
    setSaved(false);
    setBusy(true);
    const body: Record<string, number | null> = {};
    for (const s of retentionSettings) body[s.name] = defaults[s.name] ? null : Number(values[s.name]);
    try {
      show(await must(p.session.api.PATCH("/v1/workspace", { body })));
      setSaved(true);
    } catch (err) {
      if (err instanceof ProblemError) {
        const byField: Record<string, string> = {};
        for (const fe of err.problem.errors ?? []) byField[fe.pointer.replace(/^\//, "")] = fe.message;
        setFieldErrors(byField);
        setError(err.message);
      } else {
        setError(String(err));
      }
    } finally {
      setBusy(false);
    }
  };

  const exportAll = async () => {
    setError(null);
    const resp = await fetch("/v1/workspace/export", { method: "POST", headers: { Authorization: `Bearer ${p.session.key}` } });
    if (!resp.ok) {
      setError(`exporting the workspace failed: ${resp.status}`);
      return;
    }
    const name = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") ?? "")?.[1] ?? `relay-${p.session.workspace.name}.tar.gz`;
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await resp.blob());
    a.download = name;
    a.click();
    URL.revokeObjectURL(a.href);
  };

  if (!ws) return <section><h1>Settings</h1>{error ? <p class="error" role="alert">{error}</p> : <p class="loading">Loading…</p>}</section>;
  return (
    <section>
      <h1>Settings</h1>
      <p>
        Workspace <strong>{ws.name}</strong> (<code>{ws.id}</code>), created {new Date(ws.created_at).toLocaleDateString()}. Quota: {ws.rate_limit.rate} requests a
        second, bursts of {ws.rate_limit.burst}.
      </p>
      <h2>Retention</h2>
      <p class="help">
        Older runs and audit records are purged every hour; the audit records give way to a signed checkpoint, so the log still verifies. A key's
        retention counts from its first use.
      </p>
      <form onSubmit={save}>
        {retentionSettings.map((s) => {
          const err = fieldErrors[s.name];
          return (
            <fieldset key={s.name} class="setting">
              <legend>{s.label}</legend>
              <div class="field check">
                <input
                  id={`${s.id}-default`}
                  type="checkbox"
                  checked={defaults[s.name]}
                  onChange={(e) => setDefaults({ ...defaults, [s.name]: e.currentTarget.checked })}
                />
                <label for={`${s.id}-default`}>the server's default</label>
              </div>
              <div class="field inline">
                <label for={s.id}>{s.unit}</label>
                <input
                  id={s.id}
                  type="number"
                  min={s.min}
                  max={s.max}
                  step={1}
                  required={!defaults[s.name]}
                  disabled={defaults[s.name]}
                  value={values[s.name]}
                  onInput={(e) => setValues({ ...values, [s.name]: e.currentTarget.value })}
                  aria-invalid={err ? true : undefined}
                  aria-describedby={err ? `${s.id}-error` : `${s.id}-help`}
                />
                <span id={`${s.id}-help`} class="muted">
                  {s.name !== "idempotency_retention_hours" && values[s.name] === "0" ? "forever" : `${s.min} to ${s.max}`}
                </span>
              </div>
              {err ? <p id={`${s.id}-error`} class="error">{err}</p> : null}
            </fieldset>
          );
        })}
        <div class="buttons">
          <button type="submit" disabled={busy}>Save retention</button>
        </div>
        {saved ? <p class="ok" role="status">Saved.</p> : null}
        {error ? <p class="error" role="alert">{error}</p> : null}
      </form>
      <h2>Export</h2>
      <p class="help">Everything the workspace owns, as a gzipped tar of NDJSON files: keys' metadata, connections without secret values, runs, audit records, installations, usage.</p>
      <button type="button" class="secondary" onClick={exportAll}>Export the workspace</button>
    </section>
  );
}
