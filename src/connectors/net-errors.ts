import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { type ErrorCode, type ErrorDetails, MailintakeError } from '../kernel/errors.js';
import type { MailboxSettings } from './settings.js';

/**
 * What every mailbox protocol on a TCP/TLS socket (IMAP, POP3) shares when a connection fails: how Node and
 * OpenSSL name the failure, and what a person should check. Protocol specifics (which port is which, the
 * server's own words) are passed in, so the advice names the right protocol.
 */

/** How the advice names the protocol family: the plain protocol, its TLS sibling and their usual ports. */
export interface ProtocolNames {
  /** e.g. 'IMAP' / 'POP3' */
  plainName: string;
  /** the `protocol` setting for plain + STARTTLS/STLS, e.g. 'imap' / 'pop' */
  plainProtocol: string;
  plainPort: number;
  /** the `protocol` setting for TLS from the first byte, e.g. 'imaps' / 'pops' */
  tlsProtocol: string;
  tlsPort: number;
  /** the command that upgrades a plain connection: 'STARTTLS' / 'STLS' */
  upgradeCommand: string;
}

export const IMAP_NAMES: ProtocolNames = {
  plainName: 'IMAP',
  plainProtocol: 'imap',
  plainPort: 143,
  tlsProtocol: 'imaps',
  tlsPort: 993,
  upgradeCommand: 'STARTTLS',
};

export const POP3_NAMES: ProtocolNames = {
  plainName: 'POP3',
  plainProtocol: 'pop',
  plainPort: 110,
  tlsProtocol: 'pops',
  tlsPort: 995,
  upgradeCommand: 'STLS',
};

/** Node/OpenSSL codes that mean the server's certificate (or TLS itself) was not accepted, with what to check. */
export function certificateProblem(code: string, p: ProtocolNames): string | undefined {
  const notTls = `the server did not answer with TLS; this port probably speaks plain ${p.plainName} (use protocol "${p.plainProtocol}" with ${p.upgradeCommand === 'STARTTLS' ? 'starttls' : `starttls (${p.upgradeCommand})`}, usually port ${p.plainPort})`;
  const problems: Record<string, string> = {
    ERR_TLS_CERT_ALTNAME_INVALID: 'the certificate does not name this server',
    DEPTH_ZERO_SELF_SIGNED_CERT:
      'the certificate is self-signed and not trusted; set "caFile" to that certificate if it is expected',
    SELF_SIGNED_CERT_IN_CHAIN:
      'the certificate chain ends in a self-signed CA that is not trusted; set "caFile" to that CA if it is expected',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      'the certificate was issued by a CA this host does not trust (or the server omits the intermediate certificate); set "caFile" for a private CA',
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      'the certificate was issued by a CA this host does not trust; set "caFile" for a private CA',
    UNABLE_TO_GET_ISSUER_CERT: 'the issuer of the certificate is unknown; set "caFile" for a private CA',
    CERT_HAS_EXPIRED: 'the certificate has expired; the server admin must renew it',
    CERT_NOT_YET_VALID: 'the certificate is not valid yet; check the clock of this host and of the server',
    CERT_REVOKED: 'the certificate has been revoked',
    CERT_SIGNATURE_FAILURE: 'the certificate signature is invalid',
    ERR_SSL_WRONG_VERSION_NUMBER: notTls,
    ERR_SSL_PACKET_LENGTH_TOO_LONG: notTls,
    ERR_SSL_UNSUPPORTED_PROTOCOL: 'the server only offers TLS versions older than 1.2, which are refused',
    ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION:
      'the server only offers TLS versions older than 1.2, which are refused',
  };
  return Object.hasOwn(problems, code) ? problems[code] : undefined;
}

export const DNS_ERROR_CODES: ReadonlySet<string> = new Set([
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'EAI_FAIL',
  'EAI_NODATA',
]);

/** Socket-level codes that mean "no (more) connection": refused, unreachable, reset. */
export const SOCKET_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EADDRNOTAVAIL',
]);

export const SOCKET_TIMEOUT_CODES: ReadonlySet<string> = new Set(['ETIMEOUT', 'ETIMEDOUT']);

/** What a socket error says, in words for the message: "the connection was refused (…)". */
export function socketFailureText(code: string): string {
  return code === 'ECONNREFUSED'
    ? 'the connection was refused (nothing listens on that port, or a firewall rejects it)'
    : `the connection failed (${code})`;
}

/** `host:port` as messages name the server (IPv6 in brackets). */
export function serverLabel(settings: Pick<MailboxSettings, 'server' | 'port'>): string {
  const host = net.isIPv6(settings.server) ? `[${settings.server}]` : settings.server;
  return `${host}:${settings.port}`;
}

/** The private CA to trust: the one given (already read) or the mailbox's caFile; INVALID_SETTINGS if unreadable. */
export async function loadCa(
  settings: Pick<MailboxSettings, 'caFile'>,
  given?: Buffer,
): Promise<Buffer | undefined> {
  if (given) return given;
  if (!settings.caFile) return undefined;
  try {
    return await readFile(settings.caFile);
  } catch (err) {
    const reason = (err as { code?: string }).code ?? String(err);
    throw new MailintakeError(
      'INVALID_SETTINGS',
      `caFile "${settings.caFile}" could not be read (${reason})`,
      {
        cause: err,
        details: { fields: [{ field: 'caFile', message: `could not be read (${reason})` }] },
      },
    );
  }
}

