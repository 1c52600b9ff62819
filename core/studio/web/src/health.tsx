// Health: the golden signals (traffic, errors, latency, saturation) of
// the server answering, read from its own /metrics every few seconds; the
// rates are the differences between two reads.
import { useEffect, useState } from "preact/hooks";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** parseMetrics reads the Prometheus text format's samples. */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

interface Read {
  at: number;
  requests: number;
  errors: number; // 5xx
  buckets: Map<number, number>; // le -> count, summed over routes
  goroutines: number;
  fds: number;
  maxFds: number;
  rss: number;
  runs: number;
  runErrors: number;
}

function read(samples: Sample[]): Read {
  const r: Read = { at: Date.now(), requests: 0, errors: 0, buckets: new Map(), goroutines: 0, fds: 0, maxFds: 0, rss: 0, runs: 0, runErrors: 0 };
  for (const s of samples) {
    switch (s.name) {
      case "relay_http_requests_total":
        r.requests += s.value;
        if (s.labels.status?.startsWith("5")) r.errors += s.value;
        break;
      case "relay_http_request_duration_seconds_bucket": {
        const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
        r.buckets.set(le, (r.buckets.get(le) ?? 0) + s.value);
        break;
      }
      case "go_goroutines": r.goroutines = s.value; break;
      case "process_open_fds": r.fds = s.value; break;
      case "process_max_fds": r.maxFds = s.value; break;
      case "process_resident_memory_bytes": r.rss = s.value; break;
      case "action_exec_total": r.runs += s.value; break;
      case "action_error_total": r.runErrors += s.value; break;
    }
  }
  return r;
}

/** p95 of the requests between two reads, from the histogram's buckets: the bound of the bucket it falls in. */
function p95(a: Read, b: Read): number | null {
  const les = [...b.buckets.keys()].sort((x, y) => x - y);
  const total = (b.buckets.get(Infinity) ?? 0) - (a.buckets.get(Infinity) ?? 0);
  if (total <= 0) return null;
  for (const le of les) {
    if ((b.buckets.get(le) ?? 0) - (a.buckets.get(le) ?? 0) >= 0.95 * total) return le;
  }
  return null;
}

function fmtSeconds(s: number | null): string {
  if (s === null) return "no requests";
  if (s === Infinity) return "over the largest bucket";
  return s < 1 ? `≤ ${Math.round(s * 1000)} ms` : `≤ ${s} s`;
}

export function HealthPage() {
  const [reads, setReads] = useState<Read[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    const tick = async () => {
      try {
        const resp = await fetch("/metrics");
        if (!resp.ok) throw new Error(`/metrics answered ${resp.status}`);
        const r = read(parseMetrics(await resp.text()));
        if (live) setReads((prev) => [...prev.slice(-1), r]);
      } catch (err) {
        if (live) setError(String(err));
      }
    };
    tick();
    const timer = setInterval(tick, 5000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);

  const [a, b] = reads.length === 2 ? reads : [undefined, reads[0]];
  const secs = a && b ? (b.at - a.at) / 1000 : 0;
  const rate = (f: (r: Read) => number) => (a && b && secs > 0 ? (f(b) - f(a)) / secs : null);
  const reqs = rate((r) => r.requests);
  const errs = rate((r) => r.errors);
  return (
    <section>
      <h1>Health</h1>
      <p class="muted">This server's own metrics (<code>/metrics</code>), read every 5 seconds; rates over the last interval.</p>
      {error ? <p class="error" role="alert">{error}</p> : null}
      {!b ? <p class="loading">Reading…</p> : (
        <div class="tiles">
          <div class="tile">
            <h2>Traffic</h2>
            <p class="big">{reqs === null ? "…" : `${reqs.toFixed(1)} req/s`}</p>
            <p class="muted">{b.requests} requests since start; {b.runs} executions</p>
          </div>
          <div class="tile">
            <h2>Errors</h2>
            <p class="big">{errs === null || reqs === null ? "…" : reqs > 0 ? `${((100 * errs) / reqs).toFixed(2)} %` : "0 %"}</p>
            <p class="muted">5xx answers; {b.errors} since start; {b.runErrors} failed executions</p>
          </div>
          <div class="tile">
            <h2>Latency</h2>
            <p class="big">{a ? fmtSeconds(p95(a, b)) : "…"}</p>
            <p class="muted">95th percentile of the requests in the interval</p>
          </div>
          <div class="tile">
            <h2>Saturation</h2>
            <p class="big">{b.maxFds ? `${((100 * b.fds) / b.maxFds).toFixed(1)} % fds` : `${b.fds} fds`}</p>
            <p class="muted">{b.goroutines} goroutines; {(b.rss / (1 << 20)).toFixed(0)} MiB resident</p>
          </div>
        </div>
      )}
    </section>
  );
}
