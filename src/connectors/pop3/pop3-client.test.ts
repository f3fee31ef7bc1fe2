import { once } from 'node:events';
import net from 'node:net';
import { buffer } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bearerInSasl,
  expectNoTokenIn,
  type FakeTokenSource,
  fakeTokenSource,
  SASL_TOKEN_REFUSED,
} from '../../../test/kit/fake-token-source.js';
import { loopbackOAuthMailbox } from '../../../test/kit/mailboxes.js';
import { MailintakeError } from '../../kernel/errors.js';
import { parseMailboxInput } from '../settings.js';
import { DotDecoder, Pop3Client, saslOauthbearer, saslXoauth2 } from './pop3-client.js';
import { Pop3Connector } from './pop3-connector.js';

/**
 * The client against a tiny scripted POP3 server in this process: the one place a fake server is right, because
 * it can cut answers where a real server never would (the terminator split at every byte, a close mid-RETR).
 * Everything else is tested against the real Dovecot in test/contract.
 */

interface FakeOptions {
  capa?: string[] | null;
  uidl?: boolean;
  mails?: Buffer[];
  /** How a RETR answer (status + stuffed body + terminator) is cut into writes. */
  cut?: (answer: Buffer) => Buffer[];
  /** Replaces the answer to a command; return undefined for the default. */
  answer?: (line: string, socket: net.Socket) => Buffer | 'close' | undefined;
  password?: string;
}

const servers: net.Server[] = [];
const clients: Pop3Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** RFC 1939 §3 stuffing, as a server does it. */
function stuff(raw: Buffer): Buffer {
  const text = raw.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  const body = text.endsWith('\r\n') || text.length === 0 ? text : `${text}\r\n`;
  return Buffer.from(`${body}.\r\n`, 'latin1');
}

async function writeCut(socket: net.Socket, parts: Buffer[]): Promise<void> {
  for (const part of parts) {
    socket.write(part);
    // a turn of the event loop between writes, with Nagle off: the pieces arrive as separate chunks
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function fakeServer(o: FakeOptions = {}): Promise<number> {
  const mails = o.mails ?? [];
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.write('+OK fake ready\r\n');
    let pending = '';
    let chain = Promise.resolve();
    socket.on('data', (d) => {
      pending += d.toString('latin1');
      let nl = pending.indexOf('\r\n');
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 2);
        nl = pending.indexOf('\r\n');
        chain = chain.then(() => respond(line, socket));
      }
    });
    socket.on('error', () => undefined);
  });
  const respond = async (line: string, socket: net.Socket) => {
    const custom = o.answer?.(line, socket);
    if (custom === 'close') {
      socket.destroy();
      return;
    }
    if (custom) {
      await writeCut(socket, o.cut ? o.cut(custom) : [custom]);
      return;
    }
    const [cmd, arg] = line.split(' ');
    const ok = (s: string) => socket.write(`+OK ${s}\r\n`);
    switch (cmd?.toUpperCase()) {
      case 'CAPA':
        if (o.capa === null) socket.write('-ERR unknown command\r\n');
        else socket.write(`+OK\r\n${(o.capa ?? ['USER', 'UIDL']).map((c) => `${c}\r\n`).join('')}.\r\n`);
        return;
      case 'USER':
        ok('');
        return;
      case 'PASS':
        if (arg === (o.password ?? 'pw')) ok('logged in');
        else socket.write('-ERR [AUTH] Authentication failed.\r\n');
        return;
      case 'UIDL':
        if (o.uidl === false) socket.write('-ERR unknown command\r\n');
        else socket.write(`+OK\r\n${mails.map((_, i) => `${i + 1} uid-${i + 1}\r\n`).join('')}.\r\n`);
        return;
      case 'LIST':
        socket.write(`+OK\r\n${mails.map((m, i) => `${i + 1} ${m.length}\r\n`).join('')}.\r\n`);
        return;
      case 'RETR': {
        const mail = mails[Number(arg) - 1];
        if (!mail) {
          socket.write('-ERR no such message\r\n');
          return;
        }
        const answer = Buffer.concat([Buffer.from(`+OK ${mail.length} octets\r\n`), stuff(mail)]);
        await writeCut(socket, o.cut ? o.cut(answer) : [answer]);
        return;
      }
      case 'QUIT':
        ok('bye');
        socket.end();
        return;
      default:
        socket.write('-ERR unknown command\r\n');
    }
  };
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

