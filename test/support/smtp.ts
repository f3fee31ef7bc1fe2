/**
 * A real SMTP server on loopback for tests (smtp-server, from the Nodemailer project): plain, STARTTLS or TLS
 * from the first byte with a self-signed certificate the tests trust through `caFile`, AUTH PLAIN checked
 * against one account. Every mail it takes is kept with its envelope and parsed with mailparser; tests wait
 * for mails with `waitFor(n)` (no sleeps). It can refuse recipients with a given reply and be stopped and
 * started again on the same port (a server that is down, then back).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { makeCertificate } from './certificate.js';
import { conditions } from './conditions.js';

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
}

export interface SmtpTestServer {
  host: '127.0.0.1';
  port: number;
  /** The self-signed certificate, to trust as a private CA. */
  caFile: string;
  mails: ReceivedMail[];
  /** Logins refused (wrong user name or password). */
  refusedLogins: number;
  /** Resolves once at least `count` mails arrived (at once if they did). */
  waitFor(count: number): Promise<ReceivedMail[]>;
  /** Refuse every RCPT TO with this reply (e.g. 451 try later, 550 no such user) until called with null. */
  refuseRecipients(reply: { code: number; message: string } | null): void;
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
  let port = 0;
  let server: SMTPServer | null = null;
  const state = { refusedLogins: 0 };

  const options: SMTPServerOptions = {
    key,
    cert,
    secure: mode === 'implicit',
    logger: false,
    // no reverse DNS of 127.0.0.1 per connection (slow where no resolver answers)
    disableReverseLookup: true,
    // quick shutdown in stop(): the client's connection is cut, like a server going down
    closeTimeout: 50,
    disabledCommands: [...(mode === 'none' ? ['STARTTLS'] : []), ...(opts.auth ? [] : ['AUTH'])],
    authMethods: ['PLAIN'],
    authOptional: !opts.auth,
    // AUTH only over TLS, like a real submission server: a client that skips STARTTLS cannot log in
    allowInsecureAuth: mode === 'none',
    onAuth(auth, _session, callback) {
      if (
        auth.method === 'PLAIN' &&
        auth.username === opts.auth?.username &&
        auth.password === opts.auth?.password
      ) {
        callback(null, { user: auth.username });
        return;
      }
      state.refusedLogins++;
      callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(_address, _session, callback) {
      if (refusal) callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
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
    waitFor: async (count) => {
      await arrived.until(() => mails.length >= count);
      return mails;
    },
    refuseRecipients: (reply) => {
      refusal = reply;
    },
    stop,
    start,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
