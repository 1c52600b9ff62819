// The marketplace: browse and search templates, a listing with its
// permission summary and price, an install that shows exactly what the
// consent covers, the workspace's installations with their upgrade diff,
// dry run and rollback, and usage with budgets.
import { useEffect, useState } from "preact/hooks";

import { can, ProblemError, type Role, type Schemas, type Session } from "./api";
import { Link, must, navigate, useLoad, usePages } from "./ui";

type Listing = Schemas["Listing"];
type Summary = Schemas["PermissionSummary"];
type Plan = Schemas["PricePlan"];
type Installation = Schemas["TemplateInstallation"];
type UpgradePreview = Schemas["UpgradePreview"];

function money(amount: number, currency = "USD"): string {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount / 100);
  } catch {
    return `${amount} ${currency} (minor units)`;
  }
}

export function planText(p: Plan): string {
  switch (p.kind) {
    case "free":
      return "free";
    case "per_execution":
      return `${money(p.unit_amount ?? 0, p.currency)} per ${p.per_units && p.per_units > 1 ? `${p.per_units} runs` : "run"}`;
    case "monthly":
      return `${money(p.monthly_amount ?? 0, p.currency)} a month, by the day held`;
    case "tiered":
      return "tiered by runs a month";
  }
  return p.kind;
}

/** A listing's publisher/name (its name may hold the publisher already). */
function fullName(l: Listing): string {
  return l.name.includes("/") ? l.name : `${l.publisher}/${l.name}`;
}

export function MarketplacePage(p: { session: Session }) {
  const [q, setQ] = useState("");
  const [query, setQuery] = useState("");
  const { items, error, loading, hasMore, more } = usePages(
    (after) =>
      must(
        p.session.api.GET("/v1/marketplace/templates", {
          params: { query: { ...(query ? { q: query } : { sort: "installs" as const }), limit: 24, ...(after ? { cursor: after } : {}) } },
        }),
      ),
    [query],
  );
  return (
    <section>
      <h1>Marketplace</h1>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery(q.trim());
        }}
      >
        <div class="field inline">
          <label for="mq">Search templates</label>
          <input id="mq" type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
        </div>
        <button type="submit">Search</button>
        <Link to="/installations">Installed templates</Link>
        <Link to="/usage">Usage and budgets</Link>
      </form>
      {error ? <p class="error" role="alert">{error}</p> : null}
      <ul class="cards">
        {items.map((l) => (
          <li key={fullName(l)} class="card">
            <h2><Link to={`/marketplace/${fullName(l)}`}>{l.title}</Link></h2>
            <p class="muted">{fullName(l)} · {l.latest ?? "no release"} · {l.installs} installs</p>
            <p>{l.summary}</p>
          </li>
        ))}
      </ul>
      {!loading && items.length === 0 ? <p class="muted">No template matches.</p> : null}
      {hasMore ? <button type="button" class="secondary" disabled={loading} onClick={more}>Load more</button> : null}
      {loading ? <p class="loading">Loading…</p> : null}
    </section>
  );
}

/** PermissionSummary shows what accepting a template version allows, all of it. */
export function PermissionSummary(p: { s: Summary }) {
  const s = p.s;
  return (
    <div class="summary">
      <h3>Connectors it runs</h3>
      <ul>{s.connectors.map((c) => <li key={c.package}>{c.package} {c.version}</li>)}</ul>
      <h3>Hosts they may reach</h3>
      {s.egress.length ? <ul>{s.egress.map((h) => <li key={h}><code>{h}</code></li>)}</ul> : <p>none</p>}
      <h3>Secrets handed to them</h3>
      {s.secrets.length ? <ul>{s.secrets.map((x) => <li key={x.connection + x.field}>{x.label} ({x.connection}.{x.field})</li>)}</ul> : <p>none</p>}
      <h3>What its presets may do</h3>
      <ul>
        {s.presets.map((x) => (
          <li key={x.name}>
            {x.name} runs {x.action}: <span class={`badge se-${x.side_effect}`}>{x.side_effect}{x.requires_confirmation ? " · confirm" : ""}</span>
          </li>
        ))}
      </ul>
      <h3>Price</h3>
      {s.prices?.length ? (
        <ul>
          {s.prices.map((x) => (
            <li key={x.listing}>
              {x.listing}: {planText(x.current.plan)}
              {x.pending ? ` (from ${x.pending.effective_from}: ${planText(x.pending.plan)})` : ""}
            </li>
          ))}
        </ul>
      ) : <p>free</p>}
    </div>
  );
}

