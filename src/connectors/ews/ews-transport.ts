import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { finished } from 'node:stream/promises';
import type { TLSSocket } from 'node:tls';
import { NS_MESSAGES } from './ews-xml.js';
import { authenticateMessage, NtlmRefused, negotiateMessage } from './ntlm.js';

/**
 * HTTPS for EWS: one keep-alive connection per connector, one request at a time.
 *
 * Why one connection: NTLM authenticates a connection, not a request (MS-NLMP over HTTP, RFC 4559 style).
 * NEGOTIATE → 401 with the CHALLENGE → AUTHENTICATE with the real request must travel on the same socket,
 * and IIS then keeps that socket authenticated, so later requests on it carry no Authorization header. An
 * agent with a single socket makes "the same socket" what happens; it is checked anyway, because a server
 * that closes the connection after the 401 would otherwise make us answer its challenge on a new one.
 * Why one request at a time: the response body holds the socket until it is read; a second request would
 * wait for it anyway, and for NTLM the handshake must not interleave with another request.
 *
 * Basic sends `Authorization: Basic` (UTF-8, RFC 7617) with every request; OAuth 2.0 (`bearer`) sends
 * `Authorization: Bearer <token>` with every request, the token given by the caller for each post.
 */

export type EwsAuth = 'basic' | 'ntlm';

export interface EwsTransportOptions {
  url: URL;
  ca: Buffer | undefined;
  /** Silence on a request (connect, headers or body) before it is given up. */
  timeoutMs: number;
  /** `bearer`: an OAuth 2.0 access token, passed with each post. */
  auth: EwsAuth | 'bearer';
  username: string;
  password: string;
  /** X-AnchorMailbox: lets Exchange 2013+ front ends route straight to the mailbox's server. */
  anchorMailbox: string;
}

export interface EwsResponse {
  status: number;
  /** Every WWW-Authenticate challenge, one per entry (Node would join repeated headers with commas). */
  authenticate: string[];
  retryAfter: string | null;
  /** Must be read to its end or destroyed: until then the connection (and the transport) is busy. */
  body: IncomingMessage;
}

/** NTLM could not be carried out: the server does not offer it, offers only NTLMv1, or broke the connection. */
export class NtlmProblem extends Error {
  override readonly name = 'NtlmProblem';
  constructor(
    message: string,
    readonly kind: 'not-offered' | 'refused' | 'connection',
    readonly offered: string[] = [],
  ) {
    super(message);
  }
}

interface Sent extends EwsResponse {
  socket: Socket;
}

export class EwsTransport {
  private readonly o: EwsTransportOptions;
  private readonly agent: https.Agent;
  private queue: Promise<void> = Promise.resolve();
  /** The connection NTLM authenticated; requests on it need no Authorization header. */
  private authenticated: Socket | null = null;
  /** NTLM, or Negotiate carrying raw NTLM messages when the server offers only that (IIS accepts both). */
  private scheme: 'NTLM' | 'Negotiate' = 'NTLM';

