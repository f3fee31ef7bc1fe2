import net from 'node:net';
import type { ImapFlow, ImapFlowOptions, Logger } from 'imapflow';
import type { MailintakeError } from '../../kernel/errors.js';
import { type AccessTokenSource, requireTokenSource } from '../../oauth/token-source.js';
import { loadCa } from '../net-errors.js';
import type { MailboxSettings } from '../settings.js';
import { isLoginRefusal, isUnsupportedMechanism, noOAuthMechanism } from './errors.js';
import type { ConnectorLogger, ImapTimeouts } from './options.js';

// How an IMAP session is opened: the imapflow options (TLS policy, timeouts, logging) and the login with a
// password or an OAuth token. Shared by the connector and the IDLE watcher, so both connect the same way.

/** The token source of a mailbox that logs in with OAuth; undefined for a password login. */
export function imapTokenSource(
  settings: MailboxSettings,
  given: AccessTokenSource | undefined,
): AccessTokenSource | undefined {
  return requireTokenSource(settings, given, 'IMAP');
}

/**
 * Connects and logs in a client made by `make`: with the password (`tokens` undefined), or with an OAuth
 * access token. A token the server refuses is renewed once (`tokens.renew`, which also notices a refresh
 * another process made meanwhile) and the login tried once more, on a new connection: a server may count
 * failed logins per connection, and imapflow leaves a session whose AUTHENTICATE failed for closing. A second
 * refusal is AUTH_FAILED saying what to check (built by `fail`, which knows the step and the timeouts); what
 * `tokens` throws (OAUTH_* codes: no consent, consent withdrawn, provider down) propagates as it is.
 * Shared by the connector and the IDLE watcher, so both log in the same way.
 */
export async function connectImap(
  settings: MailboxSettings,
  tokens: AccessTokenSource | undefined,
  make: (accessToken: string | undefined) => ImapFlow,
  fail: (err: unknown, accessTokens: string[]) => MailintakeError,
): Promise<ImapFlow> {
  const attempt = async (
    accessToken: string | undefined,
  ): Promise<{ client: ImapFlow } | { err: unknown }> => {
    const client = make(accessToken);
    try {
      await client.connect();
      return { client };
    } catch (err) {
      const offered = [...(client.capabilities?.keys() ?? [])].filter((c) => c.startsWith('AUTH='));
      client.close();
      if (accessToken !== undefined && isUnsupportedMechanism(err)) {
        return { err: noOAuthMechanism(settings, offered, err) };
      }
      return { err };
    }
  };
  if (!tokens) {
    const only = await attempt(undefined);
    if ('client' in only) return only.client;
    throw fail(only.err, []);
  }
  const first = await tokens.get();
  const one = await attempt(first);
  if ('client' in one) return one.client;
  if (!isLoginRefusal(one.err)) throw fail(one.err, [first]);
  const renewed = await tokens.renew(first);
  const two = await attempt(renewed);
  if ('client' in two) return two.client;
  throw fail(two.err, [first, renewed]);
}

/** The private CA to trust: the one given (already read) or the mailbox's caFile; INVALID_SETTINGS if unreadable. */
export async function loadImapCa(settings: MailboxSettings, given?: Buffer): Promise<Buffer | undefined> {
  return loadCa(settings, given);
}

/**
 * The imapflow options for a mailbox: TLS policy (verification always on, private CA added, TLS 1.2+, no
 * opportunistic STARTTLS), SNI, timeouts, logging, auto-IDLE off. Shared by the connector and the IDLE watcher
 * so both connect the same way. `timeouts` must already be validated (see `validateImapTimeouts`).
 */
export function buildImapFlowOptions(
  settings: MailboxSettings,
  opts: {
    ca?: Buffer;
    logger?: ConnectorLogger;
    timeouts: Required<ImapTimeouts>;
    /** Log in with this OAuth 2.0 access token (OAUTHBEARER, else XOAUTH2) instead of the password. */
    accessToken?: string;
  },
): ImapFlowOptions {
  const implicitTls = settings.protocol === 'imaps';
  return {
    host: settings.server,
    port: settings.port,
    secure: implicitTls,
    // imaps: TLS from the first byte. imap: STARTTLS required (fail if not offered: an attacker on the path
    // can strip the capability, RFC 8314 §4) or, when the admin turned starttls off, plaintext on purpose.
    // Leaving it undefined would mean imapflow's "upgrade if offered", which we never want.
    ...(implicitTls ? {} : { doSTARTTLS: settings.starttls }),
    auth:
      opts.accessToken !== undefined
        ? { user: settings.username, accessToken: opts.accessToken }
        : { user: settings.username, pass: settings.password },
    tls: {
      // verification stays on (rejectUnauthorized defaults to true); a private CA is added, not substituted
      ...(opts.ca ? { ca: [opts.ca] } : {}),
      minVersion: 'TLSv1.2',
    },
    // SNI must not carry an IP address (RFC 6066 §3); Node then checks the IP against the certificate's
    // IP SANs, which is what we want for `server: 127.0.0.1`.
    ...(net.isIP(settings.server) ? {} : { servername: settings.server }),
    logger: opts.logger ? toImapflowLogger(opts.logger) : false,
    connectionTimeout: opts.timeouts.connectMs,
    greetingTimeout: opts.timeouts.greetingMs,
    socketTimeout: opts.timeouts.socketMs,
    // the fetch loop polls or idles on its own terms; an automatic IDLE between our commands only costs
    // two round trips per command (see imapflow autoIdleDelay)
    disableAutoIdle: true,
    clientInfo: { name: 'Mailintake' },
  };
}

function toImapflowLogger(logger: ConnectorLogger): Logger {
  // imapflow already hides credentials in its log entries; trace (raw bytes) is never forwarded. Its info
  // entries (every connection, every command) are debug detail for an operator, and so are its errors: every
  // failure reaches the caller as a coded MailintakeError that is reported once (the round's warning, the
  // CLI's error line), and imapflow's raw copy of it (`ECONNREFUSED` as JSON above the CLI's explanation)
  // only confused the admin reading `mailbox test`. Its warnings stay.
  const forward = (level: 'debug' | 'warn' | 'error') => (obj: unknown) => {
    const { msg, ...fields } = (typeof obj === 'object' && obj !== null ? obj : { msg: String(obj) }) as {
      msg?: unknown;
    } & Record<string, unknown>;
    logger[level](typeof msg === 'string' ? `imap: ${msg}` : 'imap', fields);
  };
  return { debug: forward('debug'), info: forward('debug'), warn: forward('warn'), error: forward('debug') };
}