export function ListingPage(p: { publisher: string; name: string; session: Session; role: Role }) {
  const { data, error } = useLoad(
    () => must(p.session.api.GET("/v1/marketplace/templates/{publisher}/{name}", { params: { path: { publisher: p.publisher, name: p.name } } })),
    [p.publisher, p.name],
  );
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!data) return <p class="loading">Loading…</p>;
  const full = data as Schemas["ListingDetail"] & Partial<Listing>;
  return (
    <section>
      <p class="crumbs"><Link to="/marketplace">Marketplace</Link> / {p.publisher}/{p.name}</p>
      <h1>{full.title ?? `${p.publisher}/${p.name}`}</h1>
      {full.summary ? <p>{full.summary}</p> : null}
      <p>
        Price: {full.price ? planText(full.price.current.plan) : "free"}
        {full.price?.pending ? ` (from ${full.price.pending.effective_from}: ${planText(full.price.pending.plan)})` : ""}
      </p>
      {can(p.role, "admin") ? (
        <p><Link class="button" to={`/marketplace/${p.publisher}/${p.name}/install`}>Install…</Link></p>
      ) : <p class="note">Installing takes a workspace admin's key.</p>}
      {full.permission_summary ? (
        <>
          <h2>What the latest version may do</h2>
          <PermissionSummary s={full.permission_summary} />
        </>
      ) : null}
      <h2>Versions</h2>
      <ul>
        {full.versions.map((v) => (
          <li key={v.version}>
            {v.version} · {new Date(v.published_at).toLocaleDateString()}
            {"yanked" in v && v.yanked ? <span class="error"> yanked: {String(v.yanked)}</span> : null}
          </li>
        ))}
      </ul>
      {full.readme ? (
        <>
          <h2>Readme</h2>
          <pre class="readme">{full.readme}</pre>
        </>
      ) : null}
    </section>
  );
}

/** The secrets a summary asks for, as inputs; they are sent with the accept and never kept. */
function SecretInputs(p: { summary: Summary; values: Record<string, string>; onChange: (v: Record<string, string>) => void; disabled: boolean }) {
  return (
    <>
      {p.summary.secrets.map((x) => {
        const k = `${x.connection}.${x.field}`;
        return (
          <div class="field" key={k}>
            <label for={`sec-${k}`}>{x.label} <span class="muted">({k})</span></label>
            <input
              id={`sec-${k}`}
              type="password"
              autocomplete="off"
              disabled={p.disabled}
              value={p.values[k] ?? ""}
              onInput={(e) => p.onChange({ ...p.values, [k]: e.currentTarget.value })}
            />
          </div>
        );
      })}
    </>
  );
}

function connectionsBody(values: Record<string, string>) {
  const out: Record<string, { secrets: Record<string, string> }> = {};
  for (const [k, v] of Object.entries(values)) {
    if (!v) continue;
    const [conn, field] = k.split(".");
    (out[conn] ??= { secrets: {} }).secrets[field] = v;
  }
  return out;
}