  constructor(o: EwsTransportOptions) {
    this.o = o;
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: 1,
      maxFreeSockets: 1,
      ...(o.ca ? { ca: [o.ca] } : {}),
      minVersion: 'TLSv1.2',
      // No TLS session resumption: a resumed session shows no peer certificate, and NTLM's channel binding
      // is the hash of that certificate (without it, Extended Protection refuses the login)
      maxCachedSessions: 0,
    });
  }

  /** Ends the connection; requests in flight fail. */
  close(): void {
    this.authenticated = null;
    this.agent.destroy();
  }

  /**
   * Posts a SOAP envelope. The answer's body must be read or destroyed before the next post can start.
   * `bearer`: the access token to send (required with auth "bearer").
   */
  async post(action: string, envelope: string, bearer?: string): Promise<EwsResponse> {
    const release = await this.turn();
    let res: Sent;
    try {
      res = await this.postNow(action, envelope, bearer);
    } catch (err) {
      release();
      throw err;
    }
    let released = false;
    const free = () => {
      if (released) return;
      released = true;
      release();
    };
    res.body.once('end', free);
    res.body.once('close', free);
    res.body.once('error', free);
    return { status: res.status, authenticate: res.authenticate, retryAfter: res.retryAfter, body: res.body };
  }

  /** Waits for the previous request to finish; resolves with the function that lets the next one go. */
  private turn(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const before = this.queue;
    this.queue = before.then(() => mine);
    return before.then(() => release);
  }

  private async postNow(action: string, envelope: string, bearer: string | undefined): Promise<Sent> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.o.auth === 'bearer') {
          if (bearer === undefined)
            throw new Error('EWS with OAuth: no access token was given for the request');
          return await this.send(action, envelope, { Authorization: `Bearer ${bearer}` });
        }
        if (this.o.auth === 'basic') {
          const basic = Buffer.from(`${this.o.username}:${this.o.password}`, 'utf8').toString('base64');
          return await this.send(action, envelope, { Authorization: `Basic ${basic}` });
        }
        return await this.ntlm(action, envelope);
      } catch (err) {
        // Node's advice for keep-alive clients: a request on a reused socket that the server closed while it
        // was idle fails at once with ECONNRESET/EPIPE; it is sent again on a new connection. Every request
        // we send may be repeated (reads, setting the read flag; a repeated delete or move finds the mail
        // gone, which counts as done).
        if (attempt === 1 && isStaleSocket(err)) {
          this.authenticated = null;
          continue;
        }
        throw err;
      }
    }
  }

  private async ntlm(action: string, envelope: string): Promise<Sent> {
    const known = this.authenticated;
    if (known && !known.destroyed) {
      const res = await this.send(action, envelope, {});
      if (res.status !== 401) return res;
      // the server no longer counts this connection as authenticated (recycled): authenticate again
      await drain(res.body);
      this.authenticated = null;
    }
    const negotiate = negotiateMessage();
    let first = await this.send(action, '', { Authorization: `${this.scheme} ${negotiate}` });
    let challenge = tokenOf(first.authenticate, this.scheme);
    if (
      first.status === 401 &&
      !challenge &&
      this.scheme === 'NTLM' &&
      schemesOf(first.authenticate).includes('negotiate')
    ) {
      await drain(first.body);
      this.scheme = 'Negotiate';
      first = await this.send(action, '', { Authorization: `Negotiate ${negotiate}` });
      challenge = tokenOf(first.authenticate, 'Negotiate');
    }
    if (first.status !== 401) return first; // not an authentication answer (a busy front end, a wrong URL…)
    if (!challenge) {
      await drain(first.body);
      const offered = schemesOf(first.authenticate);
      throw new NtlmProblem(
        `the server does not offer NTLM (it offers ${offered.length > 0 ? offered.join(', ') : 'no authentication scheme'})`,
        'not-offered',
        offered,
      );
    }
    const socket = first.socket;
    const certificate = (socket as TLSSocket).getPeerCertificate?.(true)?.raw;
    if (!certificate || certificate.length === 0) {
      await drain(first.body);
      throw new NtlmProblem(
        'the TLS connection shows no server certificate to bind the NTLM answer to',
        'connection',
      );
    }
    await drain(first.body);
    let authenticate: string;
    try {
      authenticate = authenticateMessage(
        challenge,
        { username: this.o.username, password: this.o.password },
        certificate,
      );
    } catch (err) {
      if (err instanceof NtlmRefused) throw new NtlmProblem(err.message, 'refused');
      throw err;
    }
    const res = await this.send(action, envelope, { Authorization: `${this.scheme} ${authenticate}` });
    if (res.socket !== socket) {
      await drain(res.body).catch(() => undefined);
      throw new NtlmProblem(
        'the server closed the connection between its NTLM challenge and our answer (a proxy or load balancer in front of Exchange that does not keep connections breaks NTLM; use Basic or fix the proxy)',
        'connection',
      );
    }
    if (res.status !== 401) this.authenticated = socket;
    return res;
  }

  private send(action: string, body: string, auth: Record<string, string>): Promise<Sent> {
    return new Promise<Sent>((resolve, reject) => {
      const req = https.request(this.o.url, {
        method: 'POST',
        agent: this.agent,
        headers: {
          'Content-Type': 'text/xml; charset=utf-8',
          Accept: 'text/xml',
          SOAPAction: `"${NS_MESSAGES}/${action}"`,
          'User-Agent': 'Mailintake',
          'X-AnchorMailbox': this.o.anchorMailbox,
          'Content-Length': String(Buffer.byteLength(body)),
          ...auth,
        },
      });
      req.setTimeout(this.o.timeoutMs, () => {
        req.destroy(
          Object.assign(new Error(`no answer within ${this.o.timeoutMs} ms`), { code: 'ETIMEDOUT' }),
        );
      });
      req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      req.on('response', (res) => {
        // after the headers, a timeout or a dropped connection surfaces as an error of the body
        req.on('error', (err) => res.destroy(err));
        resolve({
          status: res.statusCode ?? 502,
          authenticate: headerValues(res.rawHeaders, 'www-authenticate'),
          retryAfter: typeof res.headers['retry-after'] === 'string' ? res.headers['retry-after'] : null,
          body: res,
          socket: res.socket,
        });
      });
      req.end(body);
    });
  }
}

function isStaleSocket(err: unknown): boolean {
  const e = err as { code?: string; reusedSocket?: boolean };
  return e?.reusedSocket === true && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
}

async function drain(body: IncomingMessage): Promise<void> {
  body.resume();
  await finished(body);
}

function headerValues(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  }
  return out;
}

/** One challenge per entry: a header may list several ("Negotiate, NTLM"); `Basic realm="a, b"` stays whole. */
function challengesOf(values: string[]): string[] {
  return values.flatMap((v) =>
    v
      .split(/,\s*(?=[A-Za-z][\w-]*(?:\s*,|\s*$|\s+[^=\s,]))/)
      .map((c) => c.trim())
      .filter(Boolean),
  );
}

/** The schemes offered, lower case: ['negotiate', 'ntlm', 'basic']. */
export function schemesOf(values: string[]): string[] {
  return [...new Set(challengesOf(values).map((c) => c.split(/\s+/)[0]!.toLowerCase()))];
}

/** The token of `scheme <token>` (an NTLM CHALLENGE), when the server sent one. */
function tokenOf(values: string[], scheme: string): string | undefined {
  for (const c of challengesOf(values)) {
    const m = /^(\S+)\s+([A-Za-z0-9+/]+=*)$/.exec(c);
    if (m && m[1]!.toLowerCase() === scheme.toLowerCase()) return m[2];
  }
  return undefined;
}
