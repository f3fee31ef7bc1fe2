import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createConnector } from '../src/connectors/factory.js';
import {
  GraphConnector,
  type GraphConnectorOptions,
  type GraphFetch,
  retryAfterMs,
} from '../src/connectors/graph/graph-connector.js';
import { type MailboxInput, parseMailboxInput } from '../src/connectors/settings.js';
import type { MailintakeError } from '../src/kernel/errors.js';
import { GraphDouble } from './doubles/graph-double.js';
import { failure } from './kit/failure.js';
import { expectNoTokenIn, type FakeTokenSource, fakeTokenSource } from './kit/fake-token-source.js';
import { buildMail } from './kit/mails.js';

/**
 * The Graph connector's own behaviour beyond the shared contract: throttling, Graph's error codes, faults on
 * the wire, and the settings. Time is the injected sleep: no test waits for a real Retry-After.
 */
const TOKEN = 'unit-graph-token-abcdef0123456789';
let graph: GraphDouble;
let n = 0;

beforeAll(async () => {
  graph = await GraphDouble.start({ token: TOKEN });
});
afterAll(async () => {
  await graph?.stop();
});

const opened: GraphConnector[] = [];
afterEach(async () => {
  graph.clearFaults();
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

/** A fresh mailbox per test, and a connector for it whose sleeps are recorded instead of waited. */
function setup(over: Partial<MailboxInput> = {}, opts: GraphConnectorOptions = {}) {
  const address = `unit-${++n}@graph.test`;
  graph.addMailbox(address);
  const slept: number[] = [];
  const settings = parseMailboxInput({
    name: `g${n}`,
    protocol: 'graph',
    graphEndpoint: graph.url,
    accessToken: TOKEN,
    emailAddress: address,
    caFile: graph.caFile,
    ...over,
  });
  const c = new GraphConnector(settings, {
    sleep: async (ms) => {
      slept.push(ms);
    },
    ...opts,
  });
  opened.push(c);
  return { c, address, slept };
}

const mails = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) =>
    buildMail({ messageId: `${prefix}-${i}@g.test`, subject: `${prefix} ${i}` }),
  );

const isList = (r: { method: string; path: string }) => r.method === 'GET' && r.path.endsWith('/messages');

