import { afterEach, describe, expect, it } from 'vitest';
import { failure } from '../../../test/kit/failure.js';
import { startFakeImap } from '../../../test/kit/fake-imap.js';
import { expectNoTokenIn, fakeTokenSource } from '../../../test/kit/fake-token-source.js';
import { loopbackOAuthMailbox } from '../../../test/kit/mailboxes.js';
import type { MailintakeError } from '../../kernel/errors.js';
import { createConnector } from '../factory.js';
import { parseMailboxInput } from '../settings.js';
import { ImapConnector } from './connector.js';
import { type WatchState, watchImapFolder } from './imap-watch.js';

/**
 * OAuth 2.0 login on a scripted IMAP server (plain IMAP on loopback), for what Dovecot is not set up to do in
 * this suite: refuse a token on demand, offer only one of the mechanisms, offer none. AUTHENTICATE is answered
 * as Dovecot's mech-oauth2 does: a good token → OK; a refused one → the RFC 7628 error as a continuation
 * ("+ <base64 JSON>"), the client's answer to it, then NO [AUTHENTICATIONFAILED]. Dovecot with XOAUTH2 end
 * to end is in the OAuth rig. The server is test/support/fake-imap.ts.
 */
const settingsFor = (port: number) => parseMailboxInput(loopbackOAuthMailbox('imap', 'imap-oauth', port));

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(mechanisms: string[], idle = false) {
  const tokens = fakeTokenSource({ subject: 'help@example.test' });
  const fake = await startFakeImap({
    mechanisms,
    accept: async (t) => (await tokens.verify(t)) !== null,
    idle,
  });
  cleanup.push(() => fake.close());
  const connector = new ImapConnector(settingsFor(fake.port), { tokens });
  cleanup.push(() => connector.close());
  return { tokens, fake, connector };
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
    expectNoTokenIn(err, tokens);
  });

  it('renew failing with OAUTH_REAUTHORIZE_REQUIRED surfaces that error as it is', async () => {
    const { tokens, connector } = await setup(['XOAUTH2']);
    await tokens.get();
    const withdrawn = tokens.withdrawConsent();
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
