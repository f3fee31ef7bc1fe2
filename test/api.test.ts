import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { MAX_PAGE } from '../src/features/requests/service.js';
import type { Services } from '../src/features/services.js';
import { contentDisposition, downloadContentType } from '../src/features/shared/download.js';
import { createApi, openApiDocument as generate } from '../src/http/app.js';
import { loadConfig } from '../src/kernel/env.js';
import { ERROR_HELP, MailintakeError } from '../src/kernel/errors.js';
import { generatedName, INJECTED, inject } from './kit/file-names.js';
import { buildMail } from './kit/mails.js';
import { prng } from './kit/prng.js';
import { appendImap, deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { freshConfig } from './support/engines.js';
import { checkResponses, declaredOperations, type ResponseChecks } from './support/openapi-check.js';

const PASSWORD = 'Correct-Horse-Battery-9';

const validMailbox = {
  name: 'support',
  protocol: 'imap',
  server: '127.0.0.1',
  // Nothing listens on port 1: `test` and `fetch` must answer CONNECT_FAILED.
  port: 1,
  starttls: false,
  username: 'helpdesk',
  password: PASSWORD,
  emailAddress: 'help@example.com, support@example.com',
};

let dataDir: string;
let rt: Runtime;
let app: ReturnType<typeof createApi>;
let key: string;
/** Every answer the API tests receive is checked against the route's declared status and schema. */
let checks: ResponseChecks;
/** How many calls went to `app` (the others go to apps of their own, checked by checkers of their own). */
let mainAppCalls = 0;
const logged: string[] = [];
/** Every response body seen, to check at the end that the password never left the server. */
const bodies: string[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-api-'));
  rt = await openRuntime(loadConfig({ MAILINTAKE_DATA_DIR: dataDir, MAILINTAKE_LOG_LEVEL: 'silent' }));
  key = (await rt.services.apiKeys.create('api-test')).key;
  app = createApi(rt.services, {
    logger: { error: (msg, fields) => logged.push(JSON.stringify({ msg, fields })) },
  });
  checks = checkResponses(app);
});

/**
 * The generated document, read at collection time by the tests generated from it (no service is called to build
 * it: the routes only declare themselves).
 */
// biome-ignore lint/suspicious/noExplicitAny: the document is walked as plain JSON
const openApiDocument: any = generate(createApi({} as Services));

