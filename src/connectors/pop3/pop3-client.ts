import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { type ErrorCode, type ErrorDetails, MailintakeError } from '../../kernel/errors.js';
import {
  POP3_MAX_STATUS_LINE_BYTES as MAX_STATUS_LINE,
  POP3_PIPELINE_WINDOW,
  POP3_QUOTED_LINE_MAX_CHARS,
  POP3_STREAM_BUFFER_BYTES,
  POP3_TIMEOUTS,
} from '../../kernel/limits.js';
import { oauthbearerPayload, xoauth2Payload } from '../../oauth/token-source.js';
import {
  certificateProblem,
  DNS_ERROR_CODES,
  nameMismatch,
  POP3_NAMES,
  SOCKET_ERROR_CODES,
  SOCKET_TIMEOUT_CODES,
  scrubPassword,
  serverLabel,
  socketFailureText,
  validateTimeouts,
} from '../net-errors.js';

/**
 * A small, strict POP3 client: RFC 1939 (USER/PASS, STAT, UIDL, LIST, RETR, TOP, DELE, RSET, QUIT), RFC 2449
 * CAPA and PIPELINING, RFC 2595 STLS, RFC 5034 SASL (PLAIN with an initial response; XOAUTH2 and RFC 7628
 * OAUTHBEARER for OAuth 2.0 access tokens).
 *
 * Why by hand: the npm POP3 clients break on TLS. node-pop3 only recognises the `\r\n.\r\n` terminator when it
 * ends a received chunk, so it hangs on POP3S as soon as TLS records split the terminator; yapople crashes on
 * POP3S; neither has STLS nor SASL (see shared/reference/dovecot-test-server.md). Here a multi-line answer is
 * decoded by a byte-level state machine that does not care how the bytes are chunked (tests split the
 * terminator at every position), un-dot-stuffs on the fly and can stream a 50 MB mail with backpressure.
 *
 * Every failure is a MailintakeError with the codes the IMAP connector uses (DNS_FAILED, CONNECT_FAILED,
 * TLS_FAILED, AUTH_FAILED, TIMEOUT, PROTOCOL_ERROR); messages name server:port and the command, never the
 * password; a server's `-ERR …` text is in `details.serverResponse`.
 */

export interface Pop3Timeouts {
  /** TCP connect plus TLS handshake (includes DNS). Default 15 s. */
  connectMs: number;
  /** From TCP connect to the server's greeting. Default 15 s. */
  greetingMs: number;
  /** Silence while an answer is awaited before giving up. Default 5 min (a 50 MB RETR can be slow). */
  commandMs: number;
}

export const DEFAULT_POP3_TIMEOUTS: Pop3Timeouts = { ...POP3_TIMEOUTS };

/** Commands in flight at once when the server announces PIPELINING (RFC 2449 §6.6). */
export const DEFAULT_PIPELINE_WINDOW = POP3_PIPELINE_WINDOW;

export type Pop3Security = 'tls' | 'starttls' | 'none';

export interface Pop3ClientOptions {
  host: string;
  port: number;
  /** tls: TLS from the first byte (POP3S, 995); starttls: plain then STLS, required; none: plaintext on purpose. */
  security: Pop3Security;
  /** A private CA (PEM) trusted in addition to the system's. Verification is never turned off. */
  ca?: Buffer;
  timeouts?: Partial<Pop3Timeouts>;
  /** Commands in flight with PIPELINING; 1 turns pipelining off. Default 32. */
  pipelineWindow?: number;
}

/** RFC 5034 SASL: how a mechanism answers. PLAIN, XOAUTH2, OAUTHBEARER. */
export interface SaslMechanism {
  readonly name: string;
  /** The base64 initial response (RFC 5034 §4: sent with AUTH when the line stays within 255 octets). */
  initialResponse(): string;
  /** The base64 answer to a server challenge; undefined cancels the exchange with "*". */
  respond?(challenge: string): string | undefined;
  /** What must never appear in a message or a detail (a token, and the initial response carrying it). */
  readonly secrets?: readonly string[];
  /** The error the server sent in a challenge before its -ERR (RFC 7628 §3.2.2: JSON), decoded. */
  serverError?(): string | undefined;
}

/** AUTH PLAIN (RFC 4616): authorization id empty, the user, the password. */
export function saslPlain(user: string, password: string): SaslMechanism {
  return {
    name: 'PLAIN',
    initialResponse: () => Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64'),
  };
}

