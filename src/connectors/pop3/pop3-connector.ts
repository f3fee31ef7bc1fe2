import { PassThrough, type Readable } from 'node:stream';
import { type AddressObject, simpleParser } from 'mailparser';
import { MailintakeError } from '../../kernel/errors.js';
import { failpoint } from '../../kernel/failpoints.js';
import { POP3_SAMPLE_FULL_MAX_BYTES as SAMPLE_FULL_MAX_BYTES } from '../../kernel/limits.js';
import type { Logger } from '../../kernel/logger.js';
import { type AccessTokenSource, requireTokenSource } from '../../oauth/token-source.js';
import type { AfterFetch, Connector, ConnectorTraits, RemoteMail, SampleMail } from '../connector.js';
import { loadCa, serverLabel } from '../net-errors.js';
import type { MailboxSettings } from '../settings.js';
import {
  Pop3Client,
  type Pop3Security,
  type Pop3Timeouts,
  type SaslMechanism,
  saslOauthbearer,
  saslXoauth2,
} from './pop3-client.js';

/**
 * POP3 (RFC 1939) connector on our own client (see pop3-client.ts for why not an npm one).
 *
 * Protocol facts, and what we do about them:
 * - Message numbers are per session; the only identity that survives is UIDL. The identity is
 *   `pop3;<UIDL>`, and every command resolves the UIDL to this session's number just before it is sent.
 * - DELE only marks a mail; the server removes it when the session ends with QUIT (the UPDATE state, RFC 1939
 *   §6). A connection that drops forgets every DELE. So `acknowledge` with delete sends the DELEs and then
 *   QUIT, and reports success only when QUIT answered +OK: the intake log's "acknowledged" then matches the
 *   server. The next command opens a new session lazily (login + UIDL, mapping UIDLs to the new numbers).
 *   A crash between DELE and QUIT leaves the mails on the server; the next round lists them again, finds
 *   their UIDLs in the intake log and only acknowledges them again (no second effect).
 * - POP3 has no flags and no folders: `mark-read` and `move` are refused (settings refuse them first), and
 *   `leave` changes nothing (the intake log remembers the UIDL; a mail listed again is known and skipped).
 *   With an error folder, a mail that fails processing is kept by Mailintake (sealed, see intake/error-folder.ts)
 *   and then deleted here like any acknowledged mail; the fetch round offers the kept copies again once an admin
 *   moved them "to the inbox".
 * - A session sees the maildrop as it was at login; mail delivered later appears in the next session.
 * - OAuth 2.0 (`auth: "oauth2"`): AUTH OAUTHBEARER (RFC 7628) when CAPA's SASL line offers it, else XOAUTH2.
 *   A refused token is renewed once and the login tried once more (on the same connection: POP3 stays in the
 *   AUTHORIZATION state after a failed AUTH, RFC 5034 §4); the token never appears in a message or detail.
 */

export interface Pop3ConnectorOptions {
  logger?: Logger;
  /** A private CA (PEM) to trust in addition to the system's. Overrides settings.caFile. */
  ca?: Buffer;
  timeouts?: Partial<Pop3Timeouts>;
  /** RETR commands in flight when the server announces PIPELINING. Default 32. */
  pipelineWindow?: number;
  /** Where OAuth 2.0 access tokens come from; required when `settings.auth` is "oauth2", unused otherwise. */
  tokens?: AccessTokenSource;
}

/** What `RemoteMail.handle` holds for POP3: the UIDL, and the message number in the session that listed it. */
export interface Pop3Handle {
  uidl: string;
  number: number;
}

const IDENTITY_PREFIX = 'pop3;';

export class Pop3Connector implements Connector {
  readonly traits: ConnectorTraits = { keepAction: 'leave', listsKeptMail: true, folders: false };
  private readonly settings: MailboxSettings;
  private readonly opts: Pop3ConnectorOptions;
  private readonly tokens: AccessTokenSource | undefined;
  private client: Pop3Client | null = null;
  /** UIDL → message number in the current session. */
  private numbers = new Map<string, number>();
  private opened = false;
  /** One command sequence at a time: a QUIT + reconnect must not cut into a prefetch in flight. */
  private tail: Promise<void> = Promise.resolve();