afterAll(async () => {
  await rt?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the matchers, not by types
type AnyJson = any;

async function call(
  method: string,
  url: string,
  opts: { body?: unknown; rawBody?: string; auth?: string | null; target?: Hono } = {},
): Promise<{ status: number; headers: Headers; text: string; json: () => AnyJson }> {
  const headers: Record<string, string> = {};
  const auth = opts.auth === undefined ? `Bearer ${key}` : opts.auth;
  if (auth !== null) headers.Authorization = auth;
  let body: string | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const target = opts.target ?? app;
  if (target === app) mainAppCalls++;
  const res = await target.request(url, { method, headers, body });
  const text = await res.text();
  bodies.push(text);
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

function expectSecurityHeaders(headers: Headers): void {
  expect(headers.get('x-content-type-options')).toBe('nosniff');
  expect(headers.get('cache-control')).toBe('no-store');
}

describe('authentication', () => {
  it('answers 401 UNAUTHORIZED without a key, with a wrong key and with a malformed header', async () => {
    for (const auth of [null, 'Bearer wrong-key', `Basic ${key}`, 'Bearer', `Bearer ${key}x`]) {
      const res = await call('GET', '/api/v1/mailboxes', { auth });
      expect(res.status).toBe(401);
      expect(res.json()).toMatchObject({ error: 'UNAUTHORIZED', details: {} });
      expect(typeof res.json().message).toBe('string');
      expectSecurityHeaders(res.headers);
    }
  });

  it('does not reveal which routes exist: unknown routes under /api/v1 are 401 without a key, 404 with one', async () => {
    expect((await call('GET', '/api/v1/no-such-route', { auth: null })).status).toBe(401);
    expect((await call('GET', '/api/v1', { auth: null })).status).toBe(401);
    const known = await call('GET', '/api/v1/no-such-route');
    expect(known.status).toBe(404);
    expect(known.json()).toMatchObject({ error: 'NOT_FOUND' });
  });

  it('accepts the key created by the service', async () => {
    const res = await call('GET', '/api/v1/mailboxes');
    expect(res.status).toBe(200);
    expectSecurityHeaders(res.headers);
  });
});

describe('OpenAPI document', () => {
  it('is public at /api/openapi.json', async () => {
    const res = await call('GET', '/api/openapi.json', { auth: null });
    expect(res.status).toBe(200);
    expect(res.json().openapi).toBe('3.1.0');
    expect(res.json().components.securitySchemes.bearerAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
  });

  it('describes every route the app registers, and nothing else', () => {
    const registered = new Set(
      app.routes
        .filter((r) => r.method !== 'ALL') // middleware (security headers, authentication)
        .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z]+)/g, '{$1}')}`),
    );
    const documented = new Set(
      Object.entries(openApiDocument.paths as Record<string, object>).flatMap(([p, item]) =>
        Object.keys(item)
          .filter((k) => ['get', 'put', 'post', 'patch', 'delete'].includes(k))
          .map((m) => `${m.toUpperCase()} ${p}`),
      ),
    );
    expect([...documented].sort()).toEqual([...registered].sort());
    expect(registered.size).toBe(57);
  });

  it('lists every error code with the error shape', () => {
    const error = openApiDocument.components.schemas.Error;
    expect([...error.properties.error.enum].sort()).toEqual(Object.keys(ERROR_HELP).sort());
    expect(error.required).toEqual(['error', 'message', 'details']);
    for (const code of Object.keys(ERROR_HELP)) expect(openApiDocument.info.description).toContain(code);
  });
});

/** Every registered route as [METHOD, hono path]. */
const routeList = (): [string, string][] =>
  [...new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`))].map(
    (r) => r.split(' ') as [string, string],
  );

describe('input errors have their own codes (generated from the route list)', () => {
  it('answers 400 INVALID_JSON, with line and column, on every route that takes a body', async () => {
    const withBody = Object.entries(openApiDocument.paths).flatMap(([p, item]) =>
      Object.entries(item as Record<string, { requestBody?: unknown }>)
        .filter(([, op]) => op?.requestBody !== undefined)
        // a well-formed id (the body is read before the item is looked up), any other path parameter as x
        .map(([m]) => [m.toUpperCase(), p.replace('{id}', '1').replace(/\{[A-Za-z]+\}/g, 'x')] as const),
    );
    expect(withBody.length).toBeGreaterThanOrEqual(8);
    for (const [method, url] of withBody) {
      for (const [raw, where] of [
        [`{"password": "${PASSWORD}",\n oops}`, 'line 2, column 2'],
        ['{"a": 1', 'line 1, column 8'],
      ] as const) {
        const res = await call(method, url, { rawBody: raw });
        expect(res.status, `${method} ${url}`).toBe(400);
        expect(res.json(), `${method} ${url}`).toMatchObject({
          error: 'INVALID_JSON',
          details: { fields: [{ field: '(body)' }] },
        });
        expect(res.json().message).toContain(where);
        expect(res.text).not.toContain(PASSWORD);
      }
    }
  });

  it('answers 400 INVALID_SETTINGS naming the field on every route that takes a body, when a string holds a NUL (PostgreSQL would refuse it where it is stored)', async () => {
    const withBody = Object.entries(openApiDocument.paths).flatMap(([p, item]) =>
      Object.entries(item as Record<string, { requestBody?: unknown }>)
        .filter(([, op]) => op?.requestBody !== undefined)
        .map(([m]) => [m.toUpperCase(), p.replace('{id}', '1').replace(/\{[A-Za-z]+\}/g, 'x')] as const),
    );
    for (const [method, url] of withBody) {
      for (const [body, field] of [
        [{ text: 'a\u0000b' }, 'text'],
        [{ settings: { nested: ['ok', 'x\u0000'] } }, 'settings.nested.1'],
      ] as const) {
        const res = await call(method, url, { body });
        expect(res.status, `${method} ${url}`).toBe(400);
        expect(res.json(), `${method} ${url}`).toMatchObject({
          error: 'INVALID_SETTINGS',
          details: { fields: [{ field, message: 'contains a NUL character (U+0000); remove it' }] },
        });
      }
    }
  });

  const VALID_BODIES: Record<string, unknown> = {
    'PUT /api/v1/requests/:id/status': { status: 'closed' },
    'PUT /api/v1/requests/:id/assignee': { assignee: null },
    'POST /api/v1/requests/:id/replies': { text: 'Hello' },
  };
  it('answers 400 INVALID_ID naming the id on every route with an id in the path, and NOT_FOUND for a well-formed unknown one', async () => {
    const withId = routeList().filter(([, p]) => p.includes(':id'));
    expect(withId.length).toBe(13);
    for (const [method, path] of withId) {
      for (const bad of ['abc', '0', '-1', '1.5', '1e3', '%201', '0x10', '9999999999999999', "1'OR'1'='1"]) {
        const res = await call(method, path.replace(':id', bad));
        expect(res.status, `${method} ${path} ${bad}`).toBe(400);
        const body = res.json();
        expect(body.error, `${method} ${path} ${bad}`).toBe('INVALID_ID');
        expect(body.details.parameter).toBe('id');
        expect(body.message).toMatch(/^the [a-z ]+ id in the path must be a positive whole number/);
      }
      // a route that takes a body gets a valid one, so the only thing wrong is the id
      const body = VALID_BODIES[`${method} ${path}`];
      const unknown = await call(method, path.replace(':id', '987654'), body === undefined ? {} : { body });
      expect(unknown.status, `${method} ${path}`).toBe(404);
      expect(unknown.json().error).toBe('NOT_FOUND');
    }
  });
});

describe('list filters (generated from the documented query parameters)', () => {
  const lists = Object.entries(openApiDocument.paths).flatMap(([p, item]) => {
    const get = (item as { get?: { parameters?: { name: string; in: string; schema: AnyJson }[] } }).get;
    const query = (get?.parameters ?? []).filter((x) => x.in === 'query');
    // a list is what pages: the routes with a limit
    return query.some((x) => x.name === 'limit') ? [{ path: p, query }] : [];
  });
  const PAGING = new Set(['limit', 'offset', 'before']);
  /** Filters that search rather than name something: matching nothing is an empty page (issue 12 §5). */
  const SEARCHES = new Set(['requester', 'q']);
  /** Filters that take a value of a given form (a date), not a name: a malformed one is a bad value (400). */
  const FORMS = new Set(['since', 'until']);

  it('covers every list', () => {
    expect(lists.map((l) => l.path).sort()).toEqual([
      '/api/v1/error-mails',
      '/api/v1/log',
      '/api/v1/notifications',
      '/api/v1/requests',
      '/api/v1/system-log',
    ]);
  });

  it('answers 400 naming the parameter for a NUL in any documented query parameter; a NUL in the path names nothing (404)', async () => {
    for (const { path, query } of lists) {
      // q, the full-text search, takes any text as words, NUL included (requests-work.test.ts)
      for (const q of query.filter((x) => x.name !== 'q')) {
        const res = await call('GET', `${path}?${encodeURIComponent(q.name)}=a%00b`);
        expect(res.status, `${path}?${q.name}`).toBe(400);
        expect(res.json(), `${path}?${q.name}`).toMatchObject({
          error: 'INVALID_SETTINGS',
          details: { fields: [{ field: q.name, message: 'contains a NUL character (U+0000); remove it' }] },
        });
      }
    }
    const path = await call('GET', '/api/v1/mailboxes/a%00b');
    expect(path.status).toBe(404);
    expect(path.json()).toMatchObject({
      error: 'NOT_FOUND',
      message: 'nothing here is named with a NUL character (U+0000)',
    });
  });

  it('answers a filter naming nothing that exists with an error, never an empty page', async () => {
    let filters = 0;
    for (const { path, query } of lists) {
      for (const param of query.filter((x) => !PAGING.has(x.name))) {
        filters++;
        const res = await call('GET', `${path}?${param.name}=no-such-thing`);
        if (SEARCHES.has(param.name)) {
          expect(res.status, `${path} ${param.name}`).toBe(200);
          expect(res.json().items, `${path} ${param.name}`).toEqual([]);
          continue;
        }
        // an id filter: a word is a bad value (400), an id of nothing a missing item (404)
        if (param.schema.type === 'integer') {
          expect(res.status, `${path} ${param.name}`).toBe(400);
          expect(res.json().error).toBe('INVALID_SETTINGS');
          expect(res.json().message).toContain(param.name);
          const none = await call('GET', `${path}?${param.name}=987654`);
          expect(none.status, `${path} ${param.name}=987654`).toBe(404);
          expect(none.json().error).toBe('NOT_FOUND');
          expect(none.json().message).toContain('987654');
          continue;
        }
        // a value from a closed set is a bad value (400); a name of a mailbox or portal is a missing item (404)
        const closed = Array.isArray(param.schema.enum) || FORMS.has(param.name);
        expect(res.status, `${path} ${param.name}`).toBe(closed ? 400 : 404);
        expect(res.json().error).toBe(closed ? 'INVALID_SETTINGS' : 'NOT_FOUND');
        expect(res.json().message).toContain(closed ? param.name : 'no-such-thing');
      }
      const typo = await call('GET', `${path}?mailbx=support`);
      expect(typo.status, path).toBe(400);
      expect(typo.json().details.fields).toEqual([
        { field: '(query)', message: expect.stringMatching(/^unknown field: mailbx/) },
      ]);
    }
    expect(filters).toBe(17);
  });

  it('reads a query parameter given twice with its first value, on every list', async () => {
    for (const { path } of lists) {
      const res = await call('GET', `${path}?limit=1&limit=2`);
      expect(res.status, `${path}: ${res.text}`).toBe(200);
      expect(res.json().limit).toBe(1);
    }
  });

  it('accepts the one limit, 1 to MAX_PAGE, on every list, and refuses more', async () => {
    for (const { path } of lists) {
      const max = await call('GET', `${path}?limit=${MAX_PAGE}`);
      expect(max.status, `${path}: ${max.text}`).toBe(200);
      expect(max.json().limit).toBe(MAX_PAGE);
      expect((await call('GET', `${path}?limit=${MAX_PAGE + 1}`)).status).toBe(400);
    }
  });
});

describe('mailboxes', () => {
  it('rejects a mailbox missing several fields with 400 INVALID_SETTINGS naming each field', async () => {
    const res = await call('POST', '/api/v1/mailboxes', {
      body: { name: 'incomplete', protocol: 'pop9', password: PASSWORD },
    });
    expect(res.status).toBe(400);
    const body = res.json();
    expect(body.error).toBe('INVALID_SETTINGS');
    const fields = body.details.fields.map((f: { field: string }) => f.field);
    for (const f of ['protocol', 'server', 'username', 'emailAddress']) expect(fields).toContain(f);
    expect(res.text).not.toContain(PASSWORD);
  });

  it('answers 400 INVALID_JSON with field (body) for a body that is not JSON, without quoting it', async () => {
    const res = await call('POST', '/api/v1/mailboxes', { rawBody: `{"password": "${PASSWORD}", oops` });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({
      error: 'INVALID_JSON',
      details: { fields: [{ field: '(body)' }] },
    });
    expect(res.text).not.toContain(PASSWORD);
    const notObject = await call('POST', '/api/v1/mailboxes', { body: [1, 2] });
    expect(notObject.status).toBe(400);
    expect(notObject.json().error).toBe('INVALID_SETTINGS');
  });

  it('refuses a body over 1 MiB with 400 INVALID_SETTINGS (body)', async () => {
    const res = await call('POST', '/api/v1/mailboxes', {
      body: { ...validMailbox, name: 'x'.repeat(1024 * 1024) },
    });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({
      error: 'INVALID_SETTINGS',
      details: { fields: [{ field: '(body)' }] },
    });
  });

  it('adds a mailbox (201), never returning the password', async () => {
    const res = await call('POST', '/api/v1/mailboxes', { body: validMailbox });
    expect(res.status).toBe(201);
    expect(res.json()).toMatchObject({
      name: 'support',
      portal: 'default',
      passwordSet: true,
      emailAddress: ['help@example.com', 'support@example.com'],
      enabled: true,
    });
    expect(res.text).not.toContain(PASSWORD);
    expect(res.json()).not.toHaveProperty('password');
  });

  it('answers 409 CONFLICT for a taken name', async () => {
    const res = await call('POST', '/api/v1/mailboxes', { body: validMailbox });
    expect(res.status).toBe(409);
    expect(res.json().error).toBe('CONFLICT');
  });

  it('lists and shows mailboxes', async () => {
    const list = await call('GET', '/api/v1/mailboxes');
    expect(list.json().map((m: { name: string }) => m.name)).toEqual(['support']);
    const one = await call('GET', '/api/v1/mailboxes/support');
    expect(one.status).toBe(200);
    expect(one.json()).toMatchObject({ name: 'support', server: '127.0.0.1', port: 1 });
    const missing = await call('GET', '/api/v1/mailboxes/nope');
    expect(missing.status).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'NOT_FOUND', details: {} });
  });

  it('updates a mailbox, keeping the stored password when none is sent', async () => {
    const { password: _omitted, ...withoutPassword } = validMailbox;
    const res = await call('PUT', '/api/v1/mailboxes/support', {
      body: { ...withoutPassword, intervalSeconds: 120 },
    });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ intervalSeconds: 120, passwordSet: true });
  });

  it('disables and enables a mailbox', async () => {
    expect((await call('POST', '/api/v1/mailboxes/support/disable')).json().enabled).toBe(false);
    expect((await call('POST', '/api/v1/mailboxes/support/enable')).json().enabled).toBe(true);
  });

  it('answers 502 CONNECT_FAILED when testing a mailbox nobody listens for', async () => {
    const res = await call('POST', '/api/v1/mailboxes/support/test');
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({
      error: 'CONNECT_FAILED',
      details: { step: 'connect', stepLabel: 'connecting to the server (TCP)' },
    });
    expect(res.json().details.checks).toEqual(
      expect.arrayContaining([expect.stringMatching(/^Does a firewall or proxy between this machine and /)]),
    );
  });

  it('fetch reports an unreachable mailbox in its summary', async () => {
    const res = await call('POST', '/api/v1/fetch', { body: { mailbox: 'support' } });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual([
      expect.objectContaining({
        mailbox: 'support',
        reached: false,
        error: expect.objectContaining({ code: 'CONNECT_FAILED' }),
      }),
    ]);
    const bad = await call('POST', '/api/v1/fetch', { body: { mailbox: 'support', extra: 1 } });
    expect(bad.status).toBe(400);
    const unknown = await call('POST', '/api/v1/fetch', { body: { mailbox: 'nope' } });
    expect(unknown.status).toBe(404);
  });

  it('removes a mailbox (204), after which it is 404', async () => {
    await call('POST', '/api/v1/mailboxes', { body: { ...validMailbox, name: 'temp' } });
    const res = await call('DELETE', '/api/v1/mailboxes/temp');
    expect(res.status).toBe(204);
    expectSecurityHeaders(res.headers);
    expect((await call('GET', '/api/v1/mailboxes/temp')).status).toBe(404);
  });
});

