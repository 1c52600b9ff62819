// Follows one run's events with the npm eventsource package, a WHATWG
// EventSource, as a browser or a Node program would, and prints as JSON
// what it saw: each "status" event (id and the run's status), every
// connection it made, the errors it reported, and its final readyState.
//
// Usage: node follow.mjs URL KEY
//
// It waits for the client to stop on its own (readyState CLOSED), then
// a while longer than the client's reconnection delay (3 s by default),
// so that a client that was not really stopped shows up as one more
// connection. It gives up after 60 s.
import { EventSource } from 'eventsource';

const [url, key] = process.argv.slice(2);
if (!url || !key) {
  console.error('usage: node follow.mjs URL KEY');
  process.exit(2);
}

const seen = { events: [], connections: [], errors: [], readyState: -1 };
const es = new EventSource(url, {
  fetch: (input, init) => {
    seen.connections.push({ lastEventId: init.headers['Last-Event-ID'] ?? null });
    return fetch(input, { ...init, headers: { ...init.headers, Authorization: `Bearer ${key}` } });
  },
});
es.addEventListener('status', (e) => {
  seen.events.push({ id: e.lastEventId, status: JSON.parse(e.data).status });
});

const stopped = new Promise((resolve) => {
  es.addEventListener('error', (e) => {
    seen.errors.push({ code: e.code ?? null, message: e.message ?? null });
    if (es.readyState === EventSource.CLOSED) resolve();
  });
});
const giveUp = setTimeout(() => {
  seen.readyState = es.readyState;
  console.log(JSON.stringify(seen));
  console.error('the client did not stop within 60 s');
  process.exit(1);
}, 60_000);

await stopped;
await new Promise((resolve) => setTimeout(resolve, 4_000));
clearTimeout(giveUp);
seen.readyState = es.readyState;
es.close();
console.log(JSON.stringify(seen));
