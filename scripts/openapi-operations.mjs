// Prints the operations of the built API's OpenAPI document, one line each (method, path, public or not, the
// response statuses and the component each refers to), sorted: diff two builds to see what a change did to
// the API. `npm run build && node scripts/openapi-operations.mjs [dist]` (dist/http/app.js, or dist/api/app.js
// in builds before the restructure).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = path.resolve(process.argv[2] ?? 'dist');
const module = ['http/app.js', 'api/app.js'].map((p) => path.join(dist, p)).find((p) => existsSync(p));
if (!module) throw new Error(`no http/app.js or api/app.js under ${dist}: run npm run build first`);
const { createApi } = await import(pathToFileURL(module).href);
// The document is served without touching a service; any call to one would be a bug in this script.
const services = new Proxy(
  {},
  {
    get: (_, name) => {
      throw new Error(`the document asked for services.${String(name)}`);
    },
  },
);
const doc = await (await createApi(services).request('/api/openapi.json')).json();

/** The component a response refers to: the response itself, or its JSON schema. */
const ref = (response) => {
  const target = response?.$ref ?? response?.content?.['application/json']?.schema?.$ref;
  return target ? `(${target.split('/').pop()})` : '';
};
const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const lines = [];
for (const [p, item] of Object.entries(doc.paths)) {
  for (const [method, op] of Object.entries(item)) {
    if (!METHODS.has(method)) continue; // path-level `parameters`, `summary`: not operations
    const access = op.security && op.security.length === 0 ? 'public' : 'auth';
    const statuses = Object.entries(op.responses ?? {}).map(([status, r]) => `${status}${ref(r)}`);
    lines.push(`${method.toUpperCase()} ${p} ${access} ${statuses.join(' ')}`);
  }
}
console.log(`openapi ${doc.openapi}; ${lines.length} operations`);
for (const line of lines.sort()) console.log(line);