describe('portals', () => {
  it('lists, adds and changes portals', async () => {
    const list = await call('GET', '/api/v1/portals');
    expect(list.json().map((p: { name: string }) => p.name)).toContain('default');
    const added = await call('POST', '/api/v1/portals', { body: { name: 'it-desk' } });
    expect(added.status).toBe(201);
    expect(added.json()).toMatchObject({ name: 'it-desk', headerThreading: true });
    expect((await call('POST', '/api/v1/portals', { body: { name: 'it-desk' } })).status).toBe(409);
    const patched = await call('PATCH', '/api/v1/portals/it-desk', { body: { headerThreading: false } });
    expect(patched.json()).toMatchObject({ name: 'it-desk', headerThreading: false });
  });

  it('names the bad field of a patch, and 404s an unknown portal', async () => {
    const bad = await call('PATCH', '/api/v1/portals/it-desk', { body: { headerThreading: 'no' } });
    expect(bad.status).toBe(400);
    expect(bad.json().details.fields).toEqual([expect.objectContaining({ field: 'headerThreading' })]);
    const missing = await call('PATCH', '/api/v1/portals/nope', { body: { headerThreading: true } });
    expect(missing.status).toBe(404);
    const empty = await call('PATCH', '/api/v1/portals/it-desk', { body: {} });
    expect(empty.status).toBe(400);
  });

  it('changes the attachment policy field by field, naming every bad field', async () => {
    const patched = await call('PATCH', '/api/v1/portals/it-desk', {
      body: { attachmentPolicy: { maxSizeMb: 10, allowedExtensions: ['pdf', '.PNG'] } },
    });
    expect(patched.status).toBe(200);
    expect(patched.json().attachmentPolicy).toMatchObject({
      maxSizeMb: 10,
      inlineImageMaxSizeMb: 3,
      allowedExtensions: ['pdf', 'png'],
      deniedExtensions: expect.arrayContaining(['exe', 'js']),
    });
    const bad = await call('PATCH', '/api/v1/portals/it-desk', {
      body: { attachmentPolicy: { maxSizeMb: 0, inlineImageMaxSizeMb: -5, skipInlineImageValidation: 'no' } },
    });
    expect(bad.status).toBe(400);
    expect(bad.json().error).toBe('INVALID_SETTINGS');
    expect(
      bad
        .json()
        .details.fields.map((f: { field: string }) => f.field)
        .sort(),
    ).toEqual(['inlineImageMaxSizeMb', 'maxSizeMb', 'skipInlineImageValidation']);
    // nothing was saved
    const list = (await call('GET', '/api/v1/portals')).json();
    expect(list.find((p: { name: string }) => p.name === 'it-desk').attachmentPolicy.maxSizeMb).toBe(10);
    const notObject = await call('PATCH', '/api/v1/portals/it-desk', { body: { attachmentPolicy: [1] } });
    expect(notObject.status).toBe(400);
  });

  it('lists the system log and validates its query', async () => {
    const res = await call('GET', '/api/v1/system-log?category=attachment-dropped&limit=5');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ items: expect.any(Array), limit: 5, offset: 0 });
    expect((await call('GET', '/api/v1/system-log?category=DROP%20TABLE')).status).toBe(400);
  });
});