  constructor(settings: MailboxSettings, opts: Pop3ConnectorOptions = {}) {
    this.settings = settings;
    this.opts = opts;
    this.tokens = requireTokenSource(settings, opts.tokens, 'POP3');
  }

  private get where(): string {
    return serverLabel(this.settings);
  }

  private get security(): Pop3Security {
    if (this.settings.protocol === 'pops') return 'tls';
    return this.settings.starttls ? 'starttls' : 'none';
  }

  async open(): Promise<void> {
    await this.close();
    this.opened = true;
    await this.exclusive(() => this.session());
  }

  /** The current session, or a new one (login + UIDL) when there is none or it ended (QUIT, failure). */
  private async session(): Promise<Pop3Client> {
    if (!this.opened) {
      throw new MailintakeError('PROTOCOL_ERROR', `Not connected to ${this.where}: open() was not called`, {
        retryable: false,
      });
    }
    if (this.client?.usable) return this.client;
    this.client?.destroy();
    this.client = null;
    const ca = await loadCa(this.settings, this.opts.ca);
    const connect = () =>
      Pop3Client.connect({
        host: this.settings.server,
        port: this.settings.port,
        security: this.security,
        ...(ca ? { ca } : {}),
        ...(this.opts.timeouts ? { timeouts: this.opts.timeouts } : {}),
        ...(this.opts.pipelineWindow ? { pipelineWindow: this.opts.pipelineWindow } : {}),
      });
    let client = await connect();
    try {
      client = await this.logIn(client, connect);
      await this.refresh(client);
    } catch (err) {
      client.destroy();
      throw err;
    }
    this.client = client;
    this.opts.logger?.debug('POP3 session opened', { server: this.where });
    return client;
  }

  /**
   * Logs in with the password, or with an OAuth token: OAUTHBEARER when offered, else XOAUTH2. A refused
   * token is renewed once (`renew` also notices a refresh another process made meanwhile) and tried once more;
   * what the token source throws (OAUTH_* codes) propagates as it is. Resolves with the client that is logged
   * in (a new connection when the server closed the first one after the refusal).
   */
  private async logIn(client: Pop3Client, reconnect: () => Promise<Pop3Client>): Promise<Pop3Client> {
    const user = this.settings.username;
    if (!this.tokens) {
      await client.login({ user, password: this.settings.password });
      return client;
    }
    const mechanism = this.oauthMechanism(client);
    const first = await this.tokens.get();
    try {
      await client.login({ user, password: '', mechanism: mechanism(first) });
      return client;
    } catch (err) {
      if (!(err instanceof MailintakeError) || err.code !== 'AUTH_FAILED') throw err;
    }
    const renewed = await this.tokens.renew(first);
    let target = client;
    if (!client.usable) {
      // a server may hang up after a failed AUTH; the new connection offers the same mechanisms
      client.destroy();
      target = await reconnect();
    }
    try {
      await target.login({ user, password: '', mechanism: mechanism(renewed) });
      return target;
    } catch (err) {
      if (target !== client) target.destroy();
      if (!(err instanceof MailintakeError) || err.code !== 'AUTH_FAILED') throw err;
      const said = err.details.serverResponse;
      throw new MailintakeError(
        'AUTH_FAILED',
        `${this.where} refused the OAuth token for user "${user}" (AUTH ${mechanism(renewed).name}), also after it was renewed.${said ? ` The server said: "${said}".` : ''} ` +
          `Check that the account that consented is "${user}" (sign in as that account when authorizing), that the app registration has the POP permission (Microsoft 365: POP.AccessAsUser.All; Google: https://mail.google.com/) and the scope asks for it, and that POP is enabled for the mailbox; then authorize again with \`mailintake mailbox authorize ${this.settings.name}\`.`,
        { cause: err, details: err.details },
      );
    }
  }