/**
 * AUTH XOAUTH2 (Google's and Microsoft's OAuth 2.0 mechanism): `user=…^Aauth=Bearer …^A^A`. On a refused
 * token the server sends its error as a challenge (base64 JSON: status, schemes, scope) and waits; the answer
 * is an empty line, and then the server ends the exchange with -ERR (what Google and Microsoft document, and
 * Dovecot's mech-oauth2 does).
 */
export function saslXoauth2(user: string, token: string): SaslMechanism {
  return oauthMechanism('XOAUTH2', xoauth2Payload(user, token), token, '');
}

/**
 * AUTH OAUTHBEARER (RFC 7628): GS2 header, host, port, `auth=Bearer …`. On a refused token the server sends
 * its error as a challenge (base64 JSON); RFC 7628 §3.2.3: the client MUST answer with a single %x01 (base64
 * "AQ==") so the server can end the exchange with -ERR.
 */
export function saslOauthbearer(user: string, host: string, port: number, token: string): SaslMechanism {
  return oauthMechanism('OAUTHBEARER', oauthbearerPayload(user, host, port, token), token, 'AQ==');
}

function oauthMechanism(name: string, payload: string, token: string, ending: string): SaslMechanism {
  const initial = Buffer.from(payload, 'utf8').toString('base64');
  let said: string | undefined;
  return {
    name,
    initialResponse: () => initial,
    respond: (challenge) => {
      // only one challenge can come after the initial response: the error. Anything it says is kept for the
      // message (scrubbed like everything else), never trusted as a request for more.
      const decoded = Buffer.from(challenge.trim(), 'base64').toString('utf8');
      // biome-ignore lint/suspicious/noControlCharactersInRegex: a server's bytes must not break a message line
      said = truncate(decoded.replace(/[\x00-\x1f\x7f]+/g, ' ').trim()) || undefined;
      return ending;
    },
    secrets: [token, initial],
    serverError: () => said,
  };
}

export interface Pop3Login {
  user: string;
  password: string;
  /** A SASL mechanism to use instead of the default (AUTH PLAIN when offered, else USER/PASS). */
  mechanism?: SaslMechanism;
}

/** Where a multi-line answer's body goes: a buffer collector or a stream. `write` false = slow down. */
interface BodySink {
  write(chunk: Buffer): boolean;
  end(): void;
  fail(err: MailintakeError): void;
}

interface Pending {
  /** The command as messages may show it (a password never appears). */
  label: string;
  /** The line to send; null for the greeting, which is awaited without a command. */
  line: string | null;
  multi: boolean;
  written: boolean;
  /** +OK of a multi-line answer: where its body goes. */
  begin?: (status: string) => BodySink;
  /** "+ challenge" during AUTH: the line to answer with. */
  challenge?: (text: string) => string;
  resolve(status: string): void;
  reject(err: MailintakeError): void;
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/**
 * Un-dot-stuffs a multi-line body (RFC 1939 §3) as bytes arrive, in whatever pieces: a line that begins with
 * "." had one prepended by the server; the line ".\r\n" ends the body. A line starts only after CRLF (a bare LF
 * inside a mail does not start one: the server stuffs only CRLF lines). Bytes are handed on in as few slices
 * as possible (the only cut is a removed stuffing dot), so a 50 MB mail is not split into a million pieces.
 */
export class DotDecoder {
  private lineStart = true;
  private prevCR = false;
  private held: Buffer | null = null;
  /** Bytes of body handed on (after un-stuffing). */
  bytes = 0;

  constructor(private readonly emit: (chunk: Buffer) => void) {}