describe('Graph connector: listing and reading', () => {
  it('pages through @odata.nextLink (50 per page), oldest first, every request with Prefer ImmutableId', async () => {
    const { c, address } = setup();
    await graph.deliver(address, mails('page', 120));
    const before = graph.requests.length;
    await c.open();
    const listed = await c.listNew();
    expect(listed).toHaveLength(120);
    expect(listed.map((m) => m.identity)).toEqual(graph.messages(address).map((m) => `graph;${m.id}`));
    const mine = graph.requests.slice(before);
    expect(mine.filter(isList)).toHaveLength(3); // 50 + 50 + 20
    expect(mine.every((r) => r.headers.prefer === 'IdType="ImmutableId"')).toBe(true);
    expect(mine.every((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('mark-read mode lists only unread mail (filter led by receivedDateTime, as Exchange requires)', async () => {
    const { c, address } = setup();
    await graph.deliver(address, mails('unread', 3));
    await c.open();
    const listed = await c.listNew();
    await c.acknowledge([listed[1]!], { action: 'mark-read' });
    expect((await c.listNew()).map((m) => m.identity)).toEqual([listed[0]!.identity, listed[2]!.identity]);
    expect(graph.messages(address).map((m) => m.isRead)).toEqual([false, true, false]);
  });

  it('delete mode lists read mail too', async () => {
    const { c, address } = setup({ afterFetch: 'delete' });
    await graph.deliver(address, mails('del', 2));
    await c.open();
    const listed = await c.listNew();
    await c.acknowledge([listed[0]!], { action: 'mark-read' });
    expect(await c.listNew()).toHaveLength(2);
  });

  it('a nextLink to another host is not followed (the token would go with it)', async () => {
    const { address } = setup();
    await graph.deliver(address, mails('evil', 1));
    const fetch: GraphFetch = async () =>
      new Response(JSON.stringify({ value: [], '@odata.nextLink': 'https://attacker.example/v1.0/steal' }), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    const c = new GraphConnector(
      parseMailboxInput({ name: 'evil', protocol: 'graph', accessToken: TOKEN, emailAddress: address }),
      { fetch },
    );
    await c.open();
    const err = await failure(c.listNew());
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(err.message).toMatch(/attacker\.example.*not followed/);
  });

  it('fetchMany reads several mails concurrently, in the order asked, leaving out one deleted meanwhile', async () => {
    const { c, address } = setup();
    const raws = mails('many', 6);
    await graph.deliver(address, raws);
    await c.open();
    const listed = await c.listNew();
    // someone deletes mail 2 in another client
    const gone = listed[2]!;
    await c.acknowledge([gone], { action: 'delete' });
    const got = await c.fetchMany([listed[5]!, gone, listed[0]!]);
    expect([...got.keys()]).toEqual([listed[5]!.identity, listed[0]!.identity]);
    expect(got.get(listed[0]!.identity)!.equals(raws[0]!)).toBe(true);
  });

  it('acknowledging a mail that is gone already is not an error (the goal is met)', async () => {
    const { c, address } = setup();
    await graph.deliver(address, mails('gone', 1));
    await c.open();
    const [m] = await c.listNew();
    await c.acknowledge([m!], { action: 'delete' });
    await c.acknowledge([m!], { action: 'delete' });
    await c.acknowledge([m!], { action: 'mark-read' });
  });

  it('move finds an existing folder by displayName instead of creating a second one; ids survive the move', async () => {
    const { c, address } = setup();
    await graph.deliver(address, mails('mv', 2));
    await c.open();
    const listed = await c.listNew();
    await c.moveTo([listed[0]!], "Errors 'x'");
    await c.close();
    await c.open(); // a new session forgets the cached folder id: it must find, not create
    await c.acknowledge([listed[1]!], { action: 'move', folder: "Errors 'x'" });
    const moved = graph.messages(address, "Errors 'x'");
    expect(moved.map((m) => `graph;${m.id}`)).toEqual(listed.map((m) => m.identity));
    const creates = graph.requests.filter(
      (r) => r.method === 'POST' && r.path === `/v1.0/users/${address}/mailFolders`,
    );
    expect(creates).toHaveLength(1);
  });
});

describe('Graph connector: throttling', () => {
  it('429 with Retry-After: 2 mid-listing waits 2 s (injected sleep) and completes without loss', async () => {
    const { c, address, slept } = setup();
    await graph.deliver(address, mails('thr', 120));
    await c.open();
    graph.inject({ match: isList, skip: 1, fault: { kind: 'status', status: 429, retryAfter: 2 } });
    const listed = await c.listNew();
    expect(slept).toEqual([2000]);
    expect(listed).toHaveLength(120);
    expect(new Set(listed.map((m) => m.identity)).size).toBe(120);
  });

  it('503 without Retry-After backs off 1 s, then 2 s', async () => {
    const { c, address, slept } = setup();
    await graph.deliver(address, mails('b', 1));
    await c.open();
    graph.inject({ match: isList, times: 2, fault: { kind: 'status', status: 503 } });
    expect(await c.listNew()).toHaveLength(1);
    expect(slept).toEqual([1000, 2000]);
  });

  it('gives up after the bounded attempts with TIMEOUT naming ApplicationThrottled, nothing changed', async () => {
    const { c, address, slept } = setup({}, { retry: { maxAttempts: 3 } });
    await graph.deliver(address, mails('giveup', 1));
    await c.open();
    graph.inject({ match: isList, times: 10, fault: { kind: 'status', status: 429, retryAfter: 1 } });
    const err = await failure(c.listNew());
    expect(err.code).toBe('TIMEOUT');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/ApplicationThrottled.*3 attempts/);
    expect(err.details.serverResponse).toMatch(/^ApplicationThrottled: /);
    expect(slept).toEqual([1000, 1000]);
  });

  it('a Retry-After beyond the total wait budget is not waited for', async () => {
    const { c, address, slept } = setup({}, { retry: { maxTotalWaitMs: 10_000 } });
    await graph.deliver(address, mails('long', 1));
    await c.open();
    graph.inject({ match: isList, fault: { kind: 'status', status: 429, retryAfter: 3600 } });
    expect((await failure(c.listNew())).code).toBe('TIMEOUT');
    expect(slept).toEqual([]);
  });

  it('a throttled acknowledgement is retried too (a refused PATCH changed nothing)', async () => {
    const { c, address, slept } = setup();
    await graph.deliver(address, mails('ackthr', 1));
    await c.open();
    const [m] = await c.listNew();
    graph.inject({
      match: (r) => r.method === 'PATCH',
      fault: { kind: 'status', status: 429, retryAfter: 5 },
    });
    await c.acknowledge([m!], { action: 'mark-read' });
    expect(slept).toEqual([5000]);
    expect(graph.messages(address)[0]!.isRead).toBe(true);
  });

  it('Retry-After: seconds or an HTTP date; garbage is ignored', () => {
    expect(retryAfterMs('2')).toBe(2000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs('-5')).toBeUndefined();
    expect(retryAfterMs('soon')).toBeUndefined();
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:07 GMT', () => now)).toBe(7000);
  });
});

describe('Graph connector: coded errors', () => {
  it('wrong token → AUTH_FAILED (401 InvalidAuthenticationToken), token never in the error', async () => {
    const { c } = setup({ accessToken: 'wrong-token-that-must-not-leak' });
    const err = await failure(c.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.details.errorCode).toBe('InvalidAuthenticationToken');
    expect(JSON.stringify(err.toJSON())).not.toContain('wrong-token-that-must-not-leak');
  });

  it('403 → AUTH_FAILED naming ErrorAccessDenied', async () => {
    const { c, address } = setup();
    graph.denyMailbox(address);
    const err = await failure(c.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toContain('ErrorAccessDenied');
    expect(err.details.serverResponse).toMatch(/^ErrorAccessDenied: Access is denied/);
  });

  it('unknown mailbox or folder → FOLDER_NOT_FOUND with the Graph error', async () => {
    const unknown = new GraphConnector(
      parseMailboxInput({
        name: 'nobody',
        protocol: 'graph',
        graphEndpoint: graph.url,
        accessToken: TOKEN,
        emailAddress: 'nobody-else@graph.test',
        caFile: graph.caFile,
      }),
    );
    const err = await failure(unknown.open());
    expect(err.code).toBe('FOLDER_NOT_FOUND');
    expect(err.details.serverResponse).toMatch(/^ErrorInvalidUser/);
    const { c: noFolder } = setup({ folder: 'NoSuchFolder' });
    const err2 = await failure(noFolder.open());
    expect(err2.code).toBe('FOLDER_NOT_FOUND');
    expect(err2.message).toContain('"NoSuchFolder"');
  });

  it('500 → PROTOCOL_ERROR (retryable) with the error body in details.serverResponse', async () => {
    const { c } = setup();
    await c.open();
    graph.inject({ match: isList, fault: { kind: 'status', status: 500 } });
    const err = await failure(c.listNew());
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(err.retryable).toBe(true);
    expect(err.details.serverResponse).toBe('InternalServerError: An internal server error occurred.');
  });

  it('a dropped connection → CONNECT_FAILED', async () => {
    const { c } = setup();
    await c.open();
    graph.inject({ match: isList, fault: { kind: 'drop' } });
    expect((await failure(c.listNew())).code).toBe('CONNECT_FAILED');
  });

  it('a connection dropped in the middle of a mail fails the stream with a coded error', async () => {
    const { c, address } = setup();
    await graph.deliver(address, [buildMail({ messageId: 'half@g.test', body: 'x'.repeat(200_000) })]);
    await c.open();
    const [m] = await c.listNew();
    graph.inject({ match: (r) => r.path.endsWith('/$value'), fault: { kind: 'drop-mid-body' } });
    const stream = await c.stream(m!);
    const err = await failure(
      (async () => {
        for await (const _ of stream) {
          // drain
        }
      })(),
    );
    expect(['CONNECT_FAILED', 'TIMEOUT']).toContain(err.code);
  });

  it('a slow answer beyond the request timeout → TIMEOUT', async () => {
    const { c } = setup({}, { timeouts: { requestMs: 200 } });
    await c.open();
    graph.inject({ match: isList, fault: { kind: 'slow', delayMs: 1000 } });
    const err = await failure(c.listNew());
    expect(err.code).toBe('TIMEOUT');
  });

  it('a slow answer within the timeout is just slow', async () => {
    const { c } = setup({}, { timeouts: { requestMs: 2000 } });
    await c.open();
    graph.inject({ match: isList, fault: { kind: 'slow', delayMs: 100 } });
    expect(await c.listNew()).toEqual([]);
  });

  it('an unknown host → DNS_FAILED; an untrusted certificate → TLS_FAILED', async () => {
    const dns = createConnector(
      parseMailboxInput({
        name: 'dns',
        protocol: 'graph',
        graphEndpoint: 'https://no-such-host.invalid',
        accessToken: TOKEN,
        emailAddress: 'a@graph.test',
      }),
    );
    expect((await failure(dns.open())).code).toBe('DNS_FAILED');
    const untrusted = createConnector(
      parseMailboxInput({
        name: 'tls',
        protocol: 'graph',
        graphEndpoint: graph.url,
        accessToken: TOKEN,
        emailAddress: 'a@graph.test',
      }),
    );
    const err = await failure(untrusted.open());
    expect(err.code).toBe('TLS_FAILED');
    expect(err.message).toMatch(/self-signed/);
  });
});

describe('Graph connector: OAuth 2.0 bearer tokens', () => {
  /** A double that accepts the tokens of whichever source the test gave it. */
  let oauthGraph: GraphDouble;
  let source: FakeTokenSource;
  beforeAll(async () => {
    oauthGraph = await GraphDouble.start({ acceptBearer: (t) => source.verify(t) });
  });
  afterAll(async () => {
    await oauthGraph?.stop();
  });

  function oauthSetup(kind: 'delegated' | 'app' = 'delegated') {
    const address = `oauth-${++n}@graph.test`;
    oauthGraph.addMailbox(address);
    source = fakeTokenSource({ kind, subject: address });
    const settings = parseMailboxInput({
      name: `go${n}`,
      protocol: 'graph',
      graphEndpoint: oauthGraph.url,
      emailAddress: address,
      caFile: oauthGraph.caFile,
      oauth: {
        provider: 'microsoft',
        clientId: 'client-id',
        clientSecret: 'client-secret',
        ...(kind === 'app' ? { flow: 'client-credentials', tenant: 'contoso.onmicrosoft.com' } : {}),
      },
    });
    const c = createConnector(settings, { tokens: source, sleep: async () => undefined });
    const mine = () => oauthGraph.requests.filter((r) => r.path.includes(address));
    return { c, address, settings, mine };
  }

  it("sends the source's token as a bearer on every request (delegated and application tokens)", async () => {
    for (const kind of ['delegated', 'app'] as const) {
      const { c, address, mine } = oauthSetup(kind);
      await oauthGraph.deliver(address, mails(`tok-${kind}`, 3));
      await c.open();
      const listed = await c.listNew();
      await c.fetchMany?.(listed);
      await c.acknowledge(listed, { action: 'mark-read' });
      await c.close();
      const token = source.issued[0]!;
      expect(source.issued).toHaveLength(1);
      expect(mine().length).toBeGreaterThan(5);
      expect(mine().every((r) => r.headers.authorization === `Bearer ${token}`)).toBe(true);
      expect(mine().every((r) => r.subject === (kind === 'app' ? null : address))).toBe(true);
      expect(oauthGraph.messages(address).every((m) => m.isRead)).toBe(true);
    }
  });

  it('a 401 renews the token once and sends the request again; nothing is lost', async () => {
    const { c, address, mine } = oauthSetup();
    await oauthGraph.deliver(address, mails('renew', 2));
    await c.open();
    const stale = source.issued[0]!;
    source.revokeCurrent(); // refused before its time: revoked, or a clock skew
    const listed = await c.listNew();
    expect(listed).toHaveLength(2);
    expect(source.calls.renew).toEqual([stale]);
    const fresh = source.issued[1]!;
    const lists = mine().filter(isList);
    expect(lists.map((r) => r.headers.authorization)).toEqual([`Bearer ${stale}`, `Bearer ${fresh}`]);
    // later requests carry the renewed token without another refusal
    await c.acknowledge(listed, { action: 'mark-read' });
    expect(source.calls.renew).toHaveLength(1);
  });

  it('a token refused again after renewing → AUTH_FAILED saying to authorize again, never the token', async () => {
    const { c, settings } = oauthSetup();
    source.refuseAll();
    const err = await failure(c.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.details.errorCode).toBe('InvalidAuthenticationToken');
    expect(err.message).toContain(`mailintake mailbox authorize ${settings.name}`);
    expect(err.message).not.toMatch(/set a new "accessToken"/);
    expect(source.calls.renew).toHaveLength(1);
    expectNoTokenIn(err, source);
  });

  it('renew failing with OAUTH_REAUTHORIZE_REQUIRED surfaces that error as it is', async () => {
    const { c } = oauthSetup();
    await c.open();
    const withdrawn = source.withdrawConsent();
    const err = await failure(c.listNew());
    expect(err).toBe(withdrawn);
  });

  it('a throttled request waits, then a 401 renews once: both kinds of retry in one request', async () => {
    const { c, address } = oauthSetup();
    await oauthGraph.deliver(address, mails('both', 1));
    await c.open();
    oauthGraph.inject({ fault: { kind: 'status', status: 429, retryAfter: 1 }, match: isList });
    source.revokeCurrent();
    expect(await c.listNew()).toHaveLength(1);
    expect(source.calls.renew).toHaveLength(1);
    oauthGraph.clearFaults();
  });

  it('OAuth without a token source is a programming error (INTERNAL), not a login failure', () => {
    const settings = parseMailboxInput({
      name: 'no-source',
      protocol: 'graph',
      emailAddress: 'a@graph.test',
      oauth: { provider: 'microsoft', clientId: 'c', clientSecret: 's' },
    });
    let err: unknown;
    try {
      createConnector(settings);
    } catch (e) {
      err = e;
    }
    expect((err as MailintakeError).code).toBe('INTERNAL');
  });
});

describe('Graph mailbox settings', () => {
  const base = { name: 'g', protocol: 'graph', accessToken: 't', emailAddress: 'help@example.test' };
  const fields = (input: unknown) => {
    try {
      parseMailboxInput(input);
    } catch (err) {
      return (err as MailintakeError).details.fields ?? [];
    }
    return [];
  };

  it('defaults: global endpoint, folder inbox, mark-read; server/port shown from the endpoint', () => {
    expect(parseMailboxInput(base)).toMatchObject({
      graphEndpoint: 'https://graph.microsoft.com',
      server: 'graph.microsoft.com',
      port: 443,
      folder: 'inbox',
      afterFetch: 'mark-read',
      username: 'help@example.test',
    });
    expect(parseMailboxInput({ ...base, graphEndpoint: 'https://graph.microsoft.us/' }).graphEndpoint).toBe(
      'https://graph.microsoft.us',
    );
  });

  it('names every bad field at once', () => {
    const got = fields({
      ...base,
      accessToken: undefined,
      graphEndpoint: 'http://graph.example.test',
      server: 'x',
      password: 'p',
      afterFetch: 'leave',
    });
    expect(got.map((f) => f.field).sort()).toEqual(
      // without "accessToken" Graph needs OAuth: the missing setting is named as "oauth" (either will do)
      ['oauth', 'afterFetch', 'graphEndpoint', 'password', 'server'].sort(),
    );
    expect(got.find((f) => f.field === 'graphEndpoint')?.message).toMatch(/https:\/\//);
  });

  it('refuses Graph fields on IMAP/POP3', () => {
    const got = fields({
      name: 'i',
      protocol: 'imaps',
      server: 'mail.example.test',
      username: 'u',
      password: 'p',
      emailAddress: 'a@example.test',
      accessToken: 't',
    });
    expect(got).toEqual([{ field: 'accessToken', message: 'only used with protocol "graph"' }]);
  });
});
