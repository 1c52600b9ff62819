import "./style.css";

import { render } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import {
  can,
  finalStatuses,
  follow,
  idempotencyKey,
  ProblemError,
  signIn,
  storedKey,
  storeKey,
  type PreviewResult,
  type Role,
  type Run,
  type RunStatus,
  type Session,
} from "./api";
import { AuditPage, KeysPage, SettingsPage } from "./admin";
import { ConnectionPage, ConnectionsPage } from "./connections";
import { SchemaForm, validate, type Errors, type JSONSchema } from "./form";
import { HealthPage } from "./health";
import { InstallationPage, InstallationsPage, InstallPage, ListingPage, MarketplacePage, UsagePage } from "./marketplace";
import { Palette } from "./palette";
import { Link, must, navigate, SideEffect, Status, useLoad, usePages, usePath } from "./ui";

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState(storedKey() !== null);
  const [palette, setPalette] = useState(false);
  const path = usePath();
  const opener = useRef<Element | null>(null);
  const closePalette = () => {
    setPalette(false);
    (opener.current as HTMLElement | null)?.focus?.();
  };

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
        e.preventDefault();
        opener.current = document.activeElement;
        setPalette((open) => !open);
      } else if (e.key === "Escape") {
        closePalette(); // wherever the focus is
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);

  useEffect(() => {
    const key = storedKey();
    if (!key) return;
    signIn(key)
      .then(setSession)
      .catch(() => storeKey(null))
      .finally(() => setRestoring(false));
  }, []);

  if (restoring) return <p class="loading">Signing in…</p>;
  if (!session) {
    return (
      <SignIn
        onSignedIn={(s) => {
          storeKey(s.key);
          setSession(s);
          if (path === "/") navigate("/actions");
        }}
      />
    );
  }
  const role: Role = session.workspace.key.role ?? "viewer";
  const signOut = () => {
    storeKey(null);
    setSession(null);
    navigate("/");
  };
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">Relay Studio</span>
        <nav aria-label="Sections">
          <Link to="/actions" current={path.startsWith("/actions")}>Actions</Link>
          <Link to="/runs" current={path.startsWith("/runs")}>Runs</Link>
          <Link to="/connections" current={path.startsWith("/connections")}>Connections</Link>
          <Link to="/marketplace" current={/^\/(marketplace|installations|usage)/.test(path)}>Marketplace</Link>
          {can(role, "admin") ? <Link to="/keys" current={path.startsWith("/keys")}>Keys</Link> : null}
          {can(role, "admin") ? <Link to="/audit" current={path.startsWith("/audit")}>Audit</Link> : null}
          {can(role, "admin") ? <Link to="/settings" current={path.startsWith("/settings")}>Settings</Link> : null}
          <Link to="/health" current={path.startsWith("/health")}>Health</Link>
        </nav>
        <button
          type="button"
          class="secondary"
          aria-keyshortcuts="Control+K Meta+K"
          onClick={(e) => {
            opener.current = e.currentTarget;
            setPalette(true);
          }}
        >
          Go to… <kbd>Ctrl K</kbd>
        </button>
        <span class="who">
          {session.workspace.name} · <span class={`role role-${role}`}>{role}</span>
        </span>
        <button type="button" class="secondary" onClick={signOut}>Sign out</button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page path={path} session={session} role={role} />
      </main>
      {palette ? <Palette session={session} role={role} onClose={closePalette} /> : null}
    </>
  );
}

function Page(p: { path: string; session: Session; role: Role }) {
  const parts = p.path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "actions" && parts.length === 2) return <ActionPage key={parts[1]} id={parts[1]} session={p.session} role={p.role} />;
  if (parts[0] === "runs" && parts.length === 2) return <RunPage key={parts[1]} id={parts[1]} session={p.session} role={p.role} />;
  if (parts[0] === "runs") return <RunsPage session={p.session} />;
  if (parts[0] === "connections" && parts.length === 2) return <ConnectionPage key={parts[1]} id={parts[1]} session={p.session} role={p.role} />;
  if (parts[0] === "connections") return <ConnectionsPage session={p.session} role={p.role} />;
  if (parts[0] === "keys" && can(p.role, "admin")) return <KeysPage session={p.session} />;
  if (parts[0] === "audit" && can(p.role, "admin")) return <AuditPage session={p.session} />;
  if (parts[0] === "settings" && can(p.role, "admin")) return <SettingsPage session={p.session} />;
  if (parts[0] === "health") return <HealthPage />;
  if (parts[0] === "marketplace" && parts.length === 4 && parts[3] === "install" && can(p.role, "admin")) {
    return <InstallPage key={parts[2]} publisher={parts[1]} name={parts[2]} session={p.session} />;
  }
  if (parts[0] === "marketplace" && parts.length === 3) return <ListingPage publisher={parts[1]} name={parts[2]} session={p.session} role={p.role} />;
  if (parts[0] === "marketplace" && parts.length === 1) return <MarketplacePage session={p.session} />;
  if (parts[0] === "installations" && parts.length === 2) return <InstallationPage key={parts[1]} id={parts[1]} session={p.session} role={p.role} />;
  if (parts[0] === "installations") return <InstallationsPage session={p.session} />;
  if (parts[0] === "usage") return <UsagePage session={p.session} role={p.role} />;
  if (parts.length === 0 || parts[0] === "actions") return <ActionsPage session={p.session} />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing is at this address. <Link to="/actions">See the actions</Link>.
      </p>
    </section>
  );
}

