// Makes a Postman collection of Relay's API from the OpenAPI document with
// openapi-to-postmanv2, one request per operation (folders by tag), and
// gives every request a test: the server answers with a status the
// document gives that operation, and JSON (or a problem document, or the
// type the document says). TestPostmanCollection (cmd/relay) runs it with
// newman against a real server.
//
// Usage: node postman/collection.mjs OUT.json
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Converter = require('openapi-to-postmanv2');

const [out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node postman/collection.mjs OUT.json');
  process.exit(2);
}
const spec = readFileSync(new URL('../../../schemas/openapi.json', import.meta.url), 'utf8');
const doc = JSON.parse(spec);

// The statuses and media types of each operation, by method and path.
const expected = {};
for (const [path, item] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(item)) {
    if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
    const codes = Object.keys(op.responses).map(Number);
    const types = [...new Set(Object.values(op.responses).flatMap((r) => {
      const resp = r.$ref ? doc.components.responses[r.$ref.split('/').pop()] : r;
      return Object.keys(resp.content ?? {});
    }))];
    expected[`${method.toUpperCase()} ${path}`] = { codes, types };
  }
}

const options = { folderStrategy: 'Tags', requestParametersResolution: 'Example', exampleParametersResolution: 'Example' };
Converter.convert({ type: 'string', data: spec }, options, (err, result) => {
  if (err || !result.result) {
    console.error('conversion failed:', err ?? result.reason);
    process.exit(1);
  }
  const collection = result.output[0].data;
  const seen = new Set();
  const visit = (items) => {
    for (const it of items) {
      if (it.item) { visit(it.item); continue; }
      const path = '/' + it.request.url.path.map((p) => p.replace(/^:(.+)$/, '{$1}')).join('/');
      const op = `${it.request.method} ${path}`;
      if (!expected[op] || seen.has(op)) {
        console.error(`a request of no operation, or of one already seen: ${op} (${it.name})`);
        process.exit(1);
      }
      seen.add(op);
      const { codes, types } = expected[op];
      it.event = [{
        listen: 'test',
        script: {
          type: 'text/javascript',
          exec: [
            `const op = ${JSON.stringify(op)};`,
            `pm.test(op + ' answers a documented status', () => pm.expect(${JSON.stringify(codes)}).to.include(pm.response.code));`,
            `const type = (pm.response.headers.get('Content-Type') || '').split(';')[0].trim();`,
            `if (pm.response.code !== 204 && pm.response.code !== 429) pm.test(op + ' answers a documented type', () => pm.expect(${JSON.stringify([...types, 'application/problem+json'])}).to.include(type));`,
          ],
        },
      }];
    }
  };
  visit(collection.item);
  if (seen.size !== Object.keys(expected).length) {
    console.error(`${seen.size} requests for ${Object.keys(expected).length} operations`);
    process.exit(1);
  }
  writeFileSync(out, JSON.stringify(collection, null, 2));
  console.log(JSON.stringify({ requests: seen.size }));
});
