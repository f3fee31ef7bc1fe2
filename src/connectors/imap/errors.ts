import { type ErrorCode, type ErrorDetails, MailintakeError } from '../../kernel/errors.js';
import { scrubTokens } from '../../oauth/token-source.js';
import {
  certificateProblem,
  DNS_ERROR_CODES,
  IMAP_NAMES,
  nameMismatch,
  SOCKET_ERROR_CODES,
  SOCKET_TIMEOUT_CODES,
  scrubPassword,
} from '../net-errors.js';
import type { MailboxSettings } from '../settings.js';
import { type ConnectorLogger, type ImapTimeouts, imapServerLabel } from './options.js';

// How an IMAP failure becomes a coded MailintakeError: what imapflow, Node or OpenSSL threw, read layer by
// layer, worded for the admin who must act on it (which setting to check), with the password and any OAuth
// token scrubbed from every text.

/** Socket codes plus imapflow's own names for a connection that is gone. */
const CONNECT_CODES = new Set([
  ...SOCKET_ERROR_CODES,
  'NoConnection',
  'EConnectionClosed',
  'ClosedAfterConnectText',
  'StateLogout',
]);
const TIMEOUT_CODES = new Set([
  'CONNECT_TIMEOUT',
  'GREETING_TIMEOUT',
  ...SOCKET_TIMEOUT_CODES,
  'LockTimeout',
]);

/** The error properties imapflow and Node attach; all optional. */
export interface RawError {
  message?: string;
  code?: string;
  reason?: string;
  responseText?: string;
  response?: unknown;
  serverResponseCode?: string;
  authenticationFailed?: boolean;
  /** The RFC 7628 error a server sent when it refused an OAuth token (imapflow decodes it). */
  oauthError?: unknown;
  tlsFailed?: boolean;
  mailboxMissing?: boolean;
  /** Node's checkServerIdentity() attaches the peer certificate to ERR_TLS_CERT_ALTNAME_INVALID */
  cert?: { subject?: { CN?: string }; subjectaltname?: string };
  _err?: RawError;
  cause?: unknown;
}

export interface ImapErrorContext {
  settings: MailboxSettings;
  /** What was being done, e.g. `opening folder "INBOX"` (goes into the message and details). */
  step: string;
  fallback?: ErrorCode;
  timeouts: Required<ImapTimeouts>;
  /** Logged in before the failure: then "check the port" is the wrong advice. */
  established: boolean;
  /** The last error imapflow emitted on its own: explains a later "no connection". */
  lastConnectionError?: unknown;
  logger?: ConnectorLogger;
  /**
   * The OAuth access tokens this login tried (scrubbed from every text); any given = the login used OAuth, so
   * a refusal is worded for a token, not a password.
   */
  accessTokens?: string[];
  /** The session logged in with OAuth (a later refusal is about the token). */
  oauth?: boolean;
}

/** Turns anything imapflow, Node or OpenSSL throws into a coded error a person can act on (password scrubbed). */
export function imapError(err: unknown, c: ImapErrorContext): MailintakeError {
  if (err instanceof MailintakeError) return err;
  const raw = (err ?? {}) as RawError;
  const where = imapServerLabel(c.settings);
  const folder = c.settings.folder || 'INBOX';
  const last = (c.lastConnectionError ?? null) as RawError | null;
  // "no connection" after the socket died: the cause imapflow emitted earlier says more
  const effective = (raw.code === 'NoConnection' || raw.code === 'EConnectionClosed') && last ? last : raw;
  const oauth = c.oauth === true || (c.accessTokens?.length ?? 0) > 0;
  const mapped = describe(effective, {
    where,
    step: c.step,
    settings: c.settings,
    oauth,
    username: c.settings.username,
    folder,
    protocol: c.settings.protocol,
    starttls: c.settings.starttls,
    timeouts: c.timeouts,
    fallback: c.fallback ?? 'PROTOCOL_ERROR',
    established: c.established,
  });
  const scrub = (text: string) => scrubTokens(scrubPassword(text, c.settings.password), c.accessTokens ?? []);
  const scrubbed = scrub(mapped.message);
  const details: ErrorDetails = { server: where, step: c.step };
  if (mapped.code) details.errorCode = mapped.code;
  if (mapped.serverResponse) details.serverResponse = scrub(mapped.serverResponse);
  c.logger?.debug('IMAP failure', { code: mapped.errorCode, server: where, step: c.step });
  return new MailintakeError(mapped.errorCode, scrubbed, { cause: err, details });
}

