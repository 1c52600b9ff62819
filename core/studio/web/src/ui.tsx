// What every page shares: routing under /studio, links, loading.
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

import { ProblemError, type Action, type Problem } from "./api";

export const base = "/studio";

// Routing: the path under /studio, kept in the History API; links are
// ordinary <a href>s that navigate without a reload.
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const onPop = () => setPath(location.pathname);
    addEventListener("popstate", onPop);
    addEventListener("relay:navigate", onPop);
    return () => {
      removeEventListener("popstate", onPop);
      removeEventListener("relay:navigate", onPop);
    };
  }, []);
  return path.startsWith(base) ? path.slice(base.length) || "/" : "/";
}

export function navigate(to: string): void {
  history.pushState(null, "", base + to);
  dispatchEvent(new Event("relay:navigate"));
}

export function Link(p: { to: string; children: ComponentChildren; class?: string; current?: boolean }) {
  return (
    <a
      href={base + p.to}
      class={p.class}
      aria-current={p.current ? "page" : undefined}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(p.to);
      }}
    >
      {p.children}
    </a>
  );
}

export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { data?: T; error?: string } {
  const [state, setState] = useState<{ data?: T; error?: string }>({});
  useEffect(() => {
    let live = true;
    load()
      .then((data) => live && setState({ data }))
      .catch((err) => live && setState({ error: String(err instanceof ProblemError ? err.message : err) }));
    return () => {
      live = false;
    };
  }, deps);
  return state;
}

export async function must<T>(p: Promise<{ data?: T; error?: Problem }>): Promise<T> {
  const { data, error } = await p;
  if (error) throw new ProblemError(error);
  return data as T;
}

export function SideEffect(p: { a: Action }) {
  return (
    <span class={`badge se-${p.a.side_effect}`}>
      {p.a.side_effect}
      {p.a.requires_confirmation ? " · confirm" : ""}
    </span>
  );
}

export function Status(p: { s: string }) {
  return <span class={`badge st-${p.s}`}>{p.s}</span>;
}


/** A list read a cursor page at a time: the first page when deps change, the next on more(). */
export function usePages<T>(
  fetchPage: (cursor: string | null) => Promise<{ data: T[]; next_cursor?: string | null }>,
  deps: unknown[],
) {
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const load = async (after: string | null) => {
    setLoading(true);
    try {
      const page = await fetchPage(after);
      setItems((prev) => (after ? [...prev, ...page.data] : page.data));
      setCursor(page.next_cursor ?? null);
      setError(null);
    } catch (err) {
      setError(String(err instanceof ProblemError ? err.message : err));
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    load(null);
  }, deps);
  return { items, setItems, error, loading, hasMore: cursor !== null, more: () => load(cursor), reload: () => load(null) };
}
