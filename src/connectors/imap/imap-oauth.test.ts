import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type FakeTokenSource, fakeTokenSource } from '../../../test/support/fake-token-source.js';
import { parseMailboxInput } from '../../config/mailbox-settings.js';
import { MailintakeError } from '../../errors.js';
import { createConnector } from '../factory.js';
import { ImapConnector } from './imap-connector.js';
import { type WatchState, watchImapFolder } from './imap-watch.js';

/**
 * OAuth 2.0 login on a scripted IMAP server (plain IMAP on loopback), for what Dovecot is not set up to do in
 * this suite: refuse a token on demand, offer only one of the mechanisms, offer none. AUTHENTICATE is answered
 * as Dovecot's mech-oauth2 does: a good token → OK; a refused one → the RFC 7628 error as a continuation
 * ("+ <base64 JSON>"), the client's answer to it, then NO [AUTHENTICATIONFAILED]. Dovecot with XOAUTH2 end
 * to end is in the OAuth rig.
 */
interface FakeImap {
  port: number;
  connections: number;
  /** Decoded SASL payloads, in order. */
  payloads: string[];
  /** The mechanism of each AUTHENTICATE. */
  mechanisms: string[];
  /** What the client answered to an error continuation. */
  errorAnswers: string[];
  close(): Promise<void>;
}