  /** Feeds bytes; returns null while the body goes on, or the bytes after the terminator once it ended. */
  feed(chunk: Buffer): Buffer | null {
    const data = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = null;
    let segStart = 0;
    let i = 0;
    const out = (end: number) => {
      if (end > segStart) {
        this.bytes += end - segStart;
        this.emit(data.subarray(segStart, end));
      }
    };
    while (i < data.length) {
      if (this.lineStart) {
        if (data[i] === DOT) {
          // up to three bytes decide between ".\r\n" (the end) and a stuffed line; wait for them
          if (i + 1 >= data.length || (data[i + 1] === CR && i + 2 >= data.length)) {
            out(i);
            this.held = data.subarray(i);
            return null;
          }
          if (data[i + 1] === CR && data[i + 2] === LF) {
            out(i);
            return data.subarray(i + 3);
          }
          // byte-stuffed: drop the termination octet the server prepended
          out(i);
          i += 1;
          segStart = i;
        }
        this.lineStart = false;
        if (i >= data.length) break;
      }
      const nl = data.indexOf(LF, i);
      if (nl < 0) {
        this.prevCR = data[data.length - 1] === CR;
        i = data.length;
        break;
      }
      this.lineStart = nl > i ? data[nl - 1] === CR : this.prevCR;
      this.prevCR = false;
      i = nl + 1;
    }
    out(data.length);
    return null;
  }
}

/** The capabilities from CAPA: upper-cased tag → the rest of the line (e.g. SASL → "PLAIN LOGIN"). */
export type Pop3Capabilities = Map<string, string>;

export class Pop3Client {
  readonly where: string;
  private readonly opts: Pop3ClientOptions;
  private readonly timeouts: Pop3Timeouts;
  private readonly window: number;
  private socket: net.Socket | null = null;
  private queue: Pending[] = [];
  private rest: Buffer = Buffer.alloc(0);
  private decoder: DotDecoder | null = null;
  private sink: BodySink | null = null;
  /** The first failure of this connection; every later command rejects with it. */
  private failure: MailintakeError | null = null;
  private pausedForBackpressure = false;
  /** The password of a login: scrubbed from every message and detail. */
  private password = '';
  /** The token of an OAuth login (and the SASL payload carrying it): scrubbed the same way. */
  private tokens: string[] = [];
  /** Capabilities from the last CAPA (null: the server does not know CAPA). */
  capabilities: Pop3Capabilities | null = null;
  greeting = '';

  /** Connected, logged in or not, and nothing has failed: commands can be sent. */
  get usable(): boolean {
    return this.socket !== null && this.failure === null;
  }

  private constructor(opts: Pop3ClientOptions) {
    this.opts = opts;
    this.where = serverLabel({ server: opts.host, port: opts.port });
    this.timeouts = validateTimeouts(DEFAULT_POP3_TIMEOUTS, opts.timeouts);
    const window = opts.pipelineWindow ?? DEFAULT_PIPELINE_WINDOW;
    if (!Number.isInteger(window) || window < 1) {
      throw new MailintakeError('INVALID_SETTINGS', 'pipelineWindow must be a positive integer', {
        details: { fields: [{ field: 'pipelineWindow', message: 'must be a positive integer' }] },
      });
    }
    this.window = window;
  }

  /** Connects, reads the greeting, reads CAPA and (security "starttls") upgrades with STLS. Not logged in yet. */
  static async connect(opts: Pop3ClientOptions): Promise<Pop3Client> {
    const client = new Pop3Client(opts);
    try {
      await client.start();
    } catch (err) {
      client.destroy();
      throw err;
    }
    return client;
  }

  private tlsOptions(): tls.ConnectionOptions {
    return {
      // verification stays on (rejectUnauthorized defaults to true); a private CA is added to the system's
      ...(this.opts.ca ? { ca: [...tls.rootCertificates, this.opts.ca.toString()] } : {}),
      minVersion: 'TLSv1.2',
      // SNI must not carry an IP address (RFC 6066 §3); Node then checks the IP against the IP SANs
      ...(net.isIP(this.opts.host) ? {} : { servername: this.opts.host }),
    };
  }

  private async start(): Promise<void> {
    const { host, port } = this.opts;
    const step = this.opts.security === 'tls' ? 'connecting with TLS' : 'connecting';
    const socket =
      this.opts.security === 'tls'
        ? tls.connect({ host, port, ...this.tlsOptions() })
        : net.connect({ host, port });
    await this.established(socket, this.opts.security === 'tls' ? 'secureConnect' : 'connect', step);
    this.attach(socket);
    // the greeting is an answer without a command
    const greeting = this.enqueue({ label: 'the greeting', line: null, multi: false });
    socket.setTimeout(this.timeouts.greetingMs);
    this.greeting = await greeting;
    await this.capa();
    if (this.opts.security === 'starttls') await this.stls();
  }