describe('requests, attachments and the intake log', () => {
  it('lists requests (an empty page) and validates the query', async () => {
    const res = await call('GET', '/api/v1/requests?limit=10&offset=0&portal=default');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ items: [], total: 0, limit: 10, offset: 0 });
    const bad = await call('GET', '/api/v1/requests?limit=0&offset=-1');
    expect(bad.status).toBe(400);
    expect(
      bad
        .json()
        .details.fields.map((f: { field: string }) => f.field)
        .sort(),
    ).toEqual(['limit', 'offset']);
  });

  it('answers 404 NOT_FOUND for an unknown request and 400 for an id that is not a number', async () => {
    const res = await call('GET', '/api/v1/requests/999999');
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ error: 'NOT_FOUND', details: {} });
    const bad = await call('GET', '/api/v1/requests/1%20OR%201=1');
    expect(bad.status).toBe(400);
    expect(bad.json().details.fields[0].field).toBe('id');
  });

  it('answers 404 NOT_FOUND for an unknown attachment', async () => {
    const res = await call('GET', '/api/v1/attachments/424242/content');
    expect(res.status).toBe(404);
    expect(res.json().error).toBe('NOT_FOUND');
    expectSecurityHeaders(res.headers);
  });

  it('lists the intake log, filtered, and validates the outcome', async () => {
    const res = await call('GET', '/api/v1/log?mailbox=support&outcome=created&limit=5');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ items: [], limit: 5 });
    const bad = await call('GET', '/api/v1/log?outcome=exploded');
    expect(bad.status).toBe(400);
    expect(bad.json().details.fields[0].field).toBe('outcome');
  });
});