/** The certificate facts Node's checkServerIdentity() attaches to ERR_TLS_CERT_ALTNAME_INVALID. */
export interface CertificateMismatch {
  cert?: { subject?: { CN?: string }; subjectaltname?: string };
  reason?: string;
}

/** "(it is issued for DNS:mail.example.com, not 127.0.0.1)": the one fact that tells the admin which name to use. */
export function nameMismatch(err: CertificateMismatch, where: string): string {
  const names = err.cert?.subjectaltname || (err.cert?.subject?.CN ? `CN=${err.cert.subject.CN}` : undefined);
  const host = where.replace(/:\d+$/, '');
  if (names) return ` (it is issued for ${names}, not ${host}; use one of those names as "server")`;
  return err.reason ? ` (${err.reason})` : '';
}

/** The password must not reach a log or an API answer, even if a server echoes it back. */
export function scrubPassword(text: string, password: string): string {
  return password.length >= 3 ? text.split(password).join('[password hidden]') : text;
}

/** Defaults filled in; INVALID_SETTINGS for a zero, negative or fractional value. */
export function validateTimeouts<T extends { [K in keyof T]: number }>(
  defaults: T,
  given: Partial<T> | undefined,
): T {
  const out = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof T & string)[]) {
    const value = given?.[key] as number | undefined;
    if (value === undefined) continue;
    // 0 or NaN must not silently turn a watchdog off: a hung server would then hang the mailbox forever
    if (!Number.isInteger(value) || value <= 0) {
      throw new MailintakeError(
        'INVALID_SETTINGS',
        `timeouts.${key} must be a positive number of milliseconds`,
        {
          details: {
            fields: [{ field: `timeouts.${key}`, message: 'must be a positive integer (milliseconds)' }],
          },
        },
      );
    }
    out[key] = value as T[keyof T & string];
  }
  return out;
}

/** An HTTPS endpoint (Graph, EWS) as the failure messages name it. */
export interface HttpsEndpoint {
  /** `host:port` */
  where: string;
  host: string;
  /** The setting that names the endpoint: "graphEndpoint", "connectUrl". */
  field: string;
  /** The `protocol` value, for certificateProblem's wording. */
  protocol: string;
  /** The per-request time limit, for the TIMEOUT message. */
  timeoutMs: number;
}

/** Codes of undici (fetch) besides Node's own: a header timeout is a timeout, a socket error a failed connection. */
const HTTP_TIMEOUT_CODES: ReadonlySet<string> = new Set([...SOCKET_TIMEOUT_CODES, 'UND_ERR_HEADERS_TIMEOUT']);
const HTTP_SOCKET_CODES: ReadonlySet<string> = new Set([...SOCKET_ERROR_CODES, 'UND_ERR_SOCKET']);

/**
 * What Node, OpenSSL or the HTTP client threw while talking to an HTTPS endpoint (Graph, EWS), as the same coded
 * errors the IMAP and POP3 connectors give: DNS_FAILED, TLS_FAILED (with the certificate's names), TIMEOUT or
 * CONNECT_FAILED, each naming the endpoint's setting.
 */
export function httpsTransportError(
  err: unknown,
  step: string,
  e: HttpsEndpoint,
  details: ErrorDetails,
): MailintakeError {
  if (err instanceof MailintakeError) return err;
  type Raw = CertificateMismatch & { message?: string; code?: string; cause?: unknown };
  const raw = (err ?? {}) as Raw;
  const inner = (raw.cause ?? {}) as Raw;
  const code = raw.code ?? inner.code;
  const all: ErrorDetails = { ...details, server: e.where, step, ...(code ? { errorCode: code } : {}) };
  const make = (c: ErrorCode, message: string) =>
    new MailintakeError(c, message, { cause: err, details: all });
  if (code && DNS_ERROR_CODES.has(code)) {
    return make(
      'DNS_FAILED',
      `The server name ${e.host} could not be resolved (${code}) while ${step}. Check "${e.field}" and that this host's DNS works.`,
    );
  }
  const names: ProtocolNames = {
    plainName: 'HTTP',
    plainProtocol: e.protocol,
    plainPort: 80,
    tlsProtocol: e.protocol,
    tlsPort: 443,
    upgradeCommand: 'STARTTLS',
  };
  const problem = code ? certificateProblem(code, names) : undefined;
  if (code && problem) {
    const extra =
      code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? nameMismatch({ cert: raw.cert ?? inner.cert, reason: raw.reason ?? inner.reason }, e.where).replace(
            'as "server"',
            `in "${e.field}"`,
          )
        : '';
    return make('TLS_FAILED', `TLS with ${e.where} failed while ${step}: ${problem}${extra}. [${code}]`);
  }
  if (code?.startsWith('ERR_SSL_') || code?.startsWith('ERR_TLS_')) {
    return make('TLS_FAILED', `TLS with ${e.where} failed while ${step} [${code}].`);
  }
  if (code && HTTP_TIMEOUT_CODES.has(code)) {
    return make(
      'TIMEOUT',
      `${e.where} did not answer within ${e.timeoutMs / 1000} s while ${step}. The next round tries again.`,
    );
  }
  if (code && HTTP_SOCKET_CODES.has(code)) {
    return make(
      'CONNECT_FAILED',
      `Could not talk to ${e.where} while ${step}: ${socketFailureText(code)}. Check "${e.field}" and that a firewall allows HTTPS to it.`,
    );
  }
  return make(
    'CONNECT_FAILED',
    `Could not talk to ${e.where} while ${step}: ${raw.message ?? String(err)}${code ? ` [${code}]` : ''}.`,
  );
}