export function InstallPage(p: { publisher: string; name: string; session: Session }) {
  const template = `${p.publisher}/${p.name}`;
  const [plan, setPlan] = useState<Schemas["InstallPlan"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [name, setName] = useState(p.name);
  const [secrets, setSecrets] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const loadPlan = async () => {
    try {
      setPlan(await must(p.session.api.GET("/v1/marketplace/templates/{publisher}/{name}/plan", { params: { path: { publisher: p.publisher, name: p.name } } })));
    } catch (err) {
      setError(String(err));
    }
  };
  useEffect(() => {
    loadPlan();
  }, [template]);
  if (!plan) return error ? <p class="error" role="alert">{error}</p> : <p class="loading">Loading…</p>;
  return (
    <section>
      <p class="crumbs"><Link to="/marketplace">Marketplace</Link> / <Link to={`/marketplace/${template}`}>{template}</Link> / install</p>
      <h1>Install {template} {plan.version}</h1>
      <div class="preview confirm" role="region" aria-label="What you accept">
        <h2>By installing, you allow exactly this</h2>
        <PermissionSummary s={plan.permission_summary} />
        <p class="muted">Consent digest <code>{plan.permission_digest.slice(0, 16)}…</code>: if the template changes before you accept, the install is refused and this page shows the new summary.</p>
      </div>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const inst = await must(
              p.session.api.POST("/v1/installations", {
                body: { template, version: plan.version, name, accept: plan.permission_digest, connections: connectionsBody(secrets) },
              }),
            );
            setSecrets({});
            navigate(`/installations/${encodeURIComponent(inst.id)}`);
          } catch (err) {
            setError(err instanceof ProblemError ? err.message : String(err));
            if (err instanceof ProblemError && err.problem.code === "conflict") loadPlan();
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="field">
          <label for="inst-name">Installation name</label>
          <input id="inst-name" type="text" value={name} disabled={busy} onInput={(e) => setName(e.currentTarget.value)} aria-describedby="inst-name-help" />
          <p class="help" id="inst-name-help">Its presets are named {name || "…"}.&lt;preset&gt;.</p>
        </div>
        <SecretInputs summary={plan.permission_summary} values={secrets} onChange={setSecrets} disabled={busy} />
        {error ? <p class="error" role="alert">{error}</p> : null}
        <div class="buttons">
          <button type="submit" disabled={busy || !name}>Accept and install</button>
        </div>
      </form>
    </section>
  );
}

export function InstallationsPage(p: { session: Session }) {
  const { data, error } = useLoad(() => must(p.session.api.GET("/v1/installations")), []);
  return (
    <section>
      <p class="crumbs"><Link to="/marketplace">Marketplace</Link> / installed</p>
      <h1>Installed templates</h1>
      {error ? <p class="error" role="alert">{error}</p> : null}
      {data ? (
        <div class="table-wrap">
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Template</th><th scope="col">Version</th><th scope="col">Presets</th></tr></thead>
            <tbody>
              {data.data.map((i) => (
                <tr key={i.id}>
                  <td><Link to={`/installations/${encodeURIComponent(i.id)}`}>{i.name}</Link></td>
                  <td>{i.template}</td>
                  <td>{i.version}</td>
                  <td>{i.presets.length}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {data.data.length === 0 ? <p class="muted">Nothing installed yet: <Link to="/marketplace">browse the marketplace</Link>.</p> : null}
        </div>
      ) : !error ? <p class="loading">Loading…</p> : null}
    </section>
  );
}

export function InstallationPage(p: { id: string; session: Session; role: Role }) {
  const [inst, setInst] = useState<Installation | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState("");
  const [preview, setPreview] = useState<UpgradePreview | null>(null);
  const [secrets, setSecrets] = useState<Record<string, string>>({});
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const admin = can(p.role, "admin");
  const load = async () => {
    try {
      setInst(await must(p.session.api.GET("/v1/installations/{id}", { params: { path: { id: p.id } } })));
    } catch (err) {
      setError(String(err));
    }
  };
  useEffect(() => {
    load();
  }, [p.id]);
  const act = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (err) {
      setError(err instanceof ProblemError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  if (!inst) return error ? <p class="error" role="alert">{error}</p> : <p class="loading">Loading…</p>;
  const path = { params: { path: { id: inst.id } } };
  return (
    <section>
      <p class="crumbs"><Link to="/installations">Installed templates</Link> / {inst.name}</p>
      <h1>{inst.name}</h1>
      <p>
        {inst.template} {inst.version}
        {inst.version_range ? ` (range ${inst.version_range})` : ""} · installed {new Date(inst.installed_at).toLocaleString()}
      </p>
      <h2>Presets</h2>
      <ul>{inst.presets.map((x) => <li key={x}><Link to={`/actions/${encodeURIComponent(x)}`}>{x}</Link></li>)}</ul>
      {message ? <p class="ok" role="status">{message}</p> : null}
      {error ? <p class="error" role="alert">{error}</p> : null}
      {admin ? (
        <>
          <h2>Upgrade</h2>
          <form
            class="filters"
            onSubmit={(e) => {
              e.preventDefault();
              act(async () => {
                setPreview(await must(p.session.api.POST("/v1/installations/{id}/upgrade/preview", { ...path, body: version ? { version } : {} })));
              });
            }}
          >
            <div class="field inline">
              <label for="up-version">To version</label>
              <input id="up-version" type="text" placeholder="newest in its range" value={version} onInput={(e) => { setVersion(e.currentTarget.value); setPreview(null); }} />
            </div>
            <button type="submit" class="secondary" disabled={busy}>Preview the upgrade</button>
          </form>
          {preview ? (
            <div class="preview confirm" role="region" aria-label="Upgrade">
              <h3>{preview.from} → {preview.to}</h3>
              <UpgradeDiff d={preview.diff} />
              <h3>Dry run of recent runs</h3>
              {preview.dry_run.length ? (
                <ul>{preview.dry_run.map((r) => <li key={r.run}>{r.preset}: {r.outcome} <span class="muted">({r.run})</span></li>)}</ul>
              ) : <p class="muted">No recent runs to try.</p>}
              <h3>What the new version may do</h3>
              <PermissionSummary s={preview.permission_summary} />
              <SecretInputs summary={preview.permission_summary} values={secrets} onChange={setSecrets} disabled={busy} />
              <button
                type="button"
                disabled={busy}
                onClick={() =>
                  act(async () => {
                    const conns = connectionsBody(secrets);
                    setInst(
                      await must(
                        p.session.api.POST("/v1/installations/{id}/upgrade", {
                          ...path,
                          body: { version: preview.to, accept: preview.permission_digest, ...(Object.keys(conns).length ? { connections: conns } : {}) },
                        }),
                      ),
                    );
                    setSecrets({});
                    setPreview(null);
                    setMessage(`Upgraded to ${preview.to}.`);
                  })
                }
              >
                Accept and upgrade
              </button>
            </div>
          ) : null}
          {inst.rollback_to ? (
            <p>
              <button
                type="button"
                class="secondary"
                disabled={busy}
                onClick={() =>
                  act(async () => {
                    setInst(await must(p.session.api.POST("/v1/installations/{id}/rollback", path)));
                    setMessage("Rolled back.");
                  })
                }
              >
                Roll back to {inst.rollback_to}
              </button>
            </p>
          ) : null}
          <h2>Uninstall</h2>
          <p>
            <button
              type="button"
              class="danger"
              disabled={busy}
              onClick={() =>
                confirm(`Uninstall ${inst.name}? Its presets go; their runs stay.`) &&
                act(async () => {
                  await must(p.session.api.DELETE("/v1/installations/{id}", path));
                  navigate("/installations");
                })
              }
            >
              Uninstall {inst.name}
            </button>
          </p>
        </>
      ) : null}
    </section>
  );
}

function UpgradeDiff(p: { d: UpgradePreview["diff"] }) {
  const rows: [string, string[] | undefined][] = [
    ["Presets added", p.d.presets_added],
    ["Presets removed", p.d.presets_removed],
  ];
  const rest = Object.entries(p.d).filter(([k]) => k !== "presets_added" && k !== "presets_removed");
  return (
    <dl class="facts">
      {rows.map(([label, list]) => (
        <>
          <dt>{label}</dt>
          <dd>{list?.length ? list.join(", ") : "none"}</dd>
        </>
      ))}
      {rest.map(([k, v]) => (
        <>
          <dt>{k.replace(/_/g, " ")}</dt>
          <dd>
            {Array.isArray(v) && v.length === 0 ? "none" : typeof v === "boolean" ? (v ? "yes" : "no") : <code>{JSON.stringify(v)}</code>}
          </dd>
        </>
      ))}
    </dl>
  );
}

/** The days from from to to (YYYY-MM-DD, both included). */
function daysOf(from: string, to: string): string[] {
  const out: string[] = [];
  for (let d = new Date(from + "T00:00:00Z"); d.toISOString().slice(0, 10) <= to && out.length < 400; d.setUTCDate(d.getUTCDate() + 1)) {
    out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

/** A bar a day: values[i] is days[i]'s; show formats a value for people. */
function DayChart(p: { label: string; days: string[]; values: number[]; show: (v: number) => string }) {
  const most = Math.max(1, ...p.values.map(Math.abs));
  const width = 720;
  const slot = width / Math.max(p.days.length, 1);
  // Every day's number when there is room; else each month's first day.
  const every = p.days.length <= 31;
  return (
    <svg class="chart" viewBox={`0 0 ${width} 120`} role="img"
      aria-label={`${p.label}: ${p.days.map((d, i) => `${d} ${p.show(p.values[i])}`).join(", ")}`}>
      <line x1="0" x2={width} y1="5" y2="5" class="grid" />
      <text x="2" y="15" class="axis">{p.show(most)}</text>
      {p.days.map((d, i) => {
        const h = Math.round((100 * Math.max(0, p.values[i])) / most);
        const month = i === 0 || d.endsWith("-01");
        return (
          <g key={d}>
            <title>{`${d}: ${p.show(p.values[i])}`}</title>
            <rect x={i * slot + slot * 0.15} y={105 - h} width={slot * 0.7} height={h} class="bar" />
            {every || month ? (
              <text x={i * slot + slot / 2} y="118" text-anchor={every ? "middle" : "start"} class="axis">{every ? d.slice(8) : d.slice(5)}</text>
            ) : null}
          </g>
        );
      })}
    </svg>
  );
}

const usageRanges: { label: string; days: number }[] = [
  { label: "this month", days: 0 },
  { label: "the last 30 days", days: 30 },
  { label: "the last 90 days", days: 90 },
];

export function UsagePage(p: { session: Session; role: Role }) {
  const [range, setRange] = useState(0);
  const usage = useLoad(() => {
    const query: { group_by: "day"; from?: string; to?: string } = { group_by: "day" };
    const back = usageRanges[range].days;
    if (back) {
      const now = new Date();
      query.to = now.toISOString().slice(0, 10);
      query.from = new Date(now.getTime() - (back - 1) * 86400e3).toISOString().slice(0, 10);
    }
    return must(p.session.api.GET("/v1/usage", { params: { query } }));
  }, [range]);
  const [budgets, setBudgets] = useState<Schemas["Budget"][] | null>(null);
  const [amount, setAmount] = useState("");
  const [currency, setCurrency] = useState("USD");
  const [hard, setHard] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const loadBudgets = async () => {
    try {
      setBudgets((await must(p.session.api.GET("/v1/billing/budgets"))).data);
    } catch (err) {
      setError(String(err));
    }
  };
  useEffect(() => {
    loadBudgets();
  }, []);
  const rows = usage.data?.data ?? [];
  const days = usage.data ? daysOf(usage.data.from, usage.data.to) : [];
  const byDay = new Map(rows.map((r) => [r.day ?? "", r]));
  const currencies = [...new Set(rows.flatMap((r) => Object.keys(r.spend ?? {})))].sort();
  const runs = rows.reduce((n, d) => n + d.runs, 0);
  return (
    <section>
      <p class="crumbs"><Link to="/marketplace">Marketplace</Link> / usage</p>
      <h1>Usage and budgets</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field inline">
          <label for="usage-range">Days</label>
          <select id="usage-range" value={range} onChange={(e) => setRange(Number(e.currentTarget.value))}>
            {usageRanges.map((r, i) => <option key={r.label} value={i}>{r.label}</option>)}
          </select>
        </div>
      </form>
      {usage.error ? <p class="error" role="alert">{usage.error}</p> : null}
      {usage.data ? (
        runs ? (
          <>
            <h2>Runs a day</h2>
            <figure>
              <DayChart label="Succeeded runs a day" days={days} values={days.map((d) => byDay.get(d)?.runs ?? 0)} show={String} />
              <figcaption class="muted">{runs} succeeded run{runs === 1 ? "" : "s"} from {usage.data.from} to {usage.data.to}</figcaption>
            </figure>
            <h2>Spend a day</h2>
            {currencies.length ? currencies.map((c) => {
              const values = days.map((d) => byDay.get(d)?.spend?.[c] ?? 0);
              return (
                <figure key={c}>
                  <DayChart label={`Spend a day in ${c}`} days={days} values={values} show={(v) => money(v, c)} />
                  <figcaption class="muted">{money(values.reduce((n, v) => n + v, 0), c)} spent on runs from {usage.data?.from} to {usage.data?.to}</figcaption>
                </figure>
              );
            }) : <p class="muted">Nothing spent: these runs were free.</p>}
            <details>
              <summary>The days as a table</summary>
              <div class="table-wrap">
                <table>
                  <thead><tr><th scope="col">Day</th><th scope="col">Runs</th>{currencies.map((c) => <th scope="col" key={c}>Spend ({c})</th>)}</tr></thead>
                  <tbody>
                    {rows.map((r) => (
                      <tr key={r.day}><td>{r.day}</td><td>{r.runs}</td>{currencies.map((c) => <td key={c}>{money(r.spend?.[c] ?? 0, c)}</td>)}</tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </details>
            <p class="muted">Spend is what runs cost under their listings' price plans, as the month's invoice will say; monthly fees are not in it.</p>
          </>
        ) : <p class="muted">No runs from {usage.data.from} to {usage.data.to}.</p>
      ) : null}
      <h2>Budgets</h2>
      {error ? <p class="error" role="alert">{error}</p> : null}
      {budgets ? (
        budgets.length ? (
          <ul>
            {budgets.map((b) => (
              <li key={b.scope}>
                {b.scope}: {money(b.spend ?? 0, b.currency)} of {money(b.amount, b.currency)} this month{b.hard ? " (hard: runs past it are refused)" : " (alerts only)"}
                <progress max={b.amount || 1} value={Math.min(b.spend ?? 0, b.amount)} aria-label={`${b.scope} spend`} />
              </li>
            ))}
          </ul>
        ) : <p class="muted">No budget set.</p>
      ) : null}
      {can(p.role, "admin") ? (
        <form
          class="filters"
          onSubmit={async (e) => {
            e.preventDefault();
            try {
              await must(p.session.api.PUT("/v1/billing/budgets/{scope}", { params: { path: { scope: "workspace" } }, body: { currency, amount: Math.round(Number(amount) * 100), hard } }));
              setAmount("");
              loadBudgets();
            } catch (err) {
              setError(err instanceof ProblemError ? err.message : String(err));
            }
          }}
        >
          <div class="field inline">
            <label for="b-amount">Workspace budget a month</label>
            <input id="b-amount" type="number" min="0" step="0.01" required value={amount} onInput={(e) => setAmount(e.currentTarget.value)} />
          </div>
          <div class="field inline">
            <label for="b-currency">Currency</label>
            <input id="b-currency" type="text" size={4} pattern="[A-Z]{3}" value={currency} onInput={(e) => setCurrency(e.currentTarget.value.toUpperCase())} />
          </div>
          <label class="inline-check"><input type="checkbox" checked={hard} onChange={(e) => setHard(e.currentTarget.checked)} /> Refuse runs past it</label>
          <button type="submit">Set budget</button>
        </form>
      ) : null}
    </section>
  );
}
