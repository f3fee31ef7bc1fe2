/**
 * A real SMTP server on loopback for tests (smtp-server, from the Nodemailer project): plain, STARTTLS or TLS
 * from the first byte with a self-signed certificate the tests trust through `caFile`, AUTH PLAIN checked
 * against one account, and AUTH XOAUTH2 checked by a verifier (a refused token gets the XOAUTH2 error
 * challenge, then 535, as Gmail answers). Every mail it takes is kept with its envelope and parsed with mailparser; tests wait
 * for mails with `waitFor(n)` (no sleeps). It can refuse recipients with a given reply and be stopped and
 * started again on the same port (a server that is down, then back).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { conditions } from '../kit/conditions.js';
import { makeCertificate } from './certificate.js';

export interface ReceivedMail {
  from: string;
  /** Envelope recipients (RCPT TO) in the order given. */
  to: string[];
  /** The AUTH user name, or null without login. */
  user: string | null;
  /** The session was TLS (implicit or after STARTTLS). */
  secure: boolean;
  raw: Buffer;
  parsed: ParsedMail;
}

export interface SmtpTestServerOptions {
  /** 'starttls' (default): STARTTLS offered; 'implicit': TLS from the first byte; 'none': plain only. */
  tls?: 'none' | 'starttls' | 'implicit';
  /** The one account AUTH PLAIN accepts; login is then required. Absent: no AUTH at all. */
  auth?: { username: string; password: string };
  /**
   * AUTH XOAUTH2 is offered and login required; the verifier says whether `accessToken` is valid for `user`.
   * A refusal is answered like Gmail: `334 <base64 {"status":"401","schemes":"bearer","scope":…}>`, then 535.
   */
  xoauth2?: (user: string, accessToken: string) => Promise<boolean>;
  /** A refused token gets 535 at once, without the error challenge (as Microsoft 365 answers). */
  xoauth2RefuseAtOnce?: boolean;
}

export interface SmtpTestServer {
  host: '127.0.0.1';
  port: number;
  /** The self-signed certificate, to trust as a private CA. */
  caFile: string;
  mails: ReceivedMail[];
  /** Logins refused (wrong user name or password, or a refused token). */
  refusedLogins: number;
  /** Every login tried, in order: the mechanism and the user (never the secret). */
  logins: { method: string; user: string; accepted: boolean }[];
  /** Resolves once at least `count` mails arrived (at once if they did). */
  waitFor(count: number): Promise<ReceivedMail[]>;
  /**
   * Refuse every RCPT TO with this reply (e.g. 451 try later, 550 no such user) until called with null; with
   * `only`, just those addresses (the mail goes to the others: a partial refusal).
   */
  refuseRecipients(reply: { code: number; message: string } | null, only?: string[]): void;
  /** Stops listening and drops the connections; `start()` listens again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops for good and removes the certificate directory. */
  close(): Promise<void>;
}

export async function startSmtpServer(opts: SmtpTestServerOptions = {}): Promise<SmtpTestServer> {
  const mode = opts.tls ?? 'starttls';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-smtp-'));
  await makeCertificate(dir, ['localhost', '127.0.0.1']);
  const key = await readFile(path.join(dir, 'key.pem'));
  const cert = await readFile(path.join(dir, 'cert.pem'));
  const mails: ReceivedMail[] = [];
  const arrived = conditions();
  let refusal: { code: number; message: string } | null = null;
  let refusedOnly: Set<string> | null = null;
  let port = 0;
  let server: SMTPServer | null = null;
  const state = { refusedLogins: 0 };
  const logins: { method: string; user: string; accepted: boolean }[] = [];
  const loginRequired = opts.auth !== undefined || opts.xoauth2 !== undefined;

  const options: SMTPServerOptions = {
    key,
    cert,
    secure: mode === 'implicit',
    logger: false,
    // no reverse DNS of 127.0.0.1 per connection (slow where no resolver answers)
    disableReverseLookup: true,
    // quick shutdown in stop(): the client's connection is cut, like a server going down
    closeTimeout: 50,
    disabledCommands: [...(mode === 'none' ? ['STARTTLS'] : []), ...(loginRequired ? [] : ['AUTH'])],
    authMethods: opts.xoauth2 ? [...(opts.auth ? ['PLAIN'] : []), 'XOAUTH2'] : ['PLAIN'],
    authOptional: !loginRequired,
    // AUTH only over TLS, like a real submission server: a client that skips STARTTLS cannot log in
    allowInsecureAuth: mode === 'none',
    onAuth(auth, _session, callback) {
      const verify = opts.xoauth2;
      if (auth.method === 'XOAUTH2' && verify) {
        const user = auth.username ?? '';
        verify(user, auth.accessToken ?? '').then(
          (ok) => {
            logins.push({ method: 'XOAUTH2', user, accepted: ok });
            if (ok) {
              callback(null, { user });
              return;
            }
            state.refusedLogins++;
            if (opts.xoauth2RefuseAtOnce) {
              callback(Object.assign(new Error('5.7.3 Authentication unsuccessful'), { responseCode: 535 }));
              return;
            }
            // smtp-server sends this as the 334 error challenge, waits for the client's empty line, then 535
            callback(null, { data: { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' } });
          },
          (err: Error) => callback(err),
        );
        return;
      }
      const accepted =
        auth.method === 'PLAIN' &&
        auth.username === opts.auth?.username &&
        auth.password === opts.auth?.password;
      logins.push({ method: auth.method, user: auth.username ?? '', accepted });
      if (accepted) {
        callback(null, { user: auth.username });
        return;
      }
      state.refusedLogins++;
      callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, callback) {
      const applies = refusedOnly === null || refusedOnly.has(address.address.toLowerCase());
      if (refusal && applies)
        callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
      else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        simpleParser(raw).then(
          (parsed) => {
            mails.push({
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              to: session.envelope.rcptTo.map((r) => r.address),
              user: (session.user as string | undefined) ?? null,
              secure: session.secure,
              raw,
              parsed,
            });
            callback();
            arrived.recheck();
          },
          (err: Error) => callback(err),
        );
      });
    },
  };

  const start = async () => {
    const s = new SMTPServer(options);
    s.on('error', () => undefined); // a client that drops the connection is not the test's concern
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    port = (s.server.address() as { port: number }).port;
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await start();

  return {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    caFile: path.join(dir, 'cert.pem'),
    mails,
    get refusedLogins() {
      return state.refusedLogins;
    },
    logins,
    waitFor: async (count) => {
      await arrived.until(() => mails.length >= count);
      return mails;
    },
    refuseRecipients: (reply, only) => {
      refusal = reply;
      refusedOnly = only ? new Set(only.map((a) => a.toLowerCase())) : null;
    },
    stop,
    start,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