  /** The OAuth mechanism the server offers (RFC 7628 OAUTHBEARER first); AUTH_FAILED when it offers neither. */
  private oauthMechanism(client: Pop3Client): (token: string) => SaslMechanism {
    const offered = client.saslMechanisms();
    const user = this.settings.username;
    if (offered.includes('OAUTHBEARER')) {
      return (token) => saslOauthbearer(user, this.settings.server, this.settings.port, token);
    }
    if (offered.includes('XOAUTH2')) return (token) => saslXoauth2(user, token);
    throw new MailintakeError(
      'AUTH_FAILED',
      `${this.where} does not offer XOAUTH2 or OAUTHBEARER, so it cannot log in user "${user}" with an OAuth token (${offered.length > 0 ? `its SASL mechanisms: ${offered.join(', ')}` : 'it announces no SASL mechanism'}). Check "server" (Microsoft 365: outlook.office365.com; Gmail: pop.gmail.com), or ask the server admin to enable OAuth 2.0 for POP3.`,
      { retryable: false, details: { server: this.where, step: 'logging in', offered } },
    );
  }

  private async refresh(client: Pop3Client): Promise<Map<number, string>> {
    const byNumber = await client.uidl();
    this.numbers = new Map([...byNumber].map(([n, uidl]) => [uidl, n]));
    return byNumber;
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }

  private acquire(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const before = this.tail;
    this.tail = before.then(() => mine);
    return before.then(() => release);
  }

  async listNew(): Promise<RemoteMail[]> {
    return this.exclusive(async () => {
      const client = await this.session();
      const byNumber = await this.refresh(client);
      const sizes = await client.list();
      // message numbers run oldest first in the maildrop (RFC 1939 §5 keeps arrival order in practice)
      return [...byNumber.keys()]
        .sort((a, b) => a - b)
        .map((number) => {
          const uidl = byNumber.get(number)!;
          const size = sizes.get(number);
          return {
            identity: `${IDENTITY_PREFIX}${uidl}`,
            ...(size !== undefined ? { size } : {}),
            handle: { uidl, number } satisfies Pop3Handle,
          };
        });
    });
  }

  private uidlOf(mail: RemoteMail): string {
    const handle = mail.handle as Partial<Pop3Handle> | undefined;
    if (handle && typeof handle.uidl === 'string') return handle.uidl;
    if (mail.identity.startsWith(IDENTITY_PREFIX)) return mail.identity.slice(IDENTITY_PREFIX.length);
    throw new MailintakeError('PROTOCOL_ERROR', `Mail ${mail.identity} is not a POP3 mail`, {
      retryable: false,
    });
  }

  /** This session's number for a mail, or undefined when it is no longer on the server. */
  private numberOf(mail: RemoteMail): number | undefined {
    return this.numbers.get(this.uidlOf(mail));
  }

  async stream(mail: RemoteMail): Promise<Readable> {
    const release = await this.acquire();
    let source: Readable;
    try {
      const client = await this.session();
      const n = this.numberOf(mail);
      if (n === undefined) {
        throw new MailintakeError(
          'NOT_FOUND',
          `Mail ${mail.identity} is no longer on ${this.where} (removed by another client?)`,
          { retryable: false },
        );
      }
      source = await client.retrStream(n);
    } catch (err) {
      release();
      throw err;
    }
    // the session stays ours until the mail is read (or given up): nothing else may talk in between
    const out = new PassThrough();
    let released = false;
    const done = () => {
      if (!released) {
        released = true;
        release();
      }
    };
    source.on('error', (err) => {
      out.destroy(err);
      done();
    });
    source.on('end', done);
    out.on('close', () => {
      if (!source.readableEnded && !source.destroyed) source.destroy();
      done();
    });
    source.pipe(out);
    return out;
  }

  async fetchMany(mails: RemoteMail[]): Promise<Map<string, Buffer>> {
    return this.exclusive(async () => {
      const client = await this.session();
      const present = mails
        .map((mail) => ({ mail, n: this.numberOf(mail) }))
        .filter((x): x is { mail: RemoteMail; n: number } => x.n !== undefined);
      // all RETRs are queued at once; the client keeps a bounded window in flight when PIPELINING is offered
      const sources = await client.retrMany(present.map((x) => x.n));
      const result = new Map<string, Buffer>();
      present.forEach((x, i) => {
        result.set(x.mail.identity, sources[i]!);
      });
      return result;
    });
  }