async function fakeImap(o: {
  mechanisms: string[];
  accept: (token: string) => Promise<boolean>;
  idle?: boolean;
}): Promise<FakeImap> {
  const sockets = new Set<net.Socket>();
  const caps = `IMAP4rev1 SASL-IR ${o.mechanisms.map((m) => `AUTH=${m}`).join(' ')}${o.idle ? ' IDLE' : ''}`;
  const fake: FakeImap = {
    port: 0,
    connections: 0,
    payloads: [],
    mechanisms: [],
    errorAnswers: [],
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  const server = net.createServer((socket) => {
    fake.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.write(`* OK [CAPABILITY ${caps}] fake ready\r\n`);
    let buffer = '';
    let failedTag: string | null = null;
    let idleTag: string | null = null;
    let chain = Promise.resolve();
    const handle = async (line: string) => {
      if (failedTag) {
        // the client's answer to the error continuation ends the exchange
        fake.errorAnswers.push(line);
        socket.write(`${failedTag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`);
        failedTag = null;
        return;
      }
      if (line === 'DONE' && idleTag) {
        socket.write(`${idleTag} OK IDLE terminated\r\n`);
        idleTag = null;
        return;
      }
      const [tag = '*', command = '', ...args] = line.split(' ');
      switch (command.toUpperCase()) {
        case 'CAPABILITY':
          socket.write(`* CAPABILITY ${caps}\r\n${tag} OK done\r\n`);
          return;
        case 'AUTHENTICATE': {
          const [mechanism = '', initial = ''] = args;
          fake.mechanisms.push(mechanism.toUpperCase());
          const payload = Buffer.from(initial, 'base64').toString('utf8');
          fake.payloads.push(payload);
          const token =
            payload
              .split('\x01')
              .find((f) => f.startsWith('auth=Bearer '))
              ?.slice('auth=Bearer '.length) ?? '';
          if (await o.accept(token)) {
            socket.write(`${tag} OK [CAPABILITY ${caps}] Logged in\r\n`);
            return;
          }
          failedTag = tag;
          const error = { status: 'invalid_token', schemes: 'bearer', scope: 'mail' };
          socket.write(`+ ${Buffer.from(JSON.stringify(error)).toString('base64')}\r\n`);
          return;
        }
        case 'SELECT':
        case 'EXAMINE':
          socket.write(
            '* FLAGS (\\Seen \\Deleted)\r\n* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n' +
              `${tag} OK [${command.toUpperCase() === 'EXAMINE' ? 'READ-ONLY' : 'READ-WRITE'}] done\r\n`,
          );
          return;
        case 'IDLE':
          idleTag = tag;
          socket.write('+ idling\r\n');
          return;
        case 'LOGOUT':
          socket.end(`* BYE bye\r\n${tag} OK done\r\n`);
          return;
        default:
          socket.write(`${tag} OK done\r\n`);
      }
    };
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      for (let nl = buffer.indexOf('\r\n'); nl !== -1; nl = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        chain = chain.then(() => handle(line));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fake.port = (server.address() as net.AddressInfo).port;
  return fake;
}

const settingsFor = (port: number) =>
  parseMailboxInput({
    name: 'imap-oauth',
    protocol: 'imap',
    starttls: false,
    server: '127.0.0.1',
    port,
    username: 'help@example.test',
    emailAddress: 'help@example.test',
    oauth: { provider: 'google', clientId: 'client-id', clientSecret: 'client-secret' },
  });

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(mechanisms: string[], idle = false) {
  const tokens = fakeTokenSource({ subject: 'help@example.test' });
  const fake = await fakeImap({ mechanisms, accept: async (t) => (await tokens.verify(t)) !== null, idle });
  cleanup.push(() => fake.close());
  const connector = new ImapConnector(settingsFor(fake.port), { tokens });
  cleanup.push(() => connector.close());
  return { tokens, fake, connector };
}

async function failure(p: Promise<unknown>): Promise<MailintakeError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MailintakeError);
  return err as MailintakeError;
}

function noTokenIn(err: MailintakeError, tokens: FakeTokenSource): void {
  const text = JSON.stringify(err.toJSON());
  for (const token of tokens.issued) expect(text).not.toContain(token);
}

describe('IMAP login with OAuth 2.0 (scripted server)', () => {
  it('XOAUTH2 when the server offers only that: user and bearer token in the payload', async () => {
    const { tokens, fake, connector } = await setup(['XOAUTH2']);
    await connector.open();
    expect(fake.mechanisms).toEqual(['XOAUTH2']);
    expect(fake.payloads).toEqual([`user=help@example.test\x01auth=Bearer ${tokens.issued[0]}\x01\x01`]);
  });

  it('OAUTHBEARER (RFC 7628) when offered, with host and port of the connection', async () => {
    const { tokens, fake, connector } = await setup(['XOAUTH2', 'OAUTHBEARER']);
    await connector.open();
    expect(fake.mechanisms).toEqual(['OAUTHBEARER']);
    expect(fake.payloads[0]).toBe(
      `n,a=help@example.test,\x01host=127.0.0.1\x01port=${fake.port}\x01auth=Bearer ${tokens.issued[0]}\x01\x01`,
    );
  });

  it('a refused token is renewed once and the login tried again on a new connection', async () => {
    const { tokens, fake, connector } = await setup(['OAUTHBEARER']);
    await tokens.get();
    tokens.revokeCurrent();
    await connector.open();
    expect(tokens.calls.renew).toEqual([tokens.issued[0]]);
    expect(fake.connections).toBe(2);
    expect(fake.errorAnswers).toEqual(['AQ==']); // RFC 7628 §3.2.3: a single %x01 ends the failed exchange
    expect(await connector.listNew()).toEqual([]);
  });

  it('refused again → AUTH_FAILED saying what to check and how to authorize again; the token never shown', async () => {
    const { tokens, fake, connector } = await setup(['XOAUTH2']);
    tokens.refuseAll();
    const err = await failure(connector.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toContain('refused the OAuth token for user "help@example.test"');
    expect(err.message).toContain('the account that consented is "help@example.test"');
    expect(err.message).toContain('`mailintake mailbox authorize imap-oauth`');
    expect(err.details.serverResponse).toContain('"status":"invalid_token"');
    expect(fake.errorAnswers).toEqual(['', '']); // XOAUTH2: an empty answer ends the failed exchange
    expect(tokens.calls.renew).toHaveLength(1);
    noTokenIn(err, tokens);
  });

  it('renew failing with OAUTH_REAUTHORIZE_REQUIRED surfaces that error as it is', async () => {
    const { tokens, connector } = await setup(['XOAUTH2']);
    await tokens.get();
    tokens.revokeCurrent();
    const withdrawn = new MailintakeError('OAUTH_REAUTHORIZE_REQUIRED', 'The consent was withdrawn');
    tokens.failRenewWith(withdrawn);
    expect(await failure(connector.open())).toBe(withdrawn);
  });

  it('a server offering neither XOAUTH2 nor OAUTHBEARER → AUTH_FAILED saying so, without renewing', async () => {
    const { tokens, fake, connector } = await setup(['PLAIN']);
    const err = await failure(connector.open());
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toContain('does not offer XOAUTH2 or OAUTHBEARER');
    expect(err.message).toContain('AUTH=PLAIN');
    expect(tokens.calls.renew).toEqual([]);
    expect(fake.connections).toBe(1);
  });

  it('OAuth without a token source is a programming error (INTERNAL)', () => {
    let err: unknown;
    try {
      createConnector(settingsFor(1));
    } catch (e) {
      err = e;
    }
    expect((err as MailintakeError).code).toBe('INTERNAL');
  });
});

describe('IMAP IDLE watcher with OAuth 2.0 (scripted server)', () => {
  it('logs in with the token, renewing a refused one once, and watches', async () => {
    const { tokens, fake } = await setup(['XOAUTH2'], true);
    await tokens.get();
    tokens.revokeCurrent();
    const controller = new AbortController();
    const states: WatchState[] = [];
    let resolveWatching: () => void = () => undefined;
    const watching = new Promise<void>((resolve) => {
      resolveWatching = resolve;
    });
    const done = watchImapFolder(settingsFor(fake.port), {
      tokens,
      signal: controller.signal,
      onNewMail: () => undefined,
      onState: (s) => {
        states.push(s);
        if (s === 'watching') resolveWatching();
      },
    });
    await watching;
    controller.abort();
    expect(await done).toBe('stopped');
    expect(tokens.calls.renew).toEqual([tokens.issued[0]]);
    expect(fake.connections).toBe(2);
  });

  it('OAuth without a token source: the error is said once and the watcher stops (no reconnect loop)', async () => {
    const errors: MailintakeError[] = [];
    const end = await watchImapFolder(settingsFor(1), {
      signal: new AbortController().signal,
      onNewMail: () => undefined,
      onError: (e) => errors.push(e),
    });
    expect(end).toBe('stopped');
    expect(errors.map((e) => e.code)).toEqual(['INTERNAL']);
  });
});
