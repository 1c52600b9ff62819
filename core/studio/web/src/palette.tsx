// The command palette (Ctrl-K or ⌘-K): one search over the pages, the
// workspace's actions and connections, and its recent runs, driven by the
// keyboard alone (arrows, Enter, Escape).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import { can, type Role, type Session } from "./api";
import { must, navigate } from "./ui";

interface Item {
  kind: string;
  label: string;
  detail?: string;
  to: string;
}

/** score is how well query matches text as a subsequence: higher is better; -1 is no match. */
export function score(query: string, text: string): number {
  const q = query.toLowerCase();
  const t = text.toLowerCase();
  if (q === "") return 0;
  let at = 0;
  let total = 0;
  let run = 0;
  for (const ch of q) {
    const i = t.indexOf(ch, at);
    if (i < 0) return -1;
    run = i === at ? run + 1 : 0; // consecutive letters count more
    total += 1 + run * 2 + (i === 0 || /[.\s/_-]/.test(t[i - 1]) ? 3 : 0);
    at = i + 1;
  }
  return total - t.length * 0.01;
}

function pages(role: Role): Item[] {
  const all: Item[] = [
    { kind: "Page", label: "Actions", to: "/actions" },
    { kind: "Page", label: "Runs", to: "/runs" },
    { kind: "Page", label: "Connections", to: "/connections" },
    { kind: "Page", label: "Health", to: "/health" },
    { kind: "Page", label: "Marketplace", to: "/marketplace" },
    { kind: "Page", label: "Installed templates", to: "/installations" },
    { kind: "Page", label: "Usage and budgets", to: "/usage" },
  ];
  if (can(role, "admin")) {
    all.push({ kind: "Page", label: "Keys", to: "/keys" }, { kind: "Page", label: "Audit log", to: "/audit" }, { kind: "Page", label: "Settings", to: "/settings" });
  }
  return all;
}

export function Palette(p: { session: Session; role: Role; onClose: () => void }) {
  const [query, setQuery] = useState("");
  const [items, setItems] = useState<Item[]>(pages(p.role));
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    input.current?.focus();
    const api = p.session.api;
    Promise.allSettled([
      must(api.GET("/v1/actions")).then((l) =>
        l.data.map((a): Item => ({ kind: "Action", label: a.id, detail: a.title, to: `/actions/${encodeURIComponent(a.id)}` })),
      ),
      must(api.GET("/v1/connections", { params: { query: { limit: 200 } } })).then((l) =>
        l.data.map((c): Item => ({ kind: "Connection", label: c.name, detail: c.connector, to: `/connections/${encodeURIComponent(c.id)}` })),
      ),
      must(api.GET("/v1/runs", { params: { query: { limit: 20 } } })).then((l) =>
        l.data.map((r): Item => ({ kind: "Run", label: r.id, detail: `${r.action} · ${r.status}`, to: `/runs/${encodeURIComponent(r.id)}` })),
      ),
    ]).then((results) => {
      const more = results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
      setItems([...pages(p.role), ...more]);
    });
  }, []);

  const shown = useMemo(() => {
    return items
      .map((it) => ({ it, s: Math.max(score(query, it.label), score(query, `${it.kind} ${it.label} ${it.detail ?? ""}`) - 1) }))
      .filter((x) => x.s >= 0)
      .sort((a, b) => b.s - a.s)
      .slice(0, 30)
      .map((x) => x.it);
  }, [items, query]);
  const current = Math.min(active, Math.max(shown.length - 1, 0));

  const go = (it: Item | undefined) => {
    if (!it) return;
    p.onClose();
    navigate(it.to);
  };

  return (
    <div class="palette-backdrop" onClick={(e) => e.target === e.currentTarget && p.onClose()}>
      <div class="palette" role="dialog" aria-modal="true" aria-label="Go to">
        <input
          ref={input}
          type="text"
          role="combobox"
          aria-label="Go to a page, action, connection or run"
          aria-expanded="true"
          aria-controls="palette-list"
          aria-activedescendant={shown.length ? `palette-${current}` : undefined}
          aria-autocomplete="list"
          placeholder="Go to…"
          value={query}
          onInput={(e) => {
            setQuery(e.currentTarget.value);
            setActive(0);
          }}
          onKeyDown={(e) => {
            if (e.key === "ArrowDown") {
              e.preventDefault();
              setActive((current + 1) % Math.max(shown.length, 1));
            } else if (e.key === "ArrowUp") {
              e.preventDefault();
              setActive((current - 1 + shown.length) % Math.max(shown.length, 1));
            } else if (e.key === "Enter") {
              e.preventDefault();
              go(shown[current]);
            } else if (e.key === "Escape") {
              e.preventDefault();
              p.onClose();
            }
          }}
        />
        <ul id="palette-list" role="listbox" aria-label="Matches">
          {shown.map((it, i) => (
            <li
              key={it.kind + it.to}
              id={`palette-${i}`}
              role="option"
              aria-selected={i === current}
              onMouseMove={() => setActive(i)}
              onClick={() => go(it)}
            >
              <span class="kind">{it.kind}</span> {it.label} {it.detail ? <span class="muted">{it.detail}</span> : null}
            </li>
          ))}
          {shown.length === 0 ? <li class="muted" role="presentation">Nothing matches.</li> : null}
        </ul>
      </div>
    </div>
  );
}
