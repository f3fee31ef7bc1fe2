import { readFile } from 'node:fs/promises';
import net from 'node:net';
import type { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type { SMTPTransportOptions } from 'nodemailer/lib/smtp-transport';
import {
  certificateProblem,
  DNS_ERROR_CODES,
  SOCKET_ERROR_CODES,
  scrubPassword,
} from '../connectors/net-errors.js';
import { MailintakeError } from '../kernel/errors.js';
import { SMTP_TIMEOUTS } from '../kernel/limits.js';
import { OWN_LOOP_HEADER } from '../mail/machine.js';
import { type AccessTokenSource, scrubTokens } from '../oauth/token-source.js';
import type { SmtpConfig } from './smtp-settings.js';

/**
 * Sending one notification mail through the configured SMTP server with nodemailer, and saying what went
 * wrong in the codes admins know from the mailboxes (DNS_FAILED, CONNECT_FAILED, TLS_FAILED, AUTH_FAILED,
 * TIMEOUT) plus SEND_FAILED when the server refused the mail itself.
 *
 * With OAuth 2.0 the login is SASL XOAUTH2 (Microsoft 365, Gmail), the token from an AccessTokenSource. It is
 * handed to nodemailer through `provisionCallback`, so nodemailer never tries to refresh a token itself (it
 * would post to Google's token URL): each login asks the source, and a refused token is renewed once. A
 * server that refuses with the XOAUTH2 error challenge (Gmail, RFC 7628 style) gets nodemailer's own second
 * try, with the token renew() gave; one that answers 535 at once (Microsoft 365) gets the mail sent once more
 * here, after renew().
 */

export interface OutgoingMail {
  to: string[];
  subject: string;
  text: string;
  /** Stable per outbox row: a mail sent again after a crash carries the same id. */
  messageId?: string;
  headers?: Record<string, string>;
  // ---- a reply from a request (features/requests/replies.ts); absent on a notification ----
  /** Instead of the SMTP settings' From: the mailbox's address the customer wrote to. */
  from?: { address: string; name: string };
  cc?: string[];
  bcc?: string[];
  replyTo?: string;
  html?: string;
  inReplyTo?: string;
  references?: string[];
  /** Opened again for each try (a send retried after a token renewal reads them once more). */
  attachments?: { filename: string; contentType: string; open: () => Readable }[];
  /**
   * false: a person wrote it (a technician's reply), so no `Auto-Submitted: auto-generated`: the customer's
   * auto-responder may answer it, and that answer is recognised as automatic when it comes back.
   */
  automatic?: boolean;
}

export interface SendResult {
  accepted: string[];
  /** Recipients the server refused while it took the mail for the others. */
  rejected: string[];
  response: string;
}

export interface SmtpTransport {
  send(mail: OutgoingMail): Promise<SendResult>;
  /** Connects and logs in without sending (the OAuth consent checks its new token with it). */
  verify(): Promise<void>;
  close(): void;
}

/**
 * `reuse`: one connection for several mails (the outbox sends a burst in one pass: one TLS handshake and one
 * login instead of one per mail); closed by `close()`.
 */
export async function openSmtpTransport(
  config: SmtpConfig,
  opts: {
    reuse?: boolean;
    /** Log in with OAuth 2.0 access tokens from here (SASL XOAUTH2, as `config.username`) instead of the password. */
    tokens?: AccessTokenSource;
  } = {},
): Promise<SmtpTransport> {
  const oauth = opts.tokens ? new OAuthLogin(opts.tokens) : undefined;
  if (oauth && !config.username) {
    throw new MailintakeError(
      'INVALID_SETTINGS',
      'The outgoing SMTP server logs in with OAuth, which needs "username": the account that signs in at the provider (usually the "from" address)',
      { details: { fields: [{ field: 'username', message: 'required with OAuth' }] } },
    );
  }
  let ca: Buffer | undefined;
  if (config.caFile) {
    try {
      ca = await readFile(config.caFile);
    } catch (err) {
      const reason = (err as { code?: string }).code ?? String(err);
      throw new MailintakeError(
        'INVALID_SETTINGS',
        `caFile "${config.caFile}" could not be read (${reason})`,
        {
          cause: err,
          details: { fields: [{ field: 'caFile', message: `could not be read (${reason})` }] },
        },
      );
    }
  }
  const options: SMTPTransportOptions = {
    host: config.host,
    port: config.port,
    secure: config.secure,
    // Not secure: STARTTLS is required (an attacker on the path can strip the capability, RFC 8314 §4), or
    // switched off on purpose for a server without TLS. Never nodemailer's "upgrade if offered".
    ...(config.secure ? {} : config.starttls ? { requireTLS: true } : { ignoreTLS: true }),
    ...(oauth && config.username
      ? { auth: { type: 'OAuth2' as const, user: config.username, provisionCallback: oauth.provision } }
      : config.username
        ? { auth: { user: config.username, pass: config.password ?? '' } }
        : {}),
    tls: {
      // verification stays on; a private CA is added, not substituted
      ...(ca ? { ca: [ca] } : {}),
      minVersion: 'TLSv1.2',
      // SNI must not carry an IP address (RFC 6066 §3)
      ...(net.isIP(config.host) ? {} : { servername: config.host }),
    },
    connectionTimeout: SMTP_TIMEOUTS.connectionMs,
    greetingTimeout: SMTP_TIMEOUTS.greetingMs,
    socketTimeout: SMTP_TIMEOUTS.socketMs,
    logger: false,
  };
  const transport = opts.reuse
    ? nodemailer.createTransport({ ...options, pool: true, maxConnections: 1 })
    : nodemailer.createTransport(options);
  const sendOnce = async (mail: OutgoingMail): Promise<SendResult> => {
    // a reply From the mailbox's address without a name of its own carries the sending server's display name
    // ("Help Desk <support@…>" rather than a bare address, which mail clients show as the address alone)
    const from = mail.from
      ? { address: mail.from.address, name: mail.from.name || config.from.name }
      : config.from;
    const info = await transport.sendMail({
      from: from.name ? { name: from.name, address: from.address } : from.address,
      to: mail.to,
      ...(mail.cc && mail.cc.length > 0 ? { cc: mail.cc } : {}),
      ...(mail.bcc && mail.bcc.length > 0 ? { bcc: mail.bcc } : {}),
      ...(mail.replyTo ? { replyTo: mail.replyTo } : {}),
      ...(mail.inReplyTo ? { inReplyTo: mail.inReplyTo } : {}),
      ...(mail.references && mail.references.length > 0 ? { references: mail.references } : {}),
      subject: mail.subject,
      text: mail.text,
      ...(mail.html ? { html: mail.html } : {}),
      ...(mail.attachments && mail.attachments.length > 0
        ? {
            attachments: mail.attachments.map((a) => ({
              filename: a.filename,
              contentType: a.contentType,
              content: a.open(),
            })),
          }
        : {}),
      ...(mail.messageId ? { messageId: mail.messageId } : {}),
      headers: {
        // RFC 3834: machine-made mail; auto-responders stay quiet, and a mailbox of ours that receives it
        // flags it as automatic instead of answering it in a loop
        ...(mail.automatic === false ? {} : { 'Auto-Submitted': 'auto-generated' }),
        ...mail.headers,
        // ours, with the Message-ID domain the outbox uses: our own mail coming back to one of our mailboxes
        // is recognised (mail/machine.ts) and never becomes a request; set last so no caller drops it
        [OWN_LOOP_HEADER]: 'mailintake',
      },
    });
    return {
      accepted: (info.accepted as (string | { address: string })[]).map(addressOf),
      rejected: (info.rejected as (string | { address: string })[]).map(addressOf),
      response: String(info.response ?? ''),
    };
  };
  return {
    async send(mail) {
      oauth?.begin();
      try {
        return await sendOnce(mail);
      } catch (err) {
        if (!oauth) throw smtpError(err, config);
        oauth.rethrowSourceFailure();
        if (!isAuthRefusal(err) || oauth.renewed) throw smtpError(err, config, oauth);
      }
      // the server answered 535 at once, so nodemailer did not ask for a new token: renew here, send once more
      await oauth.renewNow();
      try {
        return await sendOnce(mail);
      } catch (err) {
        oauth.rethrowSourceFailure();
        throw smtpError(err, config, oauth);
      }
    },
    async verify() {
      oauth?.begin();
      try {
        await transport.verify();
      } catch (err) {
        oauth?.rethrowSourceFailure();
        throw smtpError(err, config, oauth);
      }
    },
    close: () => transport.close(),
  };
}

/**
 * The tokens of one transport as nodemailer's XOAuth2 asks for them: `provision(user, renew, cb)` gives the
 * source's current token, or (renew) the one `renew()` returns for the token the server just refused.
 * Failures of the source (OAUTH_* codes) are kept and thrown as they are: nodemailer would turn them into
 * EAUTH errors and overwrite their code.
 */
class OAuthLogin {
  /** Tokens handed out (scrubbed from every error). */
  readonly seen = new Set<string>();
  /** A token was renewed during the current send (by nodemailer's second try or by us). */
  renewed = false;
  private last: string | undefined;
  /** A token renewed here, for the next login. */
  private next: string | undefined;
  private failure: unknown;

  constructor(private readonly tokens: AccessTokenSource) {}

  begin(): void {
    this.renewed = false;
    this.failure = undefined;
  }

  readonly provision = (
    _user: string,
    renew: boolean,
    callback: (err: Error | null, accessToken: string, expires: number) => void,
  ): void => {
    const rejected = this.last;
    let token: Promise<string>;
    if (renew && rejected !== undefined) {
      this.renewed = true;
      token = this.tokens.renew(rejected);
    } else {
      token = this.next !== undefined ? Promise.resolve(this.next) : this.tokens.get();
    }
    this.next = undefined;
    token.then(
      (t) => {
        this.hand(t);
        // "expired" at once (1 ms after the epoch): nodemailer asks again at the next login, so a pooled
        // connection opened hours later gets the source's fresh token, not this one
        callback(null, t, 1);
      },
      (err: unknown) => {
        this.failure = err;
        callback(new Error('the OAuth access token could not be obtained'), '', 0);
      },
    );
  };

  /** The source's own error (OAUTH_* codes), as it is, when it was the reason the send failed. */
  rethrowSourceFailure(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  async renewNow(): Promise<void> {
    this.renewed = true;
    if (this.last === undefined)
      throw new MailintakeError('INTERNAL', 'No OAuth token was sent that could be renewed');
    this.next = await this.tokens.renew(this.last);
    this.seen.add(this.next);
  }

  private hand(token: string): void {
    this.last = token;
    this.seen.add(token);
  }
}

/**
 * The server judged the token and refused it: 535 (RFC 4954 §6, what Gmail and Microsoft 365 answer for a bad
 * or expired token). Not 504 (no XOAUTH2 there: a new token cannot help) and not a token source failure.
 */
function isAuthRefusal(err: unknown): boolean {
  const e = (err ?? {}) as NodemailerError;
  return e.code === 'EAUTH' && e.responseCode === 535;
}

function addressOf(a: string | { address: string }): string {
  return typeof a === 'string' ? a : a.address;
}

interface NodemailerError {
  code?: string;
  originalCode?: string;
  responseCode?: number;
  response?: string;
  message?: string;
  cause?: { code?: string };
}

/**
 * What to check, in the outgoing server's own field names: the general help of these codes (kernel/errors.ts)
 * speaks of a mailbox's "server" and "protocol", which an SMTP server's settings do not have.
 */
const SMTP_HINTS = {
  DNS_FAILED: 'The SMTP server name could not be resolved. Check "host" for typos and the DNS of this host.',
  CONNECT_FAILED:
    'No connection could be made to the SMTP server. Check "host" and "port" (587 for submission with STARTTLS, 465 with "secure"), and that a firewall allows the connection.',
  TLS_FAILED:
    'TLS with the SMTP server failed. Check that "secure" matches the port (465: on; 587 and 25: off, with STARTTLS), that the certificate names "host", or set "caFile" for a private CA.',
  AUTH_FAILED: 'The SMTP server refused the login. Check "username" and "password" (or the OAuth consent).',
  TIMEOUT:
    'The SMTP server stopped answering. Check "host" and "port"; mail waiting in the outbox is tried again.',
} as const;

/** A permanent refusal (5xx) of the mail or of all its recipients: sending it again cannot help. */
export function isPermanentRefusal(err: MailintakeError): boolean {
  const code = (err.cause as NodemailerError | undefined)?.responseCode;
  return err.code === 'SEND_FAILED' && typeof code === 'number' && code >= 500 && code < 600;
}

/**
 * `oauth`: the login used OAuth tokens; they are scrubbed like the password, and a refused login is worded for
 * a token (renewed once already) instead of a password.
 */
export function smtpError(
  err: unknown,
  config: SmtpConfig,
  oauth?: { seen: Iterable<string> },
): MailintakeError {
  if (err instanceof MailintakeError) return err;
  const e = (err ?? {}) as NodemailerError;
  const where = `${net.isIPv6(config.host) ? `[${config.host}]` : config.host}:${config.port}`;
  const scrub = (t: string) =>
    scrubTokens(config.password ? scrubPassword(t, config.password) : t, oauth?.seen ?? []);
  const text = scrub(e.message ?? String(err));
  const low = e.originalCode ?? e.cause?.code ?? '';
  const serverResponse = e.response ? scrub(e.response) : e.response;
  const coded = (code: ConstructorParameters<typeof MailintakeError>[0], message: string) =>
    new MailintakeError(code, message, {
      cause: err,
      details: {
        ...(serverResponse ? { serverResponse } : {}),
        ...(code in SMTP_HINTS ? { hint: SMTP_HINTS[code as keyof typeof SMTP_HINTS] } : {}),
      },
    });

  if (e.code === 'EDNS' || DNS_ERROR_CODES.has(low)) {
    return coded('DNS_FAILED', `the SMTP server name ${config.host} could not be resolved (${low || text})`);
  }
  if (e.code === 'ETIMEDOUT' || low === 'ETIMEDOUT') {
    return coded('TIMEOUT', `the SMTP server ${where} stopped answering: ${text}`);
  }
  if (low === 'ERR_SSL_WRONG_VERSION_NUMBER' || low === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return coded(
      'TLS_FAILED',
      `TLS failed with the SMTP server ${where}: the server did not answer with TLS; this port probably speaks plain SMTP (turn "secure" off to use STARTTLS, usually port 587)`,
    );
  }
  const cert = low
    ? certificateProblem(low, {
        plainName: 'SMTP',
        plainProtocol: 'smtp',
        plainPort: 587,
        tlsProtocol: 'smtps',
        tlsPort: 465,
        upgradeCommand: 'STARTTLS',
      })
    : undefined;
  if (cert || e.code === 'ETLS' || e.code === 'EREQUIRETLS') {
    return coded(
      'TLS_FAILED',
      cert
        ? `TLS failed with the SMTP server ${where}: ${cert}`
        : `TLS failed with the SMTP server ${where}: ${text} (does the server offer STARTTLS? "starttls": false only for a server without TLS)`,
    );
  }
  if (e.code === 'EAUTH' && oauth && e.responseCode === 504) {
    return coded(
      'AUTH_FAILED',
      `the SMTP server ${where} does not offer XOAUTH2, so it cannot log in with an OAuth token: ${text}. Check "host" and "port" (Microsoft 365: smtp.office365.com, 587; Gmail: smtp.gmail.com, 465 or 587)`,
    );
  }
  if ((e.code === 'EAUTH' || e.code === 'ENOAUTH') && oauth) {
    return coded(
      'AUTH_FAILED',
      `the SMTP server ${where} refused the OAuth token of user "${config.username ?? ''}", also after it was renewed: ${text}. Check that the account that consented is "${config.username ?? ''}", that the app registration has the SMTP permission (Microsoft 365: SMTP.Send, with SMTP AUTH enabled for the mailbox; Google: https://mail.google.com/) and the scope asks for it; then authorize the outgoing server again`,
    );
  }
  if (e.code === 'EAUTH' || e.code === 'ENOAUTH') {
    return coded('AUTH_FAILED', `the SMTP server ${where} refused the login: ${text}`);
  }
  if (e.code === 'ECONNECTION' || e.code === 'ESOCKET' || SOCKET_ERROR_CODES.has(low)) {
    return coded(
      'CONNECT_FAILED',
      low === 'ECONNREFUSED'
        ? `no connection to the SMTP server ${where}: the connection was refused (nothing listens on that port, or a firewall rejects it)`
        : `no connection to the SMTP server ${where}: ${text}`,
    );
  }
  if (e.code === 'EENVELOPE' || e.code === 'EMESSAGE' || e.code === 'EPROTOCOL' || e.responseCode) {
    return coded('SEND_FAILED', `the SMTP server ${where} refused the mail: ${text}`);
  }
  return coded('SEND_FAILED', `sending through the SMTP server ${where} failed: ${text}`);
}
