import { afterEach, describe, expect, it } from 'vitest';
import type { SmtpConfig } from '../src/notify/smtp-settings.js';
import { openSmtpTransport, type SmtpTransport } from '../src/notify/smtp-transport.js';
import { failure } from './kit/failure.js';
import { expectNoTokenIn, type FakeTokenSource, fakeTokenSource } from './kit/fake-token-source.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * Sending with OAuth 2.0 (SASL XOAUTH2) against a real SMTP server (smtp-server, STARTTLS, the test CA). The
 * server judges tokens with the test's token source, as a provider-backed server would.
 */
const USER = 'helpdesk@example.test';
const servers: SmtpTestServer[] = [];
const transports: SmtpTransport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(o: { refuseAtOnce?: boolean; reuse?: boolean } = {}) {
  const tokens = fakeTokenSource({ subject: USER });
  const server = await startSmtpServer({
    xoauth2: async (user, token) => user === USER && (await tokens.verify(token)) !== null,
    ...(o.refuseAtOnce ? { xoauth2RefuseAtOnce: true } : {}),
  });
  servers.push(server);
  const { transport, config } = await transportTo(server, tokens, { fromName: 'Help Desk', reuse: o.reuse });
  return { server, tokens, transport, config };
}

/** A transport to the test server as USER, STARTTLS with the test CA, logging in with the source's tokens. */
async function transportTo(
  server: SmtpTestServer,
  tokens: FakeTokenSource,
  o: { fromName: string; reuse?: boolean },
): Promise<{ transport: SmtpTransport; config: SmtpConfig }> {
  const config: SmtpConfig = {
    host: server.host,
    port: server.port,
    secure: false,
    starttls: true,
    username: USER,
    password: null,
    from: { name: o.fromName, address: USER },
    caFile: server.caFile,
  };
  const transport = await openSmtpTransport(config, { tokens, ...(o.reuse ? { reuse: true } : {}) });
  transports.push(transport);
  return { transport, config };
}

const mail = (n: number) => ({ to: ['someone@example.test'], subject: `Notice ${n}`, text: `Body ${n}` });

describe('SMTP transport with OAuth 2.0 (XOAUTH2)', () => {
  it("logs in with XOAUTH2 as the username, over TLS, with the source's token", async () => {
    const { server, tokens, transport } = await setup();
    await transport.send(mail(1));
    const [got] = await server.waitFor(1);
    expect(got).toMatchObject({ user: USER, secure: true, to: ['someone@example.test'] });
    expect(server.logins).toEqual([{ method: 'XOAUTH2', user: USER, accepted: true }]);
    expect(tokens.calls.get).toBe(1);
    expect(tokens.calls.renew).toEqual([]);
  });

  /** Sends mail `n` with a token the server refuses once: renewed once, accepted at the second login. */
  async function sentAfterOneRefusal(n: number, o: { refuseAtOnce?: boolean } = {}) {
    const { server, tokens, transport } = await setup(o);
    await tokens.get();
    tokens.revokeCurrent();
    await transport.send(mail(n));
    await server.waitFor(1);
    expect(tokens.calls.renew).toEqual([tokens.issued[0]]);
    expect(server.logins.map((l) => l.accepted)).toEqual([false, true]);
    return server;
  }

  it('a refused token (the XOAUTH2 error challenge, as Gmail) is renewed once and the login tried again', async () => {
    await sentAfterOneRefusal(2);
  });

  it('a refused token answered with 535 at once (as Microsoft 365) is renewed once and the mail sent again', async () => {
    const server = await sentAfterOneRefusal(3, { refuseAtOnce: true });
    expect(server.mails).toHaveLength(1);
  });

  it('refused again after renewing → AUTH_FAILED saying what to check; one renewal; no token anywhere', async () => {
    for (const refuseAtOnce of [false, true]) {
      const { server, tokens, transport } = await setup({ refuseAtOnce });
      tokens.refuseAll();
      const err = await failure(transport.send(mail(4)));
      expect(err.code).toBe('AUTH_FAILED');
      expect(err.message).toContain(`refused the OAuth token of user "${USER}", also after it was renewed`);
      expect(err.message).toContain('SMTP.Send');
      expect(tokens.calls.renew).toHaveLength(1);
      expect(server.logins).toHaveLength(2);
      expect(server.mails).toHaveLength(0);
      expectNoTokenIn(err, tokens, { stack: true });
    }
  });

  it('renew failing with OAUTH_REAUTHORIZE_REQUIRED surfaces that error as it is', async () => {
    const { tokens, transport } = await setup();
    await tokens.get();
    const withdrawn = tokens.withdrawConsent();
    const err = await failure(transport.send(mail(5)));
    expect(err).toBe(withdrawn);
    expect(err.code).toBe('OAUTH_REAUTHORIZE_REQUIRED');
  });

  it('every new connection asks the source for its token: nodemailer keeps none of its own', async () => {
    // without reuse every mail is a connection and a login; a token nodemailer cached would outlive its expiry
    const { server, tokens, transport } = await setup();
    await transport.send(mail(6));
    await transport.send(mail(7));
    await server.waitFor(2);
    expect(server.logins).toHaveLength(2);
    expect(tokens.calls.get).toBe(2);
  });

  it('a server without XOAUTH2 → AUTH_FAILED saying so, without renewing', async () => {
    const tokens = fakeTokenSource();
    const server = await startSmtpServer({ auth: { username: USER, password: 'pw' } });
    servers.push(server);
    const { transport } = await transportTo(server, tokens, { fromName: '' });
    const err = await failure(transport.send(mail(8)));
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toContain('does not offer XOAUTH2');
    expect(tokens.calls.renew).toEqual([]);
    expectNoTokenIn(err, tokens, { stack: true });
  });
});