async function connect(port: number, password = 'pw'): Promise<Pop3Client> {
  const c = await Pop3Client.connect({
    host: '127.0.0.1',
    port,
    security: 'none',
    timeouts: { commandMs: 5_000 },
  });
  clients.push(c);
  await c.login({ user: 'u', password });
  return c;
}

const MAIL = Buffer.from('Subject: hi\r\n\r\nline one\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n');

describe('DotDecoder', () => {
  const stuffed = Buffer.concat([stuff(MAIL), Buffer.from('+OK next')]);

  it('un-stuffs and finds the terminator whatever two pieces the bytes come in', () => {
    for (let cut = 0; cut <= stuffed.length; cut++) {
      const parts: Buffer[] = [];
      const d = new DotDecoder((c) => parts.push(Buffer.from(c)));
      const first = d.feed(stuffed.subarray(0, cut));
      // what follows the terminator is handed back, whichever piece it was in
      const rest =
        first === null ? d.feed(stuffed.subarray(cut)) : Buffer.concat([first, stuffed.subarray(cut)]);
      expect(Buffer.concat(parts).toString(), `cut at ${cut}`).toBe(MAIL.toString());
      expect(rest?.toString(), `cut at ${cut}`).toBe('+OK next');
    }
  });

  it('works one byte at a time', () => {
    const parts: Buffer[] = [];
    const d = new DotDecoder((c) => parts.push(Buffer.from(c)));
    let rest: Buffer | null = null;
    for (let i = 0; i < stuffed.length && rest === null; i++) rest = d.feed(stuffed.subarray(i, i + 1));
    expect(Buffer.concat(parts).toString()).toBe(MAIL.toString());
  });

  it('an empty body is just the terminator', () => {
    const parts: Buffer[] = [];
    const rest = new DotDecoder((c) => parts.push(c)).feed(Buffer.from('.\r\n'));
    expect(rest?.length).toBe(0);
    expect(parts).toEqual([]);
  });

  it('a dot after a bare LF is content, not stuffing (lines end with CRLF)', () => {
    const parts: Buffer[] = [];
    new DotDecoder((c) => parts.push(c)).feed(Buffer.from('a\n.b\r\n.\r\n'));
    expect(Buffer.concat(parts).toString()).toBe('a\n.b\r\n');
  });
});