describe('unexpected errors', () => {
  it('answer 500 INTERNAL with a generic message; the real error is only logged, without the API key', async () => {
    const failing: Services = {
      ...rt.services,
      log: {
        ...rt.services.log,
        list: async () => {
          throw new Error('SQLITE_CORRUPT: database disk image is malformed at /var/lib/secret/path');
        },
      },
    };
    const local = createApi(failing, {
      logger: { error: (msg, fields) => logged.push(JSON.stringify({ msg, fields })) },
    });
    // not checked: a 500 is the answer to a fault, which no operation declares
    const res = await call('GET', '/api/v1/log', { target: local });
    expect(res.status).toBe(500);
    expect(res.json()).toEqual({ error: 'INTERNAL', message: expect.any(String), details: {} });
    expect(res.text).not.toContain('SQLITE_CORRUPT');
    const line = logged.find((l) => l.includes('SQLITE_CORRUPT'));
    expect(line).toBeDefined();
    expect(line).not.toContain(key);
  });
});

describe('the store unavailable', () => {
  it('answers 503 STORE_FAILED with its coded message (retry later), not 500 INTERNAL', async () => {
    const failing: Services = {
      ...rt.services,
      log: {
        ...rt.services.log,
        list: async () => {
          throw new MailintakeError('STORE_FAILED', 'the database cannot be reached (ECONNREFUSED)', {
            details: { driverCode: 'ECONNREFUSED' },
          });
        },
      },
    };
    const failingApp = createApi(failing);
    const failingChecks = checkResponses(failingApp);
    const res = await call('GET', '/api/v1/log', { target: failingApp });
    expect(failingChecks).toMatchObject({ checked: 1, violations: [] });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('30');
    expect(res.json()).toMatchObject({
      error: 'STORE_FAILED',
      message: expect.stringContaining('ECONNREFUSED'),
    });
  });
});