  async acknowledge(mails: RemoteMail[], action: AfterFetch): Promise<void> {
    if (mails.length === 0) return;
    switch (action.action) {
      case 'leave':
        // nothing on the server: the intake log remembers these UIDLs
        return;
      case 'delete':
        await this.exclusive(() => this.deleteAndQuit(mails));
        return;
      case 'mark-read':
      case 'move':
        throw new MailintakeError(
          'ACK_FAILED',
          `"${action.action}" is not possible with POP3 (${this.where}): POP3 has no flags and no folders. Use afterFetch "delete" or "leave".`,
          { retryable: false },
        );
    }
  }

  private async deleteAndQuit(mails: RemoteMail[]): Promise<void> {
    const client = await this.session();
    const numbers = mails.map((m) => this.numberOf(m)).filter((n): n is number => n !== undefined);
    if (numbers.length === 0) return; // all gone already (another client, or a QUIT we did not hear back from)
    const step = `deleting ${numbers.length} mails`;
    try {
      // DELE is only a mark; pipelined like RETR when the server allows it
      await Promise.all(numbers.map((n) => client.dele(n)));
      failpoint('between-dele-and-quit');
      // the marks take effect only now, in the UPDATE state (RFC 1939 §6)
      await client.quit();
    } catch (err) {
      client.destroy(); // no QUIT after a failure: the server forgets this session's DELEs
      this.client = null;
      if (err instanceof MailintakeError && err.details.serverResponse !== undefined) {
        throw new MailintakeError('ACK_FAILED', `${this.where} refused ${step}: ${err.message}`, {
          cause: err,
          details: err.details,
        });
      }
      throw err;
    }
    // the next command opens a new session; its message numbers differ
    this.client = null;
    this.numbers = new Map();
  }

  async moveTo(mails: RemoteMail[], folder: string): Promise<void> {
    if (mails.length === 0) return;
    throw new MailintakeError(
      'ACK_FAILED',
      `Cannot move mails to "${folder}" on ${this.where}: POP3 has no folders. A mail that failed is kept by Mailintake instead.`,
      { retryable: false },
    );
  }

  /** The oldest mail, described without changing anything: TOP (which never marks a mail) where offered. */
  async sample(): Promise<SampleMail | null> {
    return this.exclusive(async () => {
      const client = await this.session();
      const byNumber = await this.refresh(client);
      const oldest = Math.min(...byNumber.keys());
      if (!Number.isFinite(oldest)) return null;
      const sizes = await client.list();
      const size = sizes.get(oldest) ?? 0;
      const hasTop = client.capabilities?.has('TOP') ?? false;
      const whole = size <= SAMPLE_FULL_MAX_BYTES;
      // TOP n 0 = headers only; TOP with a line count beyond any mail = the whole mail, still without a
      // RETR (Dovecot marks RETRieved mail \Seen for IMAP clients of the same mailbox)
      const raw = hasTop
        ? await client.top(oldest, whole ? 2_147_483_647 : 0)
        : whole
          ? await client.retr(oldest)
          : null;
      if (!raw) return { from: null, subject: null, date: null, size, attachments: [] };
      const parsed = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true });
      const from = firstAddress(parsed.from);
      return {
        from,
        subject: parsed.subject ?? null,
        date: parsed.date ? parsed.date.toISOString() : null,
        size,
        attachments: parsed.attachments
          .filter((a) => a.contentDisposition === 'attachment' || a.filename)
          .map((a, i) => a.filename ?? `part-${i + 1}`),
      };
    });
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.opened = false;
    this.numbers = new Map();
    if (!client) return;
    try {
      // a DELE of a committed mail may be pending when acknowledge failed halfway: committing it is right
      if (client.usable) await client.quit();
      else client.destroy();
    } catch {
      client.destroy();
    }
  }
}

function firstAddress(from: AddressObject | undefined): string | null {
  const a = from?.value[0];
  if (!a) return null;
  return a.name ? `${a.name} <${a.address ?? ''}>` : (a.address ?? null);
}