describe('Pop3Client against a scripted server', () => {
  it('RETR: the terminator split at every byte position still ends the mail exactly', async () => {
    const mails = [MAIL];
    let cutAt = 0;
    const port = await fakeServer({
      mails,
      cut: (answer) => {
        // cut somewhere in the last 8 bytes: body end, CRLF, dot, CRLF
        const at = answer.length - 8 + cutAt;
        return [answer.subarray(0, at), answer.subarray(at)];
      },
    });
    const c = await connect(port);
    for (cutAt = 0; cutAt <= 8; cutAt++) {
      expect((await c.retr(1)).toString(), `cut ${cutAt}`).toBe(MAIL.toString());
    }
    // and the session is still in step: the next answer is read as the next answer
    expect((await c.uidl()).get(1)).toBe('uid-1');
  });

  it('RETR as a stream over three-byte pieces: dot-stuffed lines and a lone "." line come back as sent', async () => {
    const port = await fakeServer({
      mails: [MAIL],
      cut: (a) => Array.from({ length: Math.ceil(a.length / 3) }, (_, i) => a.subarray(i * 3, i * 3 + 3)),
    });
    const c = await connect(port);
    const stream = await c.retrStream(1);
    expect((await buffer(stream)).toString()).toBe(MAIL.toString());
    expect((await c.uidl()).size).toBe(1);
  });

  it('streams a large mail with bounded memory while the reader is slow (backpressure)', async () => {
    const big = Buffer.from(`Subject: big\r\n\r\n${'.x\r\n'.repeat(1_000_000)}`); // 4 MB, every line stuffed
    const port = await fakeServer({ mails: [big] });
    const c = await connect(port);
    const stream = await c.retrStream(1);
    let total = 0;
    let maxBuffered = 0;
    for await (const chunk of stream) {
      total += (chunk as Buffer).length;
      maxBuffered = Math.max(maxBuffered, stream.readableLength);
      await new Promise((r) => setImmediate(r));
    }
    expect(total).toBe(big.length);
    expect(maxBuffered).toBeLessThan(2 * 1024 * 1024);
  });

  it('a -ERR to a multi-line command is one line, even in the middle of pipelined RETRs', async () => {
    const port = await fakeServer({ mails: [MAIL, MAIL], capa: ['USER', 'UIDL', 'PIPELINING'] });
    const c = await connect(port);
    const results = await Promise.allSettled([c.retr(1), c.retr(9), c.retr(2)]);
    expect(results[0]).toMatchObject({ status: 'fulfilled' });
    expect(results[2]).toMatchObject({ status: 'fulfilled' });
    const err = (results[1] as PromiseRejectedResult).reason as MailintakeError;
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(err.details.serverResponse).toBe('-ERR no such message');
  });

  it('multi-line -ERR text from a non-conforming server fails the session with PROTOCOL_ERROR, not a hang', async () => {
    const port = await fakeServer({
      mails: [MAIL],
      answer: (line) =>
        line === 'RETR 1' ? Buffer.from('-ERR message locked\r\nplease try later\r\n.\r\n') : undefined,
    });
    const c = await connect(port);
    const err = (await c.retr(1).catch((e: unknown) => e)) as MailintakeError;
    expect(err.details.serverResponse).toBe('-ERR message locked');
    // the stray lines are not taken for the answer to the next command
    const next = (await c.uidl().catch((e: unknown) => e)) as MailintakeError;
    expect(next).toBeInstanceOf(MailintakeError);
    expect(next.code).toBe('PROTOCOL_ERROR');
    expect(next.message).toContain('please try later');
  });

  it('a server without UIDL → PROTOCOL_ERROR explaining that exactly-once needs it', async () => {
    const port = await fakeServer({ uidl: false, capa: null });
    const c = await connect(port);
    const err = (await c.uidl().catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('PROTOCOL_ERROR');
    expect(err.message).toMatch(/needs UIDL.*exactly once/);
    expect(err.details.serverResponse).toBe('-ERR unknown command');
  });

  it('a server closing mid-RETR → CONNECT_FAILED naming the command and how far it got; no hang', async () => {
    const port = await fakeServer({
      mails: [MAIL],
      answer: (line, socket) => {
        if (line !== 'RETR 1') return undefined;
        socket.write('+OK\r\nSubject: half\r\n\r\nsome');
        setTimeout(() => socket.destroy(), 5);
        return Buffer.alloc(0);
      },
    });
    const c = await connect(port);
    const err = (await c.retr(1).catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('CONNECT_FAILED');
    expect(err.message).toContain('"RETR 1"');
    expect(err.message).toMatch(/closed the connection after \d+ bytes/);
    expect(c.usable).toBe(false);
  });

  it('a stream ends with an error when the server closes mid-RETR', async () => {
    const port = await fakeServer({
      mails: [MAIL],
      answer: (line, socket) => {
        if (line !== 'RETR 1') return undefined;
        socket.write('+OK\r\nSubject: half\r\n\r\nsome');
        setTimeout(() => socket.destroy(), 5);
        return Buffer.alloc(0);
      },
    });
    const c = await connect(port);
    const stream = await c.retrStream(1);
    const err = (await buffer(stream).catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('CONNECT_FAILED');
  });

  it('a wrong password → AUTH_FAILED with the server words, never the password', async () => {
    const port = await fakeServer({ password: 'right' });
    const err = (await connect(port, 'wrong-secret').catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.details.serverResponse).toBe('-ERR [AUTH] Authentication failed.');
    expect(JSON.stringify(err.toJSON())).not.toContain('wrong-secret');
  });

  it('a silent server → TIMEOUT after commandMs', async () => {
    const port = await fakeServer({
      mails: [MAIL],
      answer: (l) => (l === 'RETR 1' ? Buffer.alloc(0) : undefined),
    });
    const c = await Pop3Client.connect({
      host: '127.0.0.1',
      port,
      security: 'none',
      timeouts: { commandMs: 200 },
    });
    clients.push(c);
    await c.login({ user: 'u', password: 'pw' });
    const err = (await c.retr(1).catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toContain('RETR 1');
  });

  it('STLS required but not offered → TLS_FAILED, nothing sent in plaintext', async () => {
    const seen: string[] = [];
    const port = await fakeServer({
      answer: (l) => {
        seen.push(l);
        return undefined;
      },
    });
    const err = (await Pop3Client.connect({ host: '127.0.0.1', port, security: 'starttls' }).catch(
      (e: unknown) => e,
    )) as MailintakeError;
    expect(err.code).toBe('TLS_FAILED');
    expect(err.message).toMatch(/does not offer STLS/);
    expect(seen).toEqual(['CAPA']);
  });

  it('timeouts of 0 are refused, not taken as "no limit"', async () => {
    const err = (await Pop3Client.connect({
      host: '127.0.0.1',
      port: 1,
      security: 'none',
      timeouts: { commandMs: 0 },
    }).catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('INVALID_SETTINGS');
  });
});

/**
 * SASL for OAuth on the scripted server: what Dovecot's mech-oauth2 does. A good token → +OK; a refused one →
 * the RFC 7628 error as a "+ <base64 JSON>" challenge, the client's answer to it (XOAUTH2: an empty line;
 * OAUTHBEARER: "AQ==", a single %x01), then -ERR.
 */
function oauthAuth(accept: (token: string) => boolean) {
  const seen = { payloads: [] as string[], errorAnswers: [] as string[], commands: [] as string[] };
  let stage: { mechanism: string; step: 'initial' | 'error' } | null = null;
  const judge = (b64: string): Buffer => {
    const payload = Buffer.from(b64, 'base64').toString('utf8');
    seen.payloads.push(payload);
    if (accept(bearerInSasl(payload))) return Buffer.from('+OK Logged in.\r\n');
    stage = { mechanism: stage?.mechanism ?? '', step: 'error' };
    return Buffer.from(SASL_TOKEN_REFUSED);
  };
  const answer = (line: string): Buffer | undefined => {
    if (stage?.step === 'initial') {
      const got = judge(line);
      if (stage.step === 'initial') stage = null;
      return got;
    }
    if (stage?.step === 'error') {
      stage = null;
      seen.errorAnswers.push(line);
      return Buffer.from('-ERR [AUTH] Authentication failed.\r\n');
    }
    seen.commands.push(line.replace(/^(AUTH \S+) .*/, '$1 …'));
    const m = /^AUTH (\S+)(?: (\S+))?$/.exec(line);
    if (!m) return undefined;
    stage = { mechanism: m[1]!, step: 'initial' };
    if (m[2] === undefined) return Buffer.from('+ \r\n');
    const got = judge(m[2]);
    if (stage?.step === 'initial') stage = null;
    return got;
  };
  return { seen, answer };
}

describe('Pop3Client: SASL XOAUTH2 and OAUTHBEARER (RFC 7628)', () => {
  it('XOAUTH2 with a long token: AUTH without it on the line, the payload as the answer to "+ "', async () => {
    const token = 't'.repeat(400);
    const { seen, answer } = oauthAuth((t) => t === token);
    const port = await fakeServer({ capa: ['USER', 'UIDL', 'SASL XOAUTH2'], answer });
    const c = await Pop3Client.connect({ host: '127.0.0.1', port, security: 'none' });
    clients.push(c);
    await c.login({ user: 'u@example.test', password: '', mechanism: saslXoauth2('u@example.test', token) });
    expect(seen.commands[1]).toBe('AUTH XOAUTH2');
    expect(seen.payloads).toEqual([`user=u@example.test\x01auth=Bearer ${token}\x01\x01`]);
  });

  it('OAUTHBEARER with a short token rides on the AUTH line (RFC 5034 initial response)', async () => {
    const { seen, answer } = oauthAuth((t) => t === 'short-token-1');
    const port = await fakeServer({ capa: ['USER', 'UIDL', 'SASL OAUTHBEARER'], answer });
    const c = await Pop3Client.connect({ host: '127.0.0.1', port, security: 'none' });
    clients.push(c);
    await c.login({
      user: 'u,x=y@example.test',
      password: '',
      mechanism: saslOauthbearer('u,x=y@example.test', 'mail.example.test', 110, 'short-token-1'),
    });
    expect(seen.commands[1]).toBe('AUTH OAUTHBEARER …');
    // RFC 5801: "," and "=" in the authzid are escaped
    expect(seen.payloads).toEqual([
      'n,a=u=2Cx=3Dy@example.test,\x01host=mail.example.test\x01port=110\x01auth=Bearer short-token-1\x01\x01',
    ]);
  });

  it('a refused OAUTHBEARER token: the error challenge is answered with "AQ==", the JSON goes into serverResponse, never the token', async () => {
    const token = 'refused-token-abcdef123456';
    const { seen, answer } = oauthAuth(() => false);
    const port = await fakeServer({ capa: ['USER', 'UIDL', 'SASL OAUTHBEARER'], answer });
    const c = await Pop3Client.connect({ host: '127.0.0.1', port, security: 'none' });
    clients.push(c);
    const err = (await c
      .login({ user: 'u', password: '', mechanism: saslOauthbearer('u', '127.0.0.1', port, token) })
      .catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('AUTH_FAILED');
    expect(seen.errorAnswers).toEqual(['AQ==']);
    expect(err.details.serverResponse).toBe(
      '-ERR [AUTH] Authentication failed. {"status":"invalid_token","schemes":"bearer","scope":"mail"}',
    );
    expect(err.message).toContain('refused the OAuth token of user "u" (AUTH OAUTHBEARER)');
    expect(JSON.stringify(err.toJSON())).not.toContain(token);
    expect(JSON.stringify(err.toJSON())).not.toContain(Buffer.from(token).toString('base64').slice(0, 20));
    // the session is still in step: the next command gets its own answer
    expect((await c.uidl()).size).toBe(0);
  });

  it('a refused XOAUTH2 token: the error challenge is answered with an empty line', async () => {
    const { seen, answer } = oauthAuth(() => false);
    const port = await fakeServer({ capa: ['USER', 'UIDL', 'SASL XOAUTH2'], answer });
    const c = await Pop3Client.connect({ host: '127.0.0.1', port, security: 'none' });
    clients.push(c);
    const err = (await c
      .login({ user: 'u', password: '', mechanism: saslXoauth2('u', 'x'.repeat(300)) })
      .catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('AUTH_FAILED');
    expect(seen.errorAnswers).toEqual(['']);
    expect(JSON.stringify(err.toJSON())).not.toContain('x'.repeat(300));
  });
});

describe('Pop3Connector with OAuth 2.0', () => {
  const settingsFor = (port: number) => parseMailboxInput(loopbackOAuthMailbox('pop', 'pop-oauth', port));
  const opened: Pop3Connector[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.close()));
  });
  const connector = (port: number, tokens: FakeTokenSource) => {
    const c = new Pop3Connector(settingsFor(port), { tokens, timeouts: { commandMs: 5_000 } });
    opened.push(c);
    return c;
  };

  it('picks OAUTHBEARER when CAPA offers it, else XOAUTH2', async () => {
    for (const [sasl, expected] of [
      ['PLAIN XOAUTH2 OAUTHBEARER', 'AUTH OAUTHBEARER'],
      ['PLAIN XOAUTH2', 'AUTH XOAUTH2'],
    ] as const) {
      const tokens = fakeTokenSource();
      const { seen, answer } = oauthAuth(() => true);
      const port = await fakeServer({ capa: ['USER', 'UIDL', `SASL ${sasl}`], answer });
      await connector(port, tokens).open();
      expect(seen.commands[1]?.startsWith(expected)).toBe(true);
      expect(seen.payloads[0]).toContain(`auth=Bearer ${tokens.issued[0]}\x01`);
    }
  });

  it('a refused token is renewed once and tried again on the same connection', async () => {
    const tokens = fakeTokenSource({ tokenLength: 40 });
    const { seen, answer } = oauthAuth((t) => t === tokens.issued[1]);
    const port = await fakeServer({ capa: ['USER', 'UIDL', 'SASL OAUTHBEARER'], answer, mails: [MAIL] });
    const c = connector(port, tokens);
    await c.open();
    expect(tokens.calls.renew).toEqual([tokens.issued[0]]);
    expect(seen.payloads).toHaveLength(2);
    expect(await c.listNew()).toHaveLength(1);
  });

  it('refused again → AUTH_FAILED saying what to check and how to authorize again; the token never shown', async () => {
    const tokens = fakeTokenSource();
    const { answer } = oauthAuth(() => false);
    const port = await fakeServer({ capa: ['USER', 'UIDL', 'SASL XOAUTH2'], answer });
    const err = (await connector(port, tokens)
      .open()
      .catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toMatch(
      /refused the OAuth token for user "help@example.test" \(AUTH XOAUTH2\), also after/,
    );
    expect(err.message).toContain('account that consented is "help@example.test"');
    expect(err.message).toContain('`mailintake mailbox authorize pop-oauth`');
    expect(err.details.serverResponse).toContain('"status":"invalid_token"');
    expect(tokens.calls.renew).toHaveLength(1);
    expectNoTokenIn(err, tokens);
  });

  it('renew failing with OAUTH_REAUTHORIZE_REQUIRED surfaces that error as it is', async () => {
    const tokens = fakeTokenSource();
    const withdrawn = tokens.withdrawConsent();
    const { answer } = oauthAuth(() => false);
    const port = await fakeServer({ capa: ['USER', 'UIDL', 'SASL XOAUTH2'], answer });
    expect(
      await connector(port, tokens)
        .open()
        .catch((e: unknown) => e),
    ).toBe(withdrawn);
  });

  it('a server offering neither XOAUTH2 nor OAUTHBEARER → AUTH_FAILED saying so; no token is fetched', async () => {
    const tokens = fakeTokenSource();
    const port = await fakeServer({ capa: ['USER', 'UIDL', 'SASL PLAIN LOGIN'] });
    const err = (await connector(port, tokens)
      .open()
      .catch((e: unknown) => e)) as MailintakeError;
    expect(err.code).toBe('AUTH_FAILED');
    expect(err.message).toContain('does not offer XOAUTH2 or OAUTHBEARER');
    expect(err.message).toContain('PLAIN, LOGIN');
    expect(tokens.calls.get).toBe(0);
  });
});