function SignIn(p: { onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main id="main" class="signin">
      <h1>Relay Studio</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            p.onSignedIn(await signIn(key.trim()));
          } catch (err) {
            setError(err instanceof ProblemError && err.problem.code === "unauthenticated" ? "The server does not know this key." : String(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="field">
          <label for="apikey">API key</label>
          <input id="apikey" type="password" autocomplete="off" required value={key} onInput={(e) => setKey(e.currentTarget.value)} aria-describedby="apikey-help" />
          <p class="help" id="apikey-help">Kept for this tab only, and sent only to this server.</p>
        </div>
        {error ? <p class="error" role="alert">{error}</p> : null}
        <button type="submit" disabled={busy || key.trim() === ""}>Sign in</button>
      </form>
    </main>
  );
}

function ActionsPage(p: { session: Session }) {
  const { data, error } = useLoad(() => must(p.session.api.GET("/v1/actions")), []);
  const [q, setQ] = useState("");
  const shown = useMemo(() => {
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    return (data?.data ?? []).filter((a) => {
      const text = `${a.id} ${a.title} ${a.description ?? ""}`.toLowerCase();
      return words.every((w) => text.includes(w));
    });
  }, [data, q]);
  return (
    <section>
      <h1>Actions</h1>
      <div class="field inline">
        <label for="filter">Filter</label>
        <input id="filter" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
      </div>
      {error ? <p class="error" role="alert">{error}</p> : null}
      {!data && !error ? <p class="loading">Loading…</p> : null}
      {data ? (
        <div class="table-wrap">
          <table>
            <thead>
              <tr><th scope="col">Action</th><th scope="col">What it does</th><th scope="col">Side effect</th><th scope="col">Connections</th></tr>
            </thead>
            <tbody>
              {shown.map((a) => (
                <tr key={a.id}>
                  <td><Link to={`/actions/${encodeURIComponent(a.id)}`}>{a.id}</Link></td>
                  <td>{a.title}</td>
                  <td><SideEffect a={a} /></td>
                  <td>{a.connections.length}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {shown.length === 0 ? <p class="muted">No action matches.</p> : null}
        </div>
      ) : null}
    </section>
  );
}

function ActionPage(p: { id: string; session: Session; role: Role }) {
  const { data: action, error } = useLoad(() => must(p.session.api.GET("/v1/actions/{id}", { params: { path: { id: p.id } } })), [p.id]);
  const [params, setParams] = useState<Record<string, unknown>>({});
  const [connection, setConnection] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [preview, setPreview] = useState<PreviewResult | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // One key per attempt: a second click, or a retry after a lost answer,
  // sends the same key, and the server runs the action once.
  const attempt = useRef(idempotencyKey());
  const inFlight = useRef(false);

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!action) return <p class="loading">Loading…</p>;
  const schema = action.input_schema as JSONSchema;
  const mayRun = can(p.role, "developer");
  const needsConfirm = action.requires_confirmation;

  const change = (v: Record<string, unknown>) => {
    setParams(v);
    setPreview(null); // a preview is of exactly these params
    attempt.current = idempotencyKey();
    setErrors({});
  };
  const fail = (err: unknown) => {
    if (err instanceof ProblemError) {
      const fields: Errors = {};
      for (const f of err.problem.errors ?? []) fields[f.pointer.replace(/^\/params/, "")] = f.message;
      setErrors(fields);
      setProblem(err.message);
    } else setProblem(String(err));
  };
  const check = (): boolean => {
    const found = validate(schema, params);
    setErrors(found);
    setProblem(Object.keys(found).length ? "Some fields need attention." : null);
    return Object.keys(found).length === 0;
  };
  const body = () => ({ params, ...(connection ? { connection } : {}) });

  const doPreview = async () => {
    if (!check()) return;
    setBusy(true);
    try {
      setPreview(
        await must(
          p.session.api.POST("/v1/actions/{id}/preview", {
            params: { path: { id: action.id }, header: { "Idempotency-Key": attempt.current } },
            body: body(),
          }),
        ),
      );
    } catch (err) {
      fail(err);
    } finally {
      setBusy(false);
    }
  };
  const execute = async () => {
    if (inFlight.current || !check()) return;
    inFlight.current = true;
    setBusy(true);
    try {
      const run = await must(
        p.session.api.POST("/v1/actions/{id}/execute", {
          params: { path: { id: action.id }, header: { "Idempotency-Key": attempt.current } },
          body: { ...body(), mode: "async", ...(preview ? { confirm_token: preview.confirm_token } : {}) },
        }),
      );
      navigate(`/runs/${encodeURIComponent(run.id)}`);
    } catch (err) {
      fail(err);
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  };

  return (
    <section>
      <p class="crumbs"><Link to="/actions">Actions</Link> / {action.id}</p>
      <h1>{action.title}</h1>
      {action.description ? <p>{action.description}</p> : null}
      <p>
        <SideEffect a={action} /> <span class="muted">{action.connector} {action.version}</span>
      </p>
      {!mayRun ? <p class="note">Your key is a viewer's: it can read this action, not run it.</p> : null}
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          if (needsConfirm && !preview) doPreview();
          else execute();
        }}
      >
        {action.connections.length > 1 ? (
          <div class="field">
            <label for="connection">Connection</label>
            <select id="connection" value={connection} onChange={(e) => setConnection(e.currentTarget.value)} disabled={busy}>
              <option value="">—</option>
              {action.connections.map((c) => <option key={c} value={c}>{c}</option>)}
            </select>
          </div>
        ) : null}
        <SchemaForm schema={schema} value={params} errors={errors} disabled={busy || !mayRun} onChange={change} />
        {problem ? <p class="error" role="alert">{problem}</p> : null}
        {preview ? (
          <div class={needsConfirm ? "preview confirm" : "preview"} role="region" aria-label="Preview">
            <h2>{needsConfirm ? "Confirm: this is what will happen" : "Preview"}</h2>
            <pre>{JSON.stringify(preview.preview, null, 2)}</pre>
            <p class="muted">On connection {preview.connection}; the confirmation is good until {new Date(preview.expires_at).toLocaleTimeString()}.</p>
          </div>
        ) : null}
        {mayRun ? (
          <div class="buttons">
            <button type="button" class="secondary" disabled={busy} onClick={doPreview}>Preview</button>
            {needsConfirm ? (
              <button type="button" class="danger" disabled={busy || !preview} onClick={execute}>Confirm and execute</button>
            ) : (
              <button type="button" disabled={busy} onClick={execute}>Execute</button>
            )}
          </div>
        ) : null}
      </form>
      <details>
        <summary>Input schema</summary>
        <pre>{JSON.stringify(action.input_schema, null, 2)}</pre>
      </details>
    </section>
  );
}

const statuses: RunStatus[] = ["queued", "running", "succeeded", "failed", "interrupted"];

const runWindows: { label: string; hours: number }[] = [
  { label: "any time", hours: 0 },
  { label: "the last hour", hours: 1 },
  { label: "the last 24 hours", hours: 24 },
  { label: "the last 7 days", hours: 24 * 7 },
  { label: "the last 30 days", hours: 24 * 30 },
];

function RunsPage(p: { session: Session }) {
  const [action, setAction] = useState("");
  const [status, setStatus] = useState("");
  const [hours, setHours] = useState(0);
  // A window is fixed when it is chosen (or refreshed), so that the
  // next pages continue the same list.
  const [chosenAt, setChosenAt] = useState(() => Date.now());
  const { items: runs, setItems: setRuns, error, loading, hasMore, more, reload } = usePages((after) => {
    const query: Record<string, string | number> = { limit: 50 };
    if (action) query.action = action;
    if (status) query.status = status;
    if (hours) query.since = new Date(chosenAt - hours * 3600e3).toISOString();
    if (after) query.cursor = after;
    return must(p.session.api.GET("/v1/runs", { params: { query } }));
  }, [action, status, hours, chosenAt]);

  // Runs in view that have not ended follow their events (a few at a
  // time: the server caps a workspace's open streams), so their status
  // changes here as it does on the server.
  const unfinished = runs.filter((r) => !finalStatuses.includes(r.status)).slice(0, 8).map((r) => r.id);
  useEffect(() => {
    const stop = new AbortController();
    for (const id of unfinished) {
      follow(p.session, id, (r) => setRuns((list) => list.map((x) => (x.id === r.id ? r : x))), stop.signal).catch(() => {});
    }
    return () => stop.abort();
  }, [unfinished.join(",")]);

  return (
    <section>
      <h1>Runs</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field inline">
          <label for="run-action">Action</label>
          <input id="run-action" type="search" placeholder="webhook.send" value={action} onChange={(e) => setAction(e.currentTarget.value.trim())} />
        </div>
        <div class="field inline">
          <label for="run-status">Status</label>
          <select id="run-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">any</option>
            {statuses.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </div>
        <div class="field inline">
          <label for="run-window">Created</label>
          <select id="run-window" value={hours} onChange={(e) => { setHours(Number(e.currentTarget.value)); setChosenAt(Date.now()); }}>
            {runWindows.map((w) => <option key={w.hours} value={w.hours}>{w.label}</option>)}
          </select>
        </div>
        <button type="button" class="secondary" onClick={() => (hours ? setChosenAt(Date.now()) : reload())}>Refresh</button>
      </form>
      {error ? <p class="error" role="alert">{error}</p> : null}
      <div class="table-wrap">
        <table>
          <thead>
            <tr><th scope="col">Run</th><th scope="col">Action</th><th scope="col">Status</th><th scope="col">Started</th><th scope="col">Took</th></tr>
          </thead>
          <tbody>
            {runs.map((r) => (
              <tr key={r.id}>
                <td><Link to={`/runs/${encodeURIComponent(r.id)}`}>{r.id}</Link></td>
                <td>{r.action}</td>
                <td><Status s={r.status} /></td>
                <td>{new Date(r.created_at).toLocaleString()}</td>
                <td>{r.duration_ms !== undefined ? `${r.duration_ms} ms` : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {!loading && runs.length === 0 ? <p class="muted">No runs yet.</p> : null}
      {hasMore ? <button type="button" class="secondary" disabled={loading} onClick={more}>Load more</button> : null}
      {loading ? <p class="loading">Loading…</p> : null}
    </section>
  );
}

function RunPage(p: { id: string; session: Session; role: Role }) {
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const stop = new AbortController();
    (async () => {
      try {
        const r = await must(p.session.api.GET("/v1/runs/{id}", { params: { path: { id: p.id } } }));
        setRun(r);
        if (!finalStatuses.includes(r.status)) {
          await follow(p.session, p.id, setRun, stop.signal);
        }
      } catch (err) {
        if (!stop.signal.aborted) setError(String(err));
      }
    })();
    return () => stop.abort();
  }, [p.id]);

  if (error) return <p class="error" role="alert">{error}</p>;
  if (!run) return <p class="loading">Loading…</p>;
  return (
    <section>
      <p class="crumbs"><Link to="/runs">Runs</Link> / {run.id}</p>
      <h1>
        Run of <Link to={`/actions/${encodeURIComponent(run.action)}`}>{run.action}</Link>
      </h1>
      <p aria-live="polite">Status: <Status s={run.status} /></p>
      <dl class="facts">
        <dt>Connection</dt><dd>{run.connection ?? run.connection_id}</dd>
        <dt>Connector</dt><dd>{run.connector} {run.version} ({run.runtime})</dd>
        <dt>Created</dt><dd>{new Date(run.created_at).toLocaleString()}</dd>
        {run.started_at ? <><dt>Started</dt><dd>{new Date(run.started_at).toLocaleString()}</dd></> : null}
        {run.finished_at ? <><dt>Finished</dt><dd>{new Date(run.finished_at).toLocaleString()}</dd></> : null}
        {run.duration_ms !== undefined ? <><dt>Took</dt><dd>{run.duration_ms} ms</dd></> : null}
        {run.idempotency_key ? <><dt>Idempotency key</dt><dd><code>{run.idempotency_key}</code></dd></> : null}
        <dt>Attempt</dt><dd>{run.attempt}</dd>
        <dt>Audit</dt>
        <dd>{can(p.role, "admin") ? <Link to={`/audit?q=${encodeURIComponent(`run:${run.id}`)}`}>its audit records</Link> : <>records with target <code>run:{run.id}</code></>}</dd>
      </dl>
      <h2>Params</h2>
      <p class="muted">Secret fields are redacted.</p>
      <pre>{JSON.stringify(run.params, null, 2)}</pre>
      {run.output !== undefined ? <><h2>Output</h2><pre>{JSON.stringify(run.output, null, 2)}</pre></> : null}
      {run.error ? (
        <>
          <h2>Error</h2>
          <p class="error"><code>{run.error.code}</code>: {run.error.message}</p>
        </>
      ) : null}
    </section>
  );
}

render(<App />, document.getElementById("app")!);