describe('attachment download headers', () => {
  it('encodes the file name per RFC 5987 so a sender cannot inject parameters or headers', () => {
    const header = contentDisposition('report"; filename="evil.html\r\nSet-Cookie: a=b.pdf');
    expect(header).not.toMatch(/[\r\n]/);
    // Exactly the two quotes of the fallback's quoted string.
    expect(header.match(/"/g)).toHaveLength(2);
    expect(header.startsWith('attachment; filename="')).toBe(true);
    const encoded = /filename\*=UTF-8''(.*)$/.exec(header)?.[1] ?? '';
    expect(encoded).toMatch(/^[A-Za-z0-9!#$&+.^_`|~%-]+$/);
    expect(decodeURIComponent(encoded)).toBe('report"; filename="evil.html__Set-Cookie: a=b.pdf');
  });

  it('keeps non-ASCII names in filename* and gives an ASCII fallback', () => {
    const header = contentDisposition('Übersicht (März) 100%.pdf');
    expect(header).toBe(
      `attachment; filename="Ubersicht (Marz) 100_.pdf"; filename*=UTF-8''${'%C3%9Cbersicht%20%28M%C3%A4rz%29%20100%25.pdf'}`,
    );
    expect(contentDisposition('../../etc/passwd')).toContain('filename=".._.._etc_passwd"');
    expect(contentDisposition('')).toContain('filename="attachment"');
  });

  /** RFC 6266: the quoted fallback (printable ASCII without `"`, `\\`, `/`, `%`), then RFC 8187's ext-value. */
  const DISPOSITION =
    /^attachment; filename="([\x20\x21\x23-\x24\x26-\x2e\x30-\x5b\x5d-\x7e]+)"; filename\*=UTF-8''((?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})+)$/;

  it('round-trips 2,000 generated international names through filename*, with a readable ASCII fallback', () => {
    const rand = prng(6266);
    for (let i = 0; i < 2000; i++) {
      const name = generatedName(rand).trim();
      const header = contentDisposition(name);
      const m = DISPOSITION.exec(header);
      expect(m, header).not.toBeNull();
      expect(decodeURIComponent(m?.[2] ?? ''), header).toBe(name);
    }
    expect(contentDisposition('Capture d’e\u0301cran 2024-03-01 a\u0300 10.00.00.png')).toBe(
      `attachment; filename="Capture d_ecran 2024-03-01 a 10.00.00.png"; filename*=UTF-8''Capture%20d%E2%80%99e%CC%81cran%202024-03-01%20a%CC%80%2010.00.00.png`,
    );
    // NFKD turns fullwidth "：" into ":" and "／" into "/"; the "/" must still not reach the fallback
    expect(contentDisposition('会议：纪要／最终.docx')).toMatch(/^attachment; filename="__:_____\.docx"; /);
  });

  it('never lets a hostile name out raw: every unsafe element at any position, and unpaired surrogates', () => {
    const rand = prng(8187);
    for (const [rule, elements] of INJECTED) {
      for (const element of elements) {
        for (let i = 0; i < 10; i++) {
          const { name } = inject(generatedName(rand), element, rand);
          const header = contentDisposition(name);
          expect(header, `${rule} ${JSON.stringify(name)}`).toMatch(DISPOSITION);
          const shown = decodeURIComponent(DISPOSITION.exec(header)?.[2] ?? '');
          // what a browser saves: no control, separator, bidi or invisible character survives
          expect(shown, JSON.stringify(name)).not.toMatch(
            /[\p{Cc}\p{Zl}\p{Zp}/\\\u061C\u200B\u200E\u200F\u202A-\u202E\u2060-\u2069\uFEFF]/u,
          );
        }
      }
    }
    expect(contentDisposition('a\uD800b.pdf')).toBe(
      `attachment; filename="a_b.pdf"; filename*=UTF-8''a%EF%BF%BDb.pdf`,
    );
    expect(contentDisposition('invoice\u202Egpj.exe')).toBe(
      `attachment; filename="invoice_gpj.exe"; filename*=UTF-8''invoice_gpj.exe`,
    );
  });

  it('never serves active content types', () => {
    for (const t of [
      'text/html',
      'TEXT/HTML; charset=utf-8',
      'image/svg+xml',
      'application/xhtml+xml',
      'text/xml',
      'application/xml',
      'application/rss+xml',
    ]) {
      expect(downloadContentType(t)).toBe('application/octet-stream');
    }
    expect(downloadContentType('text/plain\r\nX-Evil: 1')).toBe('application/octet-stream');
    expect(downloadContentType('not a type')).toBe('application/octet-stream');
    expect(downloadContentType('application/pdf')).toBe('application/pdf');
    expect(downloadContentType('image/png; name="a.png"')).toBe('image/png');
  });
});

describe('with a real mailbox (Dovecot)', () => {
  let dovecot: DovecotServer;
  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'apiuser', password: 'api-user-pw' }] });
  });
  afterAll(async () => {
    await dovecot?.stop();
  });

  it('fetches a mail and serves its attachment as a download that cannot run in the browser', async () => {
    const html = Buffer.from('<script>alert(document.cookie)</script>');
    // The sender picks the file name: a quote and CR/LF must not reach our headers raw.
    const evilName = 'invoice".html';
    // buildMail quotes the name as is; a quoted-pair (RFC 5322 3.2.4) carries the quote into the MIME header.
    const quotedName = 'invoice\\".html';
    await appendImap(
      dovecot,
      'apiuser',
      buildMail({
        subject: 'Download test',
        attachments: [{ filename: quotedName, contentType: 'text/html', content: html }],
      }),
    );
    const added = await call('POST', '/api/v1/mailboxes', {
      body: {
        name: 'real',
        protocol: 'imap',
        server: dovecot.host,
        port: dovecot.ports.imap,
        starttls: true,
        caFile: dovecot.caFile,
        username: 'apiuser',
        password: 'api-user-pw',
        emailAddress: 'support@example.test',
      },
    });
    expect(added.status).toBe(201);
    const test = await call('POST', '/api/v1/mailboxes/real/test');
    expect(test.status).toBe(200);
    expect(test.json().sample).toMatchObject({ subject: 'Download test' });

    // The attachment checks would drop this name (a quote is not allowed in file names). The download's own
    // defences must hold even where an admin switched the checks off, so this test switches them off.
    const skip = await call('PATCH', '/api/v1/portals/default', {
      body: { attachmentPolicy: { skipAttachmentValidation: true } },
    });
    expect(skip.json().attachmentPolicy).toMatchObject({ skipAttachmentValidation: true, maxSizeMb: 25 });
    const fetched = await call('POST', '/api/v1/fetch', { body: { mailbox: 'real' } });
    expect(fetched.json()).toEqual([expect.objectContaining({ reached: true, fetched: 1, created: 1 })]);
    await call('PATCH', '/api/v1/portals/default', {
      body: { attachmentPolicy: { skipAttachmentValidation: null } },
    });

    const list = await call('GET', '/api/v1/requests');
    const summary = list.json().items.find((r: { subject: string }) => r.subject === 'Download test');
    expect(summary).toBeDefined();
    const detail = (await call('GET', `/api/v1/requests/${summary.id}`)).json();
    const attachment = detail.attachments.find((a: { filename: string }) => a.filename === evilName);
    expect(attachment, JSON.stringify(detail.attachments)).toBeDefined();

    const res = await app.request(`/api/v1/attachments/${attachment.id}/content`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-disposition')).toBe(
      `attachment; filename="invoice_.html"; filename*=UTF-8''invoice%22.html`,
    );
    expect(res.headers.get('content-length')).toBe(String(html.length));
    expectSecurityHeaders(res.headers);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(html);

    const log = (await call('GET', '/api/v1/log?mailbox=real')).json();
    expect(log.items).toEqual([
      expect.objectContaining({ outcome: 'created', requestId: summary.id, rawAvailable: true }),
    ]);
    // The original mail is kept as fetched and can be downloaded byte for byte.
    const raw = await app.request(`/api/v1/log/${log.items[0].id}/raw`, {
      headers: { Authorization: `Bearer ${key}` },
    });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-disposition')).toMatch(/^attachment; filename="mail-\d+\.eml"/);
    const rawText = Buffer.from(await raw.arrayBuffer()).toString('utf8');
    expect(rawText).toContain('Subject: Download test');
    expect(rawText).toContain(html.toString('base64').slice(0, 40));
  });
});