  /** Waits for TCP connect (or the TLS handshake) within connectMs; coded failure otherwise. */
  private established(socket: net.Socket, event: 'connect' | 'secureConnect', step: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(
          this.error(
            'TIMEOUT',
            `${this.where} timed out while ${step}: no connection within ${this.timeouts.connectMs / 1000} s. A firewall may drop the packets, or the port is wrong.`,
            step,
          ),
        );
      }, this.timeouts.connectMs);
      const onError = (err: Error) => {
        cleanup();
        socket.destroy();
        reject(this.netError(err, step));
      };
      const onClose = () => {
        cleanup();
        reject(this.error('CONNECT_FAILED', `${this.where} closed the connection while ${step}.`, step));
      };
      const onDone = () => {
        cleanup();
        resolve();
      };
      const cleanup = () => {
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('close', onClose);
        socket.off(event, onDone);
      };
      socket.once('error', onError);
      socket.once('close', onClose);
      socket.once(event, onDone);
    });
  }

  private readonly onData = (chunk: Buffer) => this.receive(chunk);
  private readonly onError = (err: Error) => this.failAll(this.netError(err, this.currentStep()));
  private readonly onClose = () => {
    const step = this.currentStep();
    const mid = this.decoder ? ` after ${this.decoder.bytes} bytes of the answer` : '';
    this.failAll(
      this.error(
        'CONNECT_FAILED',
        `Could not talk to ${this.where} while ${step}: the server closed the connection${mid}. The next round reconnects.`,
        step,
      ),
    );
  };
  private readonly onTimeout = () => {
    const step = this.currentStep();
    const greeting = step === 'the greeting';
    const hint =
      greeting && this.opts.security !== 'tls'
        ? ` No POP3 greeting within ${this.timeouts.greetingMs / 1000} s: if this port expects TLS from the start (usually 995), use protocol "pops".`
        : ' The server stopped answering; the next round tries again.';
    this.failAll(
      this.error(
        'TIMEOUT',
        `${this.where} timed out while ${greeting ? 'waiting for the greeting' : step}.${hint}`,
        step,
      ),
    );
    this.socket?.destroy();
  };

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
  }

  private detach(socket: net.Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
    socket.off('timeout', this.onTimeout);
    socket.setTimeout(0);
  }

  private currentStep(): string {
    const p = this.queue.find((q) => q.written) ?? this.queue[0];
    return p ? (p.line === null ? p.label : `"${p.label}"`) : 'idle';
  }

  /** The inactivity watchdog runs only while an answer is awaited and we are not the ones holding back. */
  private armTimeout(): void {
    if (!this.socket) return;
    const waiting = this.queue.some((p) => p.written || p.line === null);
    this.socket.setTimeout(waiting && !this.pausedForBackpressure ? this.timeouts.commandMs : 0);
  }

  private receive(chunk: Buffer): void {
    let data = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = Buffer.alloc(0);
    while (data.length > 0 && !this.failure) {
      if (this.decoder) {
        const after = this.decoder.feed(data);
        if (after === null) break;
        const done = this.queue.shift();
        const sink = this.sink;
        this.decoder = null;
        this.sink = null;
        sink?.end();
        done?.resolve('');
        data = after;
        // a paused stream's reader is not asked for more after its end: read the next answers now
        if (this.pausedForBackpressure) {
          this.pausedForBackpressure = false;
          this.socket?.resume();
        }
        this.pump();
        continue;
      }
      const eol = data.indexOf('\r\n');
      if (eol < 0) {
        if (data.length > MAX_STATUS_LINE) {
          this.protocolFailure(`an answer line longer than ${MAX_STATUS_LINE} bytes without CRLF`);
          return;
        }
        this.rest = data;
        break;
      }
      const line = data.subarray(0, eol).toString('utf8');
      data = data.subarray(eol + 2);
      this.status(line);
    }
    this.armTimeout();
  }

  private status(line: string): void {
    const p = this.queue[0];
    if (!p || (!p.written && p.line !== null)) {
      // Dovecot says "-ERR Disconnected for inactivity." before it closes; anything unasked is not ours to read
      this.protocolFailure(`an answer nobody asked for: "${truncate(line)}"`);
      return;
    }
    if (line.startsWith('+OK')) {
      if (p.multi && p.begin) {
        this.sink = p.begin(line);
        this.decoder = new DotDecoder((chunk) => {
          if (!this.sink?.write(chunk) && !this.pausedForBackpressure) {
            // the reader is slower than the network: stop reading (TCP flow control does the rest)
            this.pausedForBackpressure = true;
            this.socket?.pause();
          }
        });
        return;
      }
      this.queue.shift();
      p.resolve(line);
      this.pump();
      return;
    }
    if (line.startsWith('-ERR')) {
      // -ERR is always one line, also for commands whose +OK answer is multi-line (RFC 1939 §3)
      this.queue.shift();
      p.reject(this.serverRefused(p, line));
      this.pump();
      return;
    }
    if ((line === '+' || line.startsWith('+ ')) && p.challenge) {
      this.socket?.write(`${p.challenge(line.slice(2))}\r\n`);
      return;
    }
    this.protocolFailure(`"${truncate(line)}" in answer to ${p.line === null ? p.label : `"${p.label}"`}`);
  }

  /** Called by a stream's reader when it wants more. */
  private resume(): void {
    if (!this.pausedForBackpressure) return;
    this.pausedForBackpressure = false;
    this.socket?.resume();
    this.armTimeout();
  }

  private protocolFailure(what: string): void {
    this.failAll(
      this.error(
        'PROTOCOL_ERROR',
        `${this.where} sent ${what}; the connection was closed.`,
        this.currentStep(),
      ),
    );
    this.socket?.destroy();
  }

  private failAll(err: MailintakeError): void {
    if (!this.failure) this.failure = err;
    const failure = this.failure;
    const sink = this.sink;
    this.sink = null;
    this.decoder = null;
    const pending = this.queue.splice(0);
    sink?.fail(failure);
    for (const p of pending) p.reject(failure);
    if (this.socket) this.socket.setTimeout(0);
  }

  private enqueue(p: Omit<Pending, 'written' | 'resolve' | 'reject'>): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.socket) {
      return Promise.reject(this.error('PROTOCOL_ERROR', `Not connected to ${this.where}`, p.label));
    }
    return new Promise<string>((resolve, reject) => {
      this.queue.push({ ...p, written: p.line === null, resolve, reject });
      this.pump();
      this.armTimeout();
    });
  }

  /** Writes queued commands: one at a time, or up to the window when the server allows PIPELINING. */
  private pump(): void {
    if (!this.socket || this.failure) return;
    const limit = this.capabilities?.has('PIPELINING') ? this.window : 1;
    let inFlight = this.queue.filter((q) => q.written).length;
    for (const p of this.queue) {
      if (inFlight >= limit) break;
      if (p.written) continue;
      p.written = true;
      inFlight++;
      this.socket.write(`${p.line}\r\n`);
    }
  }

  /** A single-line command. */
  command(line: string, label = line): Promise<string> {
    return this.enqueue({ label, line, multi: false });
  }

  /** A multi-line command, its body collected into one Buffer. */
  async multiBuffer(line: string): Promise<{ status: string; body: Buffer }> {
    let status = '';
    const parts: Buffer[] = [];
    let finish: (b: Buffer) => void = () => undefined;
    let failBody: (e: MailintakeError) => void = () => undefined;
    const body = new Promise<Buffer>((resolve, reject) => {
      finish = resolve;
      failBody = reject;
    });
    body.catch(() => undefined); // awaited below; a failure may come before that

    await this.enqueue({
      label: line,
      line,
      multi: true,
      begin: (s) => {
        status = s;
        return {
          write: (chunk) => {
            parts.push(chunk);
            return true;
          },
          end: () => finish(Buffer.concat(parts)),
          fail: (e) => failBody(e),
        };
      },
    }).catch((err: MailintakeError) => {
      // -ERR or a failure before the body began
      failBody(err);
    });
    return { status, body: await body };
  }

  /** A multi-line command whose body is streamed: resolves at +OK with a Readable (backpressure honoured). */
  multiStream(line: string): Promise<Readable> {
    return new Promise<Readable>((resolve, reject) => {
      const stream = new Readable({
        // a small buffer: the socket is paused once this fills, so memory stays bounded whatever the mail size
        highWaterMark: POP3_STREAM_BUFFER_BYTES,
        read: () => this.resume(),
        destroy: (err, cb) => {
          // the reader gave up before the end: the rest of the answer would arrive unasked; the connection
          // cannot be used any more
          if (this.sink === sink) {
            this.failAll(
              this.error('PROTOCOL_ERROR', `The reader stopped reading "${line}" before its end`, line),
            );
            this.socket?.destroy();
          }
          cb(err);
        },
      });
      const sink: BodySink = {
        write: (chunk) => stream.push(chunk),
        end: () => stream.push(null),
        fail: (e) => stream.destroy(e),
      };
      this.enqueue({
        label: line,
        line,
        multi: true,
        begin: () => {
          resolve(stream);
          return sink;
        },
      }).catch(reject);
    });
  }

  /** CAPA (RFC 2449): null when the server does not know it (a plain RFC 1939 server). */
  async capa(): Promise<Pop3Capabilities | null> {
    try {
      const { body } = await this.multiBuffer('CAPA');
      const caps: Pop3Capabilities = new Map();
      for (const l of body.toString('utf8').split('\r\n')) {
        const [tag, ...rest] = l.trim().split(/\s+/);
        if (tag) caps.set(tag.toUpperCase(), rest.join(' '));
      }
      this.capabilities = caps;
    } catch (err) {
      if (!(err instanceof MailintakeError) || err.details.serverResponse === undefined) throw err;
      this.capabilities = null;
    }
    return this.capabilities;
  }

  /** RFC 2595 STLS: upgrade this very socket, certificate verified, then forget what was said in plaintext. */
  private async stls(): Promise<void> {
    const step = 'STLS';
    if (this.capabilities && !this.capabilities.has('STLS')) {
      throw this.error(
        'TLS_FAILED',
        `TLS with ${this.where} failed: the server does not offer STLS although the mailbox requires it. Use protocol "pops" (port 995) if the server has it, or ask the server admin to enable STLS; turning starttls off sends the password in plaintext.`,
        step,
      );
    }
    try {
      await this.command('STLS');
    } catch (err) {
      if (err instanceof MailintakeError && err.details.serverResponse !== undefined) {
        throw this.error('TLS_FAILED', `TLS with ${this.where} failed: the server refused STLS.`, step, {
          serverResponse: err.details.serverResponse,
        });
      }
      throw err;
    }
    if (this.rest.length > 0) {
      // bytes after "+OK" and before the handshake were injected by someone on the path (CVE-2011-0411 class)
      throw this.error(
        'TLS_FAILED',
        `TLS with ${this.where} failed: the server sent data after its STLS answer, before TLS began (a possible injection); the connection was closed.`,
        step,
      );
    }
    const plain = this.socket!;
    this.detach(plain);
    this.socket = null;
    // `host` must be given with `socket`: without it Node checks the certificate against "localhost"
    const secure = tls.connect({ socket: plain, host: this.opts.host, ...this.tlsOptions() });
    try {
      await this.established(secure, 'secureConnect', 'the TLS handshake after STLS');
    } catch (err) {
      plain.destroy();
      throw err;
    }
    this.attach(secure);
    // RFC 2595 §4: capabilities seen before TLS may have been forged; ask again
    await this.capa();
  }

  /**
   * Logs in: the given SASL mechanism, else AUTH PLAIN when CAPA announces it (one round trip, RFC 5034), else
   * USER/PASS. AUTH_FAILED for a refusal; a busy mailbox or a server fault (RFC 3206 codes) is said as such.
   */
  async login(login: Pop3Login): Promise<void> {
    this.password = login.password;
    this.tokens = [...this.tokens, ...(login.mechanism?.secrets ?? [])];
    const sasl = this.saslMechanisms();
    const mechanism =
      login.mechanism ?? (sasl.includes('PLAIN') ? saslPlain(login.user, login.password) : null);
    try {
      if (mechanism) await this.authenticate(mechanism);
      else {
        await this.command(`USER ${login.user}`);
        await this.command(`PASS ${login.password}`, 'PASS ***');
      }
    } catch (err) {
      throw this.loginError(err, login.user, mechanism);
    }
    // some servers announce more (PIPELINING, …) once logged in (RFC 2449 §5)
    await this.capa();
  }

  private async authenticate(mechanism: SaslMechanism): Promise<void> {
    const initial = mechanism.initialResponse();
    const withInitial = `AUTH ${mechanism.name} ${initial || '='}`;
    const label = `AUTH ${mechanism.name} ***`;
    let first = true;
    // RFC 5034 §4: an initial response that would make the line longer than 255 octets is sent as the answer
    // to the server's first (empty) challenge instead
    const inline = withInitial.length + 2 <= 255;
    await this.enqueue({
      label,
      line: inline ? withInitial : `AUTH ${mechanism.name}`,
      multi: false,
      challenge: (text) => {
        if (first && !inline) {
          first = false;
          return initial || '=';
        }
        return mechanism.respond?.(text) ?? '*';
      },
    });
  }

  /** The SASL mechanisms CAPA announced, upper case (RFC 2449 §6.3). */
  saslMechanisms(): string[] {
    return this.capabilities?.get('SASL')?.toUpperCase().split(/\s+/).filter(Boolean) ?? [];
  }

  private loginError(err: unknown, user: string, mechanism: SaslMechanism | null): MailintakeError {
    if (!(err instanceof MailintakeError) || err.details.serverResponse === undefined) {
      return err instanceof MailintakeError
        ? err
        : this.error('PROTOCOL_ERROR', `Logging in to ${this.where} failed: ${String(err)}`, 'logging in');
    }
    // the RFC 7628 error (status, scope) came as a challenge before the -ERR: it says why, so it goes with it
    const oauthError = mechanism?.serverError?.();
    const said = this.scrub(
      oauthError ? `${err.details.serverResponse} ${oauthError}` : err.details.serverResponse,
    );
    const details = { serverResponse: said };
    if (/^-ERR \[IN-USE\]/i.test(said)) {
      return this.error(
        'PROTOCOL_ERROR',
        `${this.where} says the mailbox of "${user}" is in use by another POP3 session (${said}). The next round tries again.`,
        'logging in',
        details,
      );
    }
    if (/^-ERR \[SYS\//i.test(said)) {
      return this.error(
        'PROTOCOL_ERROR',
        `${this.where} could not log in "${user}" because of a fault on the server (${said}); the password was not judged. The next round tries again.`,
        'logging in',
        details,
      );
    }
    if (mechanism?.secrets) {
      return this.error(
        'AUTH_FAILED',
        `${this.where} refused the OAuth token of user "${user}" (AUTH ${mechanism.name}). The server said: "${said}".`,
        'logging in',
        { ...details, mechanism: mechanism.name },
      );
    }
    return this.error(
      'AUTH_FAILED',
      `${this.where} refused the login of user "${user}". The server said: "${said}". Check "username" and "password" (for Microsoft 365/Gmail basic passwords may be disabled: use OAuth).`,
      'logging in',
      details,
    );
  }

  /** STAT: number of mails and their total size. */
  async stat(): Promise<{ count: number; size: number }> {
    const line = await this.command('STAT');
    const m = /^\+OK (\d+) (\d+)/.exec(line);
    if (!m) throw this.malformed('STAT', line);
    return { count: Number(m[1]), size: Number(m[2]) };
  }

  /**
   * UIDL (RFC 1939 §7): message number → unique id. Without it there is no identity that survives the session
   * (message numbers are per session), and exactly-once needs one: a server without UIDL is refused.
   */
  async uidl(): Promise<Map<number, string>> {
    let body: Buffer;
    try {
      ({ body } = await this.multiBuffer('UIDL'));
    } catch (err) {
      if (err instanceof MailintakeError && err.details.serverResponse !== undefined) {
        throw this.error(
          'PROTOCOL_ERROR',
          `${this.where} does not support UIDL (it answered "${err.details.serverResponse}"). Mailintake needs UIDL: message numbers change from session to session, and only a unique id lets it take each mail in exactly once. Enable UIDL on the server (Dovecot: pop3_uidl_format) or use IMAP.`,
          'UIDL',
          { serverResponse: err.details.serverResponse },
        );
      }
      throw err;
    }
    const out = new Map<number, string>();
    const seen = new Set<string>();
    for (const l of lines(body)) {
      // unique-id: 1 to 70 characters in 0x21..0x7E (RFC 1939 §7)
      const m = /^(\d+) ([\x21-\x7e]{1,70})$/.exec(l);
      if (!m) throw this.malformed('UIDL', l);
      if (seen.has(m[2]!)) {
        throw this.error(
          'PROTOCOL_ERROR',
          `${this.where} gave the unique id "${m[2]}" to two mails; it cannot identify mail reliably.`,
          'UIDL',
        );
      }
      seen.add(m[2]!);
      out.set(Number(m[1]), m[2]!);
    }
    return out;
  }

  /** LIST: message number → size in octets. */
  async list(): Promise<Map<number, number>> {
    const { body } = await this.multiBuffer('LIST');
    const out = new Map<number, number>();
    for (const l of lines(body)) {
      const m = /^(\d+) (\d+)/.exec(l);
      if (!m) throw this.malformed('LIST', l);
      out.set(Number(m[1]), Number(m[2]));
    }
    return out;
  }

  /** RETR into one Buffer (for small mails). */
  async retr(n: number): Promise<Buffer> {
    return (await this.multiBuffer(`RETR ${n}`)).body;
  }

  /** RETR as a stream: memory stays bounded for a mail of any size. Nothing else may be sent until it ends. */
  retrStream(n: number): Promise<Readable> {
    return this.multiStream(`RETR ${n}`);
  }

  /**
   * RETR of several mails; pipelined (a bounded window of commands in flight) when the server announces
   * PIPELINING, one after the other otherwise. Results in the order asked.
   */
  async retrMany(numbers: number[]): Promise<Buffer[]> {
    return Promise.all(numbers.map((n) => this.retr(n)));
  }

  /** TOP n lines: the headers and the first lines of the body (RFC 1939 §7). */
  async top(n: number, bodyLines: number): Promise<Buffer> {
    return (await this.multiBuffer(`TOP ${n} ${bodyLines}`)).body;
  }

  async dele(n: number): Promise<void> {
    await this.command(`DELE ${n}`);
  }

  /**
   * QUIT: only now does the server remove the mails marked with DELE (the UPDATE state, RFC 1939 §6); a -ERR
   * means it could not remove some. The connection is closed afterwards either way.
   */
  async quit(): Promise<void> {
    try {
      await this.command('QUIT');
    } finally {
      this.socket?.end();
      this.failure ??= this.error(
        'PROTOCOL_ERROR',
        `The session with ${this.where} has ended (QUIT)`,
        'QUIT',
        {},
      );
    }
  }

  /** Drops the connection without QUIT: the server forgets every DELE of this session. */
  destroy(): void {
    const socket = this.socket;
    if (!this.failure) {
      this.failAll(
        this.error('CONNECT_FAILED', `The connection to ${this.where} was closed by us`, 'closing'),
      );
    }
    socket?.destroy();
  }

  private serverRefused(p: Pending, line: string): MailintakeError {
    const said = this.scrub(line);
    return this.error('PROTOCOL_ERROR', `${this.where} refused "${p.label}": ${said}`, p.label, {
      serverResponse: said,
    });
  }

  private malformed(command: string, line: string): MailintakeError {
    return this.error(
      'PROTOCOL_ERROR',
      `${this.where} answered "${command}" with a line Mailintake does not understand: "${truncate(line)}"`,
      command,
    );
  }

  private error(code: ErrorCode, message: string, step: string, extra: ErrorDetails = {}): MailintakeError {
    return new MailintakeError(code, this.scrub(message), {
      details: { server: this.where, step, ...extra },
    });
  }

  /** The password and tokens must not reach a log or an API answer, even if a server echoes them back. */
  private scrub(text: string): string {
    let out = scrubPassword(text, this.password);
    for (const token of this.tokens) {
      if (token.length >= 8) out = out.split(token).join('[token hidden]');
    }
    return out;
  }

  /** Node/OpenSSL socket failures in words a person can act on. */
  private netError(err: Error, step: string): MailintakeError {
    const raw = err as Error & { code?: string; reason?: string; cert?: { subjectaltname?: string } };
    const code = raw.code ?? '';
    const details: ErrorDetails = { errorCode: code };
    if (DNS_ERROR_CODES.has(code)) {
      return this.error(
        'DNS_FAILED',
        `The server name ${this.opts.host} could not be resolved (${code}) while ${step} to ${this.where}. Check the "server" field for typos and that this host's DNS works.`,
        step,
        details,
      );
    }
    const problem = certificateProblem(code, POP3_NAMES);
    if (problem) {
      const extra = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? nameMismatch(raw, this.where) : '';
      return this.error(
        'TLS_FAILED',
        `TLS with ${this.where} failed while ${step}: ${problem}${extra}. [${code}]`,
        step,
        details,
      );
    }
    if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
      return this.error(
        'TLS_FAILED',
        `TLS with ${this.where} failed while ${step}: ${raw.message}. Check that the protocol matches the port (pops: 995, pop with starttls: 110). [${code}]`,
        step,
        details,
      );
    }
    if (SOCKET_TIMEOUT_CODES.has(code)) {
      return this.error('TIMEOUT', `${this.where} timed out (${code}) while ${step}.`, step, details);
    }
    const established = this.socket !== null;
    if (SOCKET_ERROR_CODES.has(code)) {
      const hint = established
        ? ' The connection had worked before: the server may have restarted or dropped the connection; the next round reconnects.'
        : ' Check "server", "port" and "protocol", and that a firewall allows the connection.';
      return this.error(
        'CONNECT_FAILED',
        `Could not talk to ${this.where} while ${step}: ${socketFailureText(code)}.${hint}`,
        step,
        details,
      );
    }
    return this.error(
      'PROTOCOL_ERROR',
      `${this.where} failed while ${step}: ${raw.message}${code ? ` [${code}]` : ''}`,
      step,
      details,
    );
  }
}

function lines(body: Buffer): string[] {
  return body
    .toString('utf8')
    .split('\r\n')
    .filter((l) => l.length > 0);
}

function truncate(line: string): string {
  return line.length > POP3_QUOTED_LINE_MAX_CHARS ? `${line.slice(0, POP3_QUOTED_LINE_MAX_CHARS)}…` : line;
}
