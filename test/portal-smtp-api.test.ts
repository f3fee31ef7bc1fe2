import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import type { Services } from '../src/features/services.js';
import { createApi } from '../src/http/app.js';
import { MailintakeError } from '../src/kernel/errors.js';
import { createLogger } from '../src/kernel/logger.js';
import { openStore, type Store } from '../src/store/db.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { checkResponses, type ResponseChecks } from './support/openapi-check.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * A portal's own outgoing SMTP server over HTTP (in-process, `app.request()`), on both engines, against two real
 * SMTP servers on loopback (the portal's and the instance's, each STARTTLS with its own AUTH PLAIN account): which
 * server is in effect, every bad field named, the password never shown nor logged, the test mail through the
 * server in effect, and the fall-back to the instance's when the portal's is removed.
 */

const PORTAL_PASSWORD = 'Portal-Smtp-Secret-5519';
const INSTANCE_PASSWORD = 'Instance-Smtp-Secret-8820';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the matchers, not by types
type AnyJson = any;

describe.each(ENGINES)('a portal’s own outgoing SMTP server over the API on %s', (engine) => {
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  let app: ReturnType<typeof createApi>;
  /** Every answer is checked against the route's declared status and schema. */
  let checks: ResponseChecks;
  let key: string;
  let portalServer: SmtpTestServer;
  let instanceServer: SmtpTestServer;
  const bodies: string[] = [];
  /** Answers of apps other than the checked one (a fault's 500 is declared by no operation). */
  let unchecked = 0;
  /** The test's own handle on the database, to damage a stored row as a hand edit would. */
  let store: Store;
  let salesId: number;
  /** The API's error log and the runtime's log (at debug): neither may hold a password. */
  const logged: string[] = [];

  beforeAll(async () => {
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config, {
      logger: createLogger('debug', (line) => {
        logged.push(line);
      }),
    });
    key = (await rt.services.apiKeys.create('portal-smtp-test')).key;
    app = createApi(rt.services, {
      logger: { error: (msg, fields) => logged.push(JSON.stringify({ msg, fields })) },
    });
    checks = checkResponses(app);
    portalServer = await startSmtpServer({
      tls: 'starttls',
      auth: { username: 'portal-mailer', password: PORTAL_PASSWORD },
    });
    instanceServer = await startSmtpServer({
      tls: 'starttls',
      auth: { username: 'mailer', password: INSTANCE_PASSWORD },
    });
    const added = await call('POST', '/api/v1/portals', { name: 'sales' });
    expect(added.status).toBe(201);
    salesId = added.json().id;
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
  });

  afterAll(async () => {
    await store?.close();
    await rt?.close();
    await portalServer?.close();
    await instanceServer?.close();
    await cleanup?.();
  });

  async function call(
    method: string,
    url: string,
    body?: unknown,
    target: { request: typeof app.request } = app,
  ): Promise<{ status: number; text: string; json: () => AnyJson }> {
    const headers: Record<string, string> = { Authorization: `Bearer ${key}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await target.request(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    bodies.push(text);
    if (target !== app) unchecked++;
    return { status: res.status, text, json: () => JSON.parse(text) };
  }

  const fieldsOf = (json: AnyJson) => (json.details.fields as { field: string }[]).map((f) => f.field).sort();

  const portalBody = (extra: Record<string, unknown> = {}) => ({
    host: '127.0.0.1',
    port: portalServer.port,
    username: 'portal-mailer',
    password: PORTAL_PASSWORD,
    from: 'Sales <sales-desk@example.test>',
    caFile: portalServer.caFile,
    ...extra,
  });
  const instanceBody = () => ({
    host: '127.0.0.1',
    port: instanceServer.port,
    username: 'mailer',
    password: INSTANCE_PASSWORD,
    from: 'Help Desk <helpdesk@example.test>',
    caFile: instanceServer.caFile,
  });

  it('answers 404 NOT_FOUND naming the portal on every route for a portal that does not exist', async () => {
    const routes: [string, string, unknown?][] = [
      ['GET', '/api/v1/portals/nowhere/smtp'],
      ['PUT', '/api/v1/portals/nowhere/smtp', portalBody()],
      ['DELETE', '/api/v1/portals/nowhere/smtp'],
      ['POST', '/api/v1/portals/nowhere/smtp/test', { to: 'admin@example.test' }],
      ['POST', '/api/v1/portals/nowhere/smtp/oauth/authorize'],
      ['GET', '/api/v1/portals/nowhere/smtp/oauth'],
    ];
    for (const [method, url, body] of routes) {
      const res = await call(method, url, body);
      expect(res.status, `${method} ${url}`).toBe(404);
      expect(res.json(), `${method} ${url}`).toMatchObject({ error: 'NOT_FOUND' });
      expect(res.json().message, `${method} ${url}`).toContain('"nowhere"');
    }
    // nothing was stored for it on the way
    expect((await call('GET', '/api/v1/portals')).json().map((p: AnyJson) => p.name)).toEqual([
      'default',
      'sales',
    ]);
  });

  it('says which server is in effect: none, then the instance’s, then the portal’s own', async () => {
    const none = await call('GET', '/api/v1/portals/sales/smtp');
    expect(none.status).toBe(200);
    expect(none.json()).toEqual({ portal: 'sales', inEffect: 'none', own: null });
    const noServer = await call('POST', '/api/v1/portals/sales/smtp/test', { to: 'admin@example.test' });
    expect(noServer.status).toBe(404);
    expect(noServer.json().message).toContain('portal sales has no outgoing SMTP server of its own');

    expect((await call('PUT', '/api/v1/settings/smtp', instanceBody())).status).toBe(200);
    expect((await call('GET', '/api/v1/portals/sales/smtp')).json()).toEqual({
      portal: 'sales',
      inEffect: 'instance',
      own: null,
    });

    const set = await call('PUT', '/api/v1/portals/sales/smtp', portalBody());
    expect(set.status).toBe(200);
    expect(set.json()).toEqual({
      portal: 'sales',
      inEffect: 'portal',
      own: {
        host: '127.0.0.1',
        port: portalServer.port,
        secure: false,
        starttls: true,
        username: 'portal-mailer',
        passwordSet: true,
        from: 'Sales <sales-desk@example.test>',
        caFile: portalServer.caFile,
        auth: 'password',
        oauth: null,
        warnings: [],
      },
    });
    expect((await call('GET', '/api/v1/portals/sales/smtp')).json()).toEqual(set.json());
    // the other portal and the instance's server are untouched
    expect((await call('GET', '/api/v1/portals/default/smtp')).json().inEffect).toBe('instance');
    expect((await call('GET', '/api/v1/settings/smtp')).json()).toMatchObject({
      port: instanceServer.port,
      username: 'mailer',
    });
  });

  it('answers 400 INVALID_SETTINGS naming every bad field, and keeps what was stored', async () => {
    const before = (await call('GET', '/api/v1/portals/sales/smtp')).json();
    const bad = await call('PUT', '/api/v1/portals/sales/smtp', {
      host: 'smtp://mail.example.test',
      port: 70000,
      starttls: 'yes',
      password: PORTAL_PASSWORD,
      from: 'not an address',
      surprise: 1,
    });
    expect(bad.status).toBe(400);
    expect(bad.json().error).toBe('INVALID_SETTINGS');
    expect(fieldsOf(bad.json())).toEqual(['(file)', 'from', 'host', 'password', 'port', 'starttls']);
    const byField = Object.fromEntries(
      (bad.json().details.fields as { field: string; message: string }[]).map((f) => [f.field, f.message]),
    );
    expect(byField.password).toContain('only used together with "username"');
    expect(byField['(file)']).toContain('surprise');

    // implicit TLS on the STARTTLS port is named on the port
    const tls = await call('PUT', '/api/v1/portals/sales/smtp', portalBody({ secure: true, port: 587 }));
    expect(tls.status).toBe(400);
    expect(fieldsOf(tls.json())).toEqual(['port']);
    // a CA file that cannot be read is named
    const ca = await call('PUT', '/api/v1/portals/sales/smtp', portalBody({ caFile: '/nonexistent/ca.pem' }));
    expect(ca.status).toBe(400);
    expect(fieldsOf(ca.json())).toEqual(['caFile']);
    // not an object at all
    const notObject = await call('PUT', '/api/v1/portals/sales/smtp', ['host']);
    expect(notObject.status).toBe(400);
    expect(notObject.json().error).toBe('INVALID_SETTINGS');

    expect((await call('GET', '/api/v1/portals/sales/smtp')).json()).toEqual(before);
  });

  it('keeps the stored password when left out with the same username; another username needs its own', async () => {
    const { password: _password, ...withoutPassword } = portalBody();
    const kept = await call('PUT', '/api/v1/portals/sales/smtp', withoutPassword);
    expect(kept.status).toBe(200);
    expect(kept.json().own).toMatchObject({ username: 'portal-mailer', passwordSet: true });
    const other = await call('PUT', '/api/v1/portals/sales/smtp', {
      ...withoutPassword,
      username: 'someone-else',
    });
    expect(other.status).toBe(400);
    expect(fieldsOf(other.json())).toEqual(['password']);
    expect((await call('GET', '/api/v1/portals/sales/smtp')).json().own).toMatchObject({
      username: 'portal-mailer',
      passwordSet: true,
    });
    // the kept password still logs in: proved by the test mail below
  });

  it('sends the test mail through the portal’s own server, as its account', async () => {
    const res = await call('POST', '/api/v1/portals/sales/smtp/test', { to: 'admin@example.test' });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, to: 'admin@example.test', through: 'portal' });
    expect(res.json().response).toMatch(/^250 /);
    const [mail] = await portalServer.waitFor(1);
    expect(mail).toMatchObject({ secure: true, user: 'portal-mailer', from: 'sales-desk@example.test' });
    expect(mail!.to).toEqual(['admin@example.test']);
    expect(mail!.parsed.subject).toBe('Mailintake test mail');
    expect(mail!.parsed.text).toContain(`through 127.0.0.1:${portalServer.port} (STARTTLS)`);
    expect(mail!.parsed.text).toContain('portal sales go out the same way (its own server)');
    expect(instanceServer.mails).toEqual([]);
    // a bad recipient is named before anything is sent
    const badTo = await call('POST', '/api/v1/portals/sales/smtp/test', { to: 'nobody' });
    expect(badTo.status).toBe(400);
    expect(fieldsOf(badTo.json())).toEqual(['to']);
  });

  it('a portal server that is down answers 502 CONNECT_FAILED naming its port, not the instance’s', async () => {
    await portalServer.stop();
    try {
      const down = await call('POST', '/api/v1/portals/sales/smtp/test', { to: 'admin@example.test' });
      expect(down.status).toBe(502);
      expect(down.json().error).toBe('CONNECT_FAILED');
      expect(down.json().message).toContain(`127.0.0.1:${portalServer.port}`);
      expect(down.json().message).not.toContain(String(instanceServer.port));
    } finally {
      await portalServer.start();
    }
    expect(instanceServer.mails).toEqual([]);
  });

  it('DELETE falls back to the instance’s server; the test mail then arrives there', async () => {
    const cleared = await call('DELETE', '/api/v1/portals/sales/smtp');
    expect(cleared.status).toBe(200);
    expect(cleared.json()).toEqual({ portal: 'sales', inEffect: 'instance', own: null });
    expect((await call('GET', '/api/v1/portals/sales/smtp')).json()).toEqual(cleared.json());
    // again: nothing to remove, the same answer
    expect((await call('DELETE', '/api/v1/portals/sales/smtp')).json()).toEqual(cleared.json());

    const portalMails = portalServer.mails.length;
    const res = await call('POST', '/api/v1/portals/sales/smtp/test', { to: 'admin@example.test' });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, through: 'instance' });
    const [mail] = await instanceServer.waitFor(1);
    expect(mail).toMatchObject({ user: 'mailer', from: 'helpdesk@example.test', to: ['admin@example.test'] });
    expect(mail!.parsed.text).toContain("through the instance's server");
    expect(portalServer.mails.length).toBe(portalMails);
  });

  it('records each change in the system log under the API key, without the password', async () => {
    const log = await rt.services.systemLog.list({ category: 'notification-settings' });
    const portalEntries = log.items.filter((e) => e.message.includes('of portal sales'));
    expect(portalEntries.map((e) => e.message)).toEqual([
      `the outgoing SMTP server of portal sales removed (was 127.0.0.1:${portalServer.port})`,
      `the outgoing SMTP server of portal sales set to 127.0.0.1:${portalServer.port} (STARTTLS)`,
      `the outgoing SMTP server of portal sales set to 127.0.0.1:${portalServer.port} (STARTTLS)`,
    ]);
    for (const e of portalEntries) expect(e.actor).toBe('api-key:portal-smtp-test');
    const all = await call('GET', '/api/v1/system-log?limit=1000');
    expect(all.status).toBe(200);
    expect(all.text).toContain('of portal sales');
    expect(all.text).not.toContain(PORTAL_PASSWORD);
    expect(all.text).not.toContain(INSTANCE_PASSWORD);
  });

  it('settings that cannot be read (a hand edit) never send through the instance’s server; PUT and DELETE are the way out', async () => {
    const damage = () =>
      store.db
        .updateTable('instance_settings')
        .set({ value: '{"host": 42}' })
        .where('key', '=', `smtp.portal.${salesId}`)
        .execute();
    expect((await call('PUT', '/api/v1/portals/sales/smtp', portalBody())).status).toBe(200);
    await damage();
    // a fault (500) is declared by no operation: asked of an app whose answers are not checked
    const loose = createApi(rt.services, {
      logger: { error: (msg, fields) => logged.push(JSON.stringify({ msg, fields })) },
    });
    const mails = { portal: portalServer.mails.length, instance: instanceServer.mails.length };
    const loggedBefore = logged.length;
    const test = await call('POST', '/api/v1/portals/sales/smtp/test', { to: 'admin@example.test' }, loose);
    expect(test.status).toBe(500);
    expect(test.json().error).toBe('INTERNAL');
    expect(logged.slice(loggedBefore).join('\n')).toContain(`smtp.portal.${salesId}`);
    expect(portalServer.mails.length).toBe(mails.portal);
    expect(instanceServer.mails.length).toBe(mails.instance);

    // the admin replaces it, or removes it
    const replaced = await call('PUT', '/api/v1/portals/sales/smtp', portalBody());
    expect(replaced.status).toBe(200);
    expect(replaced.json()).toMatchObject({ inEffect: 'portal', own: { passwordSet: true } });
    await damage();
    const removed = await call('DELETE', '/api/v1/portals/sales/smtp');
    expect(removed.status).toBe(200);
    expect(removed.json()).toEqual({ portal: 'sales', inEffect: 'instance', own: null });
    const log = await rt.services.systemLog.list({ category: 'notification-settings' });
    expect(log.items[0]!.message).toBe('the outgoing SMTP server of portal sales removed (was unreadable)');
  });

  it('cuts the password out of an error answer and the error log that would quote the body (rememberSecrets)', async () => {
    // services that quote their input, as a driver or a future validator might: the route must have
    // remembered the body's secrets so that neither the answer nor the log line carries them
    const quoting = (kind: 'coded' | 'fault'): ReturnType<typeof createApi> => {
      const services: Services = {
        ...rt.services,
        portals: {
          ...rt.services.portals,
          smtp: {
            ...rt.services.portals.smtp,
            set: async (_name, input) => {
              const text = `cannot save ${JSON.stringify(input)}`;
              if (kind === 'coded') throw new MailintakeError('INVALID_SETTINGS', text);
              throw new Error(text);
            },
          },
        },
      };
      return createApi(services, {
        logger: { error: (msg, fields) => logged.push(JSON.stringify({ msg, fields })) },
      });
    };
    const coded = await call('PUT', '/api/v1/portals/sales/smtp', portalBody(), quoting('coded'));
    expect(coded.status).toBe(400);
    expect(coded.json().message).toContain('[redacted]');
    expect(coded.json().message).toContain('portal-mailer');
    expect(coded.text).not.toContain(PORTAL_PASSWORD);

    const loggedBefore = logged.length;
    const fault = await call('PUT', '/api/v1/portals/sales/smtp', portalBody(), quoting('fault'));
    expect(fault.status).toBe(500);
    const line = logged.slice(loggedBefore).find((l) => l.includes('cannot save'));
    expect(line).toBeDefined();
    expect(line).toContain('[redacted]');
    expect(line).not.toContain(PORTAL_PASSWORD);
  });

  it('the OpenAPI document lists the routes of a portal’s own server', async () => {
    const res = await call('GET', '/api/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.json();
    expect(Object.keys(doc.paths['/api/v1/portals/{name}/smtp']).sort()).toEqual(['delete', 'get', 'put']);
    expect(Object.keys(doc.paths['/api/v1/portals/{name}/smtp/test'])).toEqual(['post']);
    expect(Object.keys(doc.paths['/api/v1/portals/{name}/smtp/oauth/authorize'])).toEqual(['post']);
    expect(Object.keys(doc.paths['/api/v1/portals/{name}/smtp/oauth'])).toEqual(['get']);
    // the body it points to is in the document
    const put = doc.paths['/api/v1/portals/{name}/smtp'].put;
    expect(put.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/SmtpInput',
    });
    expect(doc.components.schemas.SmtpInput.properties).toHaveProperty('password');
    expect(doc.components.schemas.PortalSmtp.properties.inEffect.enum).toEqual([
      'portal',
      'instance',
      'none',
    ]);
    for (const [path, ops] of Object.entries(doc.paths).filter(([p]) =>
      p.startsWith('/api/v1/portals/{name}/smtp'),
    ))
      for (const [method, op] of Object.entries(ops as AnyJson))
        expect(Object.keys((op as AnyJson).responses), `${method} ${path}`).toContain('404');
  });

  it('never returned nor logged a password, and every answer matched its declaration', () => {
    expect(bodies.length).toBeGreaterThan(30);
    for (const b of bodies) {
      expect(b).not.toContain(PORTAL_PASSWORD);
      expect(b).not.toContain(INSTANCE_PASSWORD);
    }
    expect(logged.length).toBeGreaterThan(0);
    for (const l of logged) {
      expect(l).not.toContain(PORTAL_PASSWORD);
      expect(l).not.toContain(INSTANCE_PASSWORD);
    }
    expect(checks.violations).toEqual([]);
    // every answer of the app under test (the quoting apps above are not checked: they answer a fault)
    expect(unchecked).toBeGreaterThan(0);
    expect(checks.checked).toBe(bodies.length - unchecked);
  });
});
