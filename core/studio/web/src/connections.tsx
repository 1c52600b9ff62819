// Connections: the list, a connection's page, and the form that makes or
// changes one. Its config is a form from the connector's config schema;
// its secrets are write-only: the page shows each as set or not, and a
// value typed in is sent once and cleared.
import { useState } from "preact/hooks";

import { can, ProblemError, type Role, type Schemas, type Session } from "./api";
import { SchemaForm, validate, type Errors, type JSONSchema } from "./form";
import { Link, must, navigate, useLoad } from "./ui";

type Connection = Schemas["Connection"];
type Connector = Schemas["Connector"];

export function ConnectionsPage(p: { session: Session; role: Role }) {
  const { data, error } = useLoad(() => must(p.session.api.GET("/v1/connections", { params: { query: { limit: 200 } } })), []);
  return (
    <section>
      <h1>Connections</h1>
      {can(p.role, "admin") ? (
        <p>
          <Link to="/connections/new" class="button">New connection</Link>
        </p>
      ) : null}
      {error ? <p class="error" role="alert">{error}</p> : null}
      {!data && !error ? <p class="loading">Loading…</p> : null}
      {data ? (
        <div class="table-wrap">
          <table>
            <thead>
              <tr><th scope="col">Name</th><th scope="col">Connector</th><th scope="col">Version</th><th scope="col">Secrets</th></tr>
            </thead>
            <tbody>
              {data.data.map((c) => (
                <tr key={c.id}>
                  <td><Link to={`/connections/${encodeURIComponent(c.id)}`}>{c.name}</Link></td>
                  <td>{c.connector}</td>
                  <td>{c.version}</td>
                  <td>{secretsSummary(c)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {data.data.length === 0 ? <p class="muted">No connections yet.</p> : null}
        </div>
      ) : null}
    </section>
  );
}

function secretsSummary(c: Connection): string {
  const names = Object.keys(c.secrets ?? {});
  if (names.length === 0) return "none";
  return names.map((n) => `${n}: ${c.secrets[n] ? "set" : "not set"}`).join(", ");
}

/** The config schema's fields that are not secret, and the secret ones' names. */
function split(schema: JSONSchema | undefined): { config: JSONSchema; secrets: string[] } {
  const props = schema?.properties ?? {};
  const secrets = Object.keys(props).filter((k) => props[k]["x-relay-secret"] === true);
  const config: JSONSchema = {
    type: "object",
    properties: Object.fromEntries(Object.entries(props).filter(([k]) => !secrets.includes(k))),
    required: (schema?.required ?? []).filter((k) => !secrets.includes(k)),
  };
  return { config, secrets };
}

export function ConnectionPage(p: { id: string; session: Session; role: Role }) {
  const isNew = p.id === "new";
  const conns = useLoad(
    () => (isNew ? Promise.resolve(undefined) : must(p.session.api.GET("/v1/connections/{id}", { params: { path: { id: p.id } } }))),
    [p.id],
  );
  const connectors = useLoad(() => must(p.session.api.GET("/v1/connectors")), []);
  if (conns.error || connectors.error) return <p class="error" role="alert">{conns.error ?? connectors.error}</p>;
  if ((!isNew && !conns.data) || !connectors.data) return <p class="loading">Loading…</p>;
  return <ConnectionForm key={p.id} session={p.session} role={p.role} conn={conns.data} connectors={connectors.data.data} />;
}

function ConnectionForm(p: { session: Session; role: Role; conn?: Connection; connectors: Connector[] }) {
  const admin = can(p.role, "admin");
  const [connector, setConnector] = useState(p.conn?.connector ?? "");
  const [name, setName] = useState(p.conn?.name ?? "");
  const [config, setConfig] = useState<Record<string, unknown>>((p.conn?.config as Record<string, unknown>) ?? {});
  const [secrets, setSecrets] = useState<Record<string, string>>({});
  const [unset, setUnset] = useState<Record<string, boolean>>({});
  const [conn, setConn] = useState(p.conn);
  const [errors, setErrors] = useState<Errors>({});
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);

  const def = p.connectors.find((c) => c.name === connector);
  const { config: configSchema, secrets: secretNames } = split(def?.latest.config_schema as JSONSchema | undefined);

  const save = async (check: boolean) => {
    const found = validate(configSchema, config);
    setErrors(found);
    if (Object.keys(found).length) {
      setMessage({ ok: false, text: "Some fields need attention." });
      return;
    }
    const sent: Record<string, string | null> = {};
    for (const k of secretNames) {
      if (unset[k]) sent[k] = null;
      else if (secrets[k]) sent[k] = secrets[k];
    }
    setBusy(true);
    try {
      const body = { name, config, ...(Object.keys(sent).length ? { secrets: sent } : {}) };
      const saved = conn
        ? await must(p.session.api.PATCH("/v1/connections/{id}", { params: { path: { id: conn.id }, query: { check } }, body }))
        : await must(p.session.api.POST("/v1/connections", { params: { query: { check } }, body: { ...body, connector } }));
      setSecrets({}); // a secret is sent once, and never kept on the page
      setUnset({});
      setConn(saved);
      setMessage({ ok: true, text: check ? "Saved; the connector accepted the config." : "Saved without asking the connector." });
      if (!conn) history.replaceState(null, "", `/studio/connections/${encodeURIComponent(saved.id)}`);
    } catch (err) {
      if (err instanceof ProblemError) {
        const fields: Errors = {};
        for (const f of err.problem.errors ?? []) fields[f.pointer.replace(/^\/config/, "")] = f.message;
        setErrors(fields);
      }
      setMessage({ ok: false, text: String(err instanceof ProblemError ? err.message : err) });
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!conn || !confirm(`Delete the connection ${conn.name}? Actions that use it stop working.`)) return;
    try {
      await must(p.session.api.DELETE("/v1/connections/{id}", { params: { path: { id: conn.id } } }));
      navigate("/connections");
    } catch (err) {
      setMessage({ ok: false, text: String(err) });
    }
  };

  return (
    <section>
      <p class="crumbs"><Link to="/connections">Connections</Link> / {conn?.name ?? "new"}</p>
      <h1>{conn ? conn.name : "New connection"}</h1>
      {conn ? <p class="muted">{conn.connector} {conn.version} ({conn.runtime})</p> : null}
      {!admin ? <p class="note">Your key is not an admin's: it can read this connection, not change it.</p> : null}
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          save(true);
        }}
      >
        {!conn ? (
          <div class="field">
            <label for="connector">Connector</label>
            <select id="connector" value={connector} disabled={!admin || busy} onChange={(e) => { setConnector(e.currentTarget.value); setConfig({}); }}>
              <option value="">—</option>
              {p.connectors.map((c) => <option key={c.name} value={c.name}>{c.title} ({c.name})</option>)}
            </select>
          </div>
        ) : null}
        <div class="field">
          <label for="conn-name">Name</label>
          <input id="conn-name" type="text" value={name} disabled={!admin || busy} onInput={(e) => setName(e.currentTarget.value)} aria-describedby="conn-name-help" />
          <p class="help" id="conn-name-help">Lowercase letters, digits, - and _.</p>
        </div>
        {def ? (
          <>
            <h2>Config</h2>
            <SchemaForm schema={configSchema} value={config} errors={errors} disabled={!admin || busy} onChange={setConfig} />
            {secretNames.length ? <h2>Secrets</h2> : null}
            {secretNames.map((k) => {
              const isSet = conn?.secrets?.[k] === true;
              return (
                <div class="field" key={k}>
                  <label for={`secret-${k}`}>
                    {k} <span class={isSet ? "badge st-succeeded" : "badge"}>{isSet ? "set" : "not set"}</span>
                  </label>
                  <input
                    id={`secret-${k}`}
                    type="password"
                    autocomplete="off"
                    placeholder={isSet ? "leave empty to keep it" : ""}
                    disabled={!admin || busy || unset[k]}
                    value={secrets[k] ?? ""}
                    onInput={(e) => setSecrets({ ...secrets, [k]: e.currentTarget.value })}
                  />
                  {isSet ? (
                    <label class="inline-check">
                      <input type="checkbox" checked={unset[k] === true} disabled={!admin || busy} onChange={(e) => setUnset({ ...unset, [k]: e.currentTarget.checked })} />
                      Remove {k}
                    </label>
                  ) : null}
                </div>
              );
            })}
          </>
        ) : null}
        {message ? <p class={message.ok ? "ok" : "error"} role={message.ok ? "status" : "alert"}>{message.text}</p> : null}
        {admin ? (
          <div class="buttons">
            <button type="submit" disabled={busy || !def || name === ""}>{conn ? "Save and check" : "Create and check"}</button>
            <button type="button" class="secondary" disabled={busy || !def || name === ""} onClick={() => save(false)}>Save without checking</button>
            {conn ? <button type="button" class="danger" disabled={busy} onClick={remove}>Delete</button> : null}
          </div>
        ) : null}
      </form>
    </section>
  );
}
