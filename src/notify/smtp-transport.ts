import { readFile } from 'node:fs/promises';
import net from 'node:net';
import nodemailer from 'nodemailer';
import type { SMTPTransportOptions } from 'nodemailer/lib/smtp-transport';
import {
  certificateProblem,
  DNS_ERROR_CODES,
  SOCKET_ERROR_CODES,
  scrubPassword,
} from '../connectors/net-errors.js';
import { MailintakeError } from '../errors.js';
import type { SmtpConfig } from './smtp-settings.js';

/**
 * Sending one notification mail through the configured SMTP server with nodemailer, and saying what went
 * wrong in the codes admins know from the mailboxes (DNS_FAILED, CONNECT_FAILED, TLS_FAILED, AUTH_FAILED,
 * TIMEOUT) plus SEND_FAILED when the server refused the mail itself.
 */

export interface OutgoingMail {
  to: string[];
  subject: string;
  text: string;
  /** Stable per outbox row: a mail sent again after a crash carries the same id. */
  messageId?: string;
  headers?: Record<string, string>;
}

export interface SendResult {
  accepted: string[];
  /** Recipients the server refused while it took the mail for the others. */
  rejected: string[];
  response: string;
}

export interface SmtpTransport {
  send(mail: OutgoingMail): Promise<SendResult>;
  close(): void;
}

/** Bounded waits: a hung server must not hold a claimed outbox row (or a `smtp test`) for long. */
export const SMTP_TIMEOUTS = { connectionMs: 15_000, greetingMs: 15_000, socketMs: 60_000 } as const;

/**
 * `reuse`: one connection for several mails (the outbox sends a burst in one pass: one TLS handshake and one
 * login instead of one per mail); closed by `close()`.
 */
export async function openSmtpTransport(
  config: SmtpConfig,
  opts: { reuse?: boolean } = {},
): Promise<SmtpTransport> {
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
    ...(config.username ? { auth: { user: config.username, pass: config.password ?? '' } } : {}),
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
  return {
    async send(mail) {
      try {
        const info = await transport.sendMail({
          from: config.from.name
            ? { name: config.from.name, address: config.from.address }
            : config.from.address,
          to: mail.to,
          subject: mail.subject,
          text: mail.text,
          ...(mail.messageId ? { messageId: mail.messageId } : {}),
          headers: {
            // RFC 3834: machine-made mail; auto-responders stay quiet, and a mailbox of ours that receives it
            // flags it as automatic instead of answering it in a loop
            'Auto-Submitted': 'auto-generated',
            ...mail.headers,
          },
        });
        return {
          accepted: (info.accepted as (string | { address: string })[]).map(addressOf),
          rejected: (info.rejected as (string | { address: string })[]).map(addressOf),
          response: String(info.response ?? ''),
        };
      } catch (err) {
        throw smtpError(err, config);
      }
    },
    close: () => transport.close(),
  };
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

/** A permanent refusal (5xx) of the mail or of all its recipients: sending it again cannot help. */
export function isPermanentRefusal(err: MailintakeError): boolean {
  const code = (err.cause as NodemailerError | undefined)?.responseCode;
  return err.code === 'SEND_FAILED' && typeof code === 'number' && code >= 500 && code < 600;
}

export function smtpError(err: unknown, config: SmtpConfig): MailintakeError {
  if (err instanceof MailintakeError) return err;
  const e = (err ?? {}) as NodemailerError;
  const where = `${net.isIPv6(config.host) ? `[${config.host}]` : config.host}:${config.port}`;
  const raw = e.message ?? String(err);
  const text = config.password ? scrubPassword(raw, config.password) : raw;
  const low = e.originalCode ?? e.cause?.code ?? '';
  const serverResponse =
    e.response && config.password ? scrubPassword(e.response, config.password) : e.response;
  const details = serverResponse ? { serverResponse } : {};
  const coded = (code: ConstructorParameters<typeof MailintakeError>[0], message: string) =>
    new MailintakeError(code, message, { cause: err, details });

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