interface DescribeContext {
  where: string;
  step: string;
  settings: MailboxSettings;
  /** The login used an OAuth token: a refusal is about the token. */
  oauth: boolean;
  username: string;
  folder: string;
  protocol: MailboxSettings['protocol'];
  starttls: boolean;
  timeouts: Required<ImapTimeouts>;
  fallback: ErrorCode;
  /** Logged in before the failure: then "check the port" is the wrong advice. */
  established: boolean;
}

/**
 * Where the text of a failure lives depends on which layer raised it; try them all. A refused OAuth token
 * comes with the server's RFC 7628 error (status, scope), which imapflow decoded into `oauthError`.
 */
function serverResponseOf(err: RawError): string | undefined {
  const oauth = err.oauthError && typeof err.oauthError === 'object' ? JSON.stringify(err.oauthError) : '';
  const text =
    typeof err.responseText === 'string' && err.responseText
      ? err.responseText
      : typeof err.response === 'string' && err.response
        ? err.response
        : '';
  const both = [text, oauth].filter(Boolean).join(' ');
  return both || undefined;
}

function lowLevelCode(err: RawError): string | undefined {
  const cause = err.cause as RawError | undefined;
  return err._err?.code ?? cause?.code ?? err.code;
}

function describe(
  err: RawError,
  c: DescribeContext,
): { errorCode: ErrorCode; message: string; code?: string; serverResponse?: string } {
  const code = err.code;
  const low = lowLevelCode(err);
  const text = err.message ?? String(err);
  const serverResponse = serverResponseOf(err);
  const said = serverResponse ? ` The server said: "${serverResponse}".` : '';
  const base = { code: low ?? code, ...(serverResponse ? { serverResponse } : {}) };

  if ((err.authenticationFailed || err.serverResponseCode === 'AUTHENTICATIONFAILED') && c.oauth) {
    return {
      ...base,
      errorCode: 'AUTH_FAILED',
      message:
        `${c.where} refused the OAuth token for user "${c.username}" while ${c.step}, also after it was renewed.${said} ` +
        oauthRefusalAdvice(c.settings),
    };
  }
  if (err.authenticationFailed || err.serverResponseCode === 'AUTHENTICATIONFAILED') {
    return {
      ...base,
      errorCode: 'AUTH_FAILED',
      message:
        `${c.where} refused the login of user "${c.username}" while ${c.step}.${said} ` +
        'Check "username" and "password" (for Microsoft 365/Gmail basic passwords may be disabled: use OAuth).',
    };
  }
  if (err.mailboxMissing || err.serverResponseCode === 'NONEXISTENT') {
    return {
      ...base,
      errorCode: 'FOLDER_NOT_FOUND',
      message: `Folder "${c.folder}" does not exist on ${c.where} (while ${c.step}).${said} Check the "folder" setting; names are case-sensitive except INBOX and use the server's separator (often "/" or ".").`,
    };
  }
  for (const candidate of [low, code]) {
    if (candidate && DNS_ERROR_CODES.has(candidate)) {
      const host = c.where.replace(/:\d+$/, '');
      return {
        ...base,
        errorCode: 'DNS_FAILED',
        message: `The server name ${host} could not be resolved (${candidate}) while ${c.step} to ${c.where}. Check the "server" field for typos and that this host's DNS works.`,
      };
    }
  }
  for (const candidate of [low, code]) {
    const problem = candidate ? certificateProblem(candidate, IMAP_NAMES) : undefined;
    if (candidate && problem) {
      const extra =
        candidate === 'ERR_TLS_CERT_ALTNAME_INVALID'
          ? nameMismatch(
              { cert: err.cert ?? err._err?.cert, reason: err.reason ?? err._err?.reason },
              c.where,
            )
          : '';
      return {
        ...base,
        errorCode: 'TLS_FAILED',
        message: `TLS with ${c.where} failed while ${c.step}: ${problem}${extra}. [${candidate}]`,
      };
    }
  }
  if (
    err.tlsFailed ||
    code === 'STARTTLS_INJECTION' ||
    code === 'ClosedAfterConnectTLS' ||
    low?.startsWith('ERR_SSL_')
  ) {
    const starttls = /STARTTLS/i.test(text);
    const hint = starttls
      ? 'The server did not offer STARTTLS although the mailbox requires it: use protocol "imaps" (port 993) if the server has it, or ask the server admin to enable STARTTLS.'
      : 'Check that the protocol matches the port (imaps: 993, imap with starttls: 143).';
    return {
      ...base,
      errorCode: 'TLS_FAILED',
      message: `TLS with ${c.where} failed while ${c.step}: ${text}. ${hint}`,
    };
  }
  for (const candidate of [low, code]) {
    if (candidate && TIMEOUT_CODES.has(candidate)) {
      const hint =
        candidate === 'GREETING_TIMEOUT' && c.protocol === 'imap'
          ? ` No IMAP greeting within ${c.timeouts.greetingMs / 1000} s: if this port expects TLS from the start (usually 993), use protocol "imaps".`
          : candidate === 'CONNECT_TIMEOUT'
            ? ` No connection within ${c.timeouts.connectMs / 1000} s: a firewall may drop the packets, or the port is wrong.`
            : ' The server stopped answering; the next round tries again.';
      return {
        ...base,
        errorCode: 'TIMEOUT',
        message: `${c.where} timed out (${candidate}) while ${c.step}.${hint}`,
      };
    }
  }
  for (const candidate of [low, code]) {
    if (candidate && CONNECT_CODES.has(candidate)) {
      const what =
        candidate === 'ECONNREFUSED'
          ? 'the connection was refused (nothing listens on that port, or a firewall rejects it)'
          : candidate === 'NoConnection' || candidate === 'EConnectionClosed' || candidate === 'StateLogout'
            ? 'the connection was closed'
            : candidate === 'ClosedAfterConnectText'
              ? 'the server closed the connection before its greeting'
              : `the connection failed (${candidate})`;
      const hint = c.established
        ? ' The connection had worked before: the server may have restarted or dropped idle connections; the next round reconnects.'
        : ' Check "server", "port" and "protocol", and that a firewall allows the connection.';
      return {
        ...base,
        errorCode: 'CONNECT_FAILED',
        message: `Could not talk to ${c.where} while ${c.step}: ${what}.${said}${hint}`,
      };
    }
  }
  return {
    ...base,
    errorCode: c.fallback,
    message: `${c.where} failed while ${c.step}: ${text}${code ? ` [${code}]` : ''}.${said}`,
  };
}

