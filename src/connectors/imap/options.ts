import { IMAP_TIMEOUTS } from '../../kernel/limits.js';
import type { Logger as AppLogger } from '../../kernel/logger.js';
import { serverLabel, validateTimeouts } from '../net-errors.js';
import type { MailboxSettings } from '../settings.js';

// What the IMAP connector, its session and its errors share: how long to wait, how to log, and how to name
// the server in a message.

/** What the connector logs through: the project's structured logger. */
export type ConnectorLogger = AppLogger;

export interface ImapTimeouts {
  /** TCP + TLS handshake (includes DNS). Default 15 s. */
  connectMs?: number;
  /** From TCP connect to the server's greeting. Default 15 s. */
  greetingMs?: number;
  /** Silence on an established connection before giving up. Default 5 min (a 50 MB FETCH can be slow). */
  socketMs?: number;
}

export const DEFAULT_IMAP_TIMEOUTS: Required<ImapTimeouts> = { ...IMAP_TIMEOUTS };

/** Defaults filled in; INVALID_SETTINGS for a zero, negative or fractional value. */
export function validateImapTimeouts(t: ImapTimeouts | undefined): Required<ImapTimeouts> {
  return validateTimeouts(DEFAULT_IMAP_TIMEOUTS, t);
}

/** `host:port` as messages name the server (IPv6 in brackets). */
export function imapServerLabel(settings: Pick<MailboxSettings, 'server' | 'port'>): string {
  return serverLabel(settings);
}