describe('the error folder (real Dovecot, POP3S and IMAP)', () => {
  let dovecot: DovecotServer;
  let efDir: string;
  let efRt: Runtime;
  let efApp: ReturnType<typeof createApi>;
  let efKey: string;
  const line = `${'0123456789'.repeat(7)}\r\n`;
  // over the 1 MB limit this runtime is started with (MAILINTAKE_MAX_MAIL_MB=1): MAIL_TOO_LARGE
  const big = buildMail({
    subject: 'Scanned contract',
    from: 'Erika <erika@example.test>',
    messageId: 'api-big@example.test',
    body: line.repeat(21_000),
  });
  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['apipop', 'apiimap'].map((n) => ({ name: n, password: `${n}-pw` })),
    });
    efDir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-api-ef-'));
    efRt = await openRuntime(
      loadConfig({ MAILINTAKE_DATA_DIR: efDir, MAILINTAKE_LOG_LEVEL: 'silent', MAILINTAKE_MAX_MAIL_MB: '1' }),
    );
    efKey = (await efRt.services.apiKeys.create('error-folder')).key;
    efApp = createApi(efRt.services);
    checkResponses(efApp);
  });
  afterAll(async () => {
    await efRt?.close();
    await dovecot?.stop();
    if (efDir) await rm(efDir, { recursive: true, force: true });
  });

  it("lists error mails, opens a report, serves POP3's kept mail and moves mails to the inbox", async () => {
    const opts = { target: efApp, auth: `Bearer ${efKey}` };
    const mailbox = (name: string, extra: Record<string, unknown>) => ({
      name,
      server: 'localhost',
      username: name,
      password: `${name}-pw`,
      emailAddress: `${name}@example.test`,
      caFile: dovecot.caFile,
      moveToErrorFolder: true,
      ...extra,
    });
    expect(
      (
        await call('POST', '/api/v1/mailboxes', {
          ...opts,
          body: mailbox('apipop', { protocol: 'pops', port: dovecot.ports.pop3s }),
        })
      ).status,
    ).toBe(201);
    const imap = mailbox('apiimap', { protocol: 'imap', port: dovecot.ports.imap, idle: false });
    expect((await call('POST', '/api/v1/mailboxes', { ...opts, body: imap })).json()).toMatchObject({
      moveToErrorFolder: true,
      errorFolder: 'Mailintake Errors',
      errorMails: 0,
      status: 'enabled',
    });
    await deliverMaildir(dovecot, 'apipop', [big]);
    await deliverMaildir(dovecot, 'apiimap', [big]);
    const fetched = await call('POST', '/api/v1/fetch', { ...opts, body: {} });
    expect(fetched.json()).toEqual([
      expect.objectContaining({ mailbox: 'apiimap', errored: 1, movedToErrorFolder: 1 }),
      expect.objectContaining({ mailbox: 'apipop', errored: 1, movedToErrorFolder: 1 }),
    ]);

    const all = await call('GET', '/api/v1/error-mails', opts);
    expect(all.status).toBe(200);
    expect(all.json()).toMatchObject({ total: 2, limit: 50, offset: 0 });
    const pop = (await call('GET', '/api/v1/error-mails?mailbox=apipop', opts)).json().items;
    expect(pop).toEqual([
      expect.objectContaining({
        mailbox: 'apipop',
        errorCode: 'MAIL_TOO_LARGE',
        location: 'kept-locally',
        folder: null,
        status: 'in-error-folder',
        rawAvailable: true,
      }),
    ]);
    const report = await call('GET', `/api/v1/error-mails/${pop[0].id}/report`, opts);
    expect(report.status).toBe(200);
    expect(report.json().report).toMatchObject({
      mailbox: 'apipop',
      mail: { subject: 'Scanned contract', messageId: 'api-big@example.test', size: big.length },
      error: { code: 'MAIL_TOO_LARGE' },
    });

    const raw = await efApp.request(`/api/v1/error-mails/${pop[0].id}/raw`, {
      headers: { Authorization: `Bearer ${efKey}` },
    });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toBe('message/rfc822');
    expect(raw.headers.get('content-disposition')).toMatch(/^attachment; filename="error-mail-\d+\.eml"/);
    expect(raw.headers.get('content-length')).toBe(String(big.length));
    expectSecurityHeaders(raw.headers);
    expect(Buffer.from(await raw.arrayBuffer()).equals(big)).toBe(true);

    // an IMAP error mail lives in the server's error folder: no kept copy to download
    const [imapMail] = (await call('GET', '/api/v1/error-mails?mailbox=apiimap', opts)).json().items;
    expect(imapMail).toMatchObject({
      location: 'server-folder',
      folder: 'Mailintake Errors',
      rawAvailable: false,
    });
    const noRaw = await call('GET', `/api/v1/error-mails/${imapMail.id}/raw`, opts);
    expect(noRaw.status).toBe(404);
    expect(noRaw.json().error).toBe('NOT_FOUND');

    const moved = await call('POST', '/api/v1/mailboxes/apiimap/error-mails/move-to-inbox', opts);
    expect(moved.status).toBe(200);
    expect(moved.json()).toEqual({ mailbox: 'apiimap', moved: [imapMail.id], notFound: [], remaining: 0 });
    expect((await listInbox(dovecot, 'apiimap')).map((m) => m.subject)).toEqual(['Scanned contract']);
    const open = (await call('GET', '/api/v1/error-mails?status=in-error-folder', opts)).json();
    expect(open.items.map((e: { mailbox: string }) => e.mailbox)).toEqual(['apipop']);
    expect((await call('GET', '/api/v1/mailboxes/apiimap', opts)).json().errorMails).toBe(0);

    // bad input and unknown things
    expect((await call('GET', '/api/v1/error-mails?status=lost', opts)).status).toBe(400);
    expect((await call('GET', '/api/v1/error-mails?mailbox=nope', opts)).status).toBe(404);
    expect((await call('GET', '/api/v1/error-mails/999/report', opts)).status).toBe(404);
    expect((await call('GET', '/api/v1/error-mails/abc/report', opts)).status).toBe(400);
    expect((await call('POST', '/api/v1/mailboxes/nope/error-mails/move-to-inbox', opts)).status).toBe(404);
    expect((await call('GET', '/api/v1/error-mails', { ...opts, auth: null })).status).toBe(401);
  });
});