/** imapflow's mark of a tagged NO/BAD to LOGIN or AUTHENTICATE: the server judged the credentials. */
export function isLoginRefusal(err: unknown): boolean {
  const raw = (err ?? {}) as RawError;
  return raw.authenticationFailed === true || raw.serverResponseCode === 'AUTHENTICATIONFAILED';
}

/** imapflow's answer when neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2 is advertised (a plain Error, no code). */
export function isUnsupportedMechanism(err: unknown): boolean {
  return err instanceof Error && /Unsupported authentication mechanism/i.test(err.message);
}

/** The server offers no SASL mechanism that carries an OAuth token: no renewal can help. */
export function noOAuthMechanism(
  settings: MailboxSettings,
  offered: string[],
  cause: unknown,
): MailintakeError {
  const where = imapServerLabel(settings);
  return new MailintakeError(
    'AUTH_FAILED',
    `${where} does not offer XOAUTH2 or OAUTHBEARER, so it cannot log in user "${settings.username}" with an OAuth token (it offers ${offered.length > 0 ? offered.join(', ') : 'no SASL mechanism'}). Check "server" (Microsoft 365: outlook.office365.com; Gmail: imap.gmail.com), or ask the server admin to enable OAuth 2.0.`,
    {
      cause,
      retryable: false,
      details: { server: where, step: 'connecting and logging in', offered },
    },
  );
}

/** What the admin checks when the server refused a token even after renewing it. */
function oauthRefusalAdvice(settings: MailboxSettings): string {
  return (
    `Check that the account that consented is "${settings.username}" (sign in as that account when authorizing), ` +
    'that the app registration has the IMAP permission (Microsoft 365: IMAP.AccessAsUser.All; Google: ' +
    'https://mail.google.com/) and the scope asks for it, and that IMAP is enabled for the mailbox; then authorize ' +
    `again with \`mailintake mailbox authorize ${settings.name}\`.`
  );
}