describe('on PostgreSQL', () => {
  let pg: Awaited<ReturnType<typeof freshConfig>>;
  let pgRt: Runtime;
  let pgApp: ReturnType<typeof createApi>;
  let pgKey: string;
  beforeAll(async () => {
    pg = await freshConfig('postgres');
    pgRt = await openRuntime(pg.config);
    pgKey = (await pgRt.services.apiKeys.create('pg')).key;
    pgApp = createApi(pgRt.services, {
      logger: { error: (msg, fields) => logged.push(JSON.stringify({ msg, fields })) },
    });
    checkResponses(pgApp);
  });
  afterAll(async () => {
    await pgRt?.close();
    await pg?.cleanup();
  });

  it('gives the same codes and statuses', async () => {
    const opts = { target: pgApp, auth: `Bearer ${pgKey}` };
    expect((await call('GET', '/api/v1/mailboxes', { ...opts, auth: `Bearer ${key}` })).status).toBe(401);
    expect((await call('POST', '/api/v1/mailboxes', { ...opts, body: validMailbox })).status).toBe(201);
    const dup = await call('POST', '/api/v1/mailboxes', { ...opts, body: validMailbox });
    expect(dup.status).toBe(409);
    expect(dup.json().error).toBe('CONFLICT');
    const invalid = await call('POST', '/api/v1/mailboxes', { ...opts, body: { name: 'x' } });
    expect(invalid.status).toBe(400);
    expect((await call('GET', '/api/v1/mailboxes/support', opts)).json()).toMatchObject({
      passwordSet: true,
    });
    expect((await call('GET', '/api/v1/requests', opts)).json()).toMatchObject({ items: [], total: 0 });
    expect((await call('GET', '/api/v1/requests/77', opts)).status).toBe(404);
    expect((await call('GET', '/api/v1/attachments/77/content', opts)).status).toBe(404);
    expect((await call('GET', '/api/v1/log', opts)).status).toBe(200);
  });
});

describe('secrets', () => {
  it('never put the mailbox password in any response', () => {
    expect(bodies.length).toBeGreaterThan(20);
    for (const b of bodies) expect(b).not.toContain(PASSWORD);
    for (const l of logged) expect(l).not.toContain(PASSWORD);
  });
});

// Last: by now the earlier tests have written system-log entries to page through.
describe('paging', () => {
  it('pages on with before=<last id> on the lists that can be read whole', async () => {
    const all = (await call('GET', `/api/v1/system-log?limit=${MAX_PAGE}`))
      .json()
      .items.map((e: AnyJson) => e.id);
    expect(all.length).toBeGreaterThan(2);
    const rest = await call('GET', `/api/v1/system-log?limit=${MAX_PAGE}&before=${all[1]}`);
    expect(rest.json().items.map((e: AnyJson) => e.id)).toEqual(all.slice(2));
    for (const path of ['/api/v1/log', '/api/v1/requests', '/api/v1/system-log']) {
      expect((await call('GET', `${path}?before=1`)).json().items, path).toEqual([]);
      expect((await call('GET', `${path}?before=0`)).status, path).toBe(400);
    }
  });
});

// Last: every answer the tests above received, against the route's declaration.
describe('answers match their declaration (test/support/openapi-check.ts)', () => {
  it('every answer the API tests received had a declared status and a body that fits its schema', () => {
    expect(checks.violations).toEqual([]);
    // every call() to app, and the downloads asked of app.request directly
    expect(checks.checked).toBeGreaterThanOrEqual(mainAppCalls);
    expect(checks.checked).toBeGreaterThan(100);
  });

  /** An app whose services answer what no declaration allows, to prove that the check catches it. */
  function brokenApp(): ReturnType<typeof createApi> {
    const broken: Services = {
      ...rt.services,
      // a field of the wrong type
      portals: { ...rt.services.portals, list: async () => [{ id: 'one' }] as never },
      // a field the schema does not declare
      apiKeys: rt.services.apiKeys,
      notifications: {
        ...rt.services.notifications,
        unreadCount: async () => ({ unread: 1, secret: 'x' }) as never,
      },
      // a status the operation does not declare (GET /mailboxes/{name} declares 200, 401, 404, 503)
      mailboxes: {
        ...rt.services.mailboxes,
        get: async () => {
          throw new MailintakeError('MAILBOX_BUSY', 'busy');
        },
      },
    };
    const local = createApi(broken);
    checkResponses(local);
    return local;
  }

  it('fails on a body that does not match, an undeclared field and an undeclared status', async () => {
    const local = brokenApp();
    const get = (url: string) => local.request(url, { headers: { Authorization: `Bearer ${key}` } });
    await expect(get('/api/v1/portals')).rejects.toThrow(
      /GET \/api\/v1\/portals → the body does not match its schema: 0\.id/,
    );
    await expect(get('/api/v1/notifications/unread-count')).rejects.toThrow(
      /fields its schema does not declare: secret/,
    );
    await expect(get('/api/v1/mailboxes/support')).rejects.toThrow(/status 409 is not declared/);
    // the same app answers a declared status and a fitting body without complaint
    expect((await get('/api/v1/outbox')).status).toBe(200);
  });

  it('declares every route the app registers, and registers every route it declares', () => {
    const declared = declaredOperations(app).map((o) => `${o.method} ${o.path}`);
    expect(new Set(declared).size).toBe(declared.length);
    expect(declared.sort()).toEqual(
      routeList()
        .map(([m, p]) => `${m} ${p.replace(/:([A-Za-z]+)/g, '{$1}')}`)
        .sort(),
    );
  });
});
