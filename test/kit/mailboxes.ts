import type { DovecotServer } from '../support/dovecot.js';

/**
 * A mailbox file for an OAuth 2.0 mailbox (provider google) of help@example.test on a scripted server on
 * loopback, in plain text (no STARTTLS): what the connectors' own OAuth tests log in to.
 */
export function loopbackOAuthMailbox(
  protocol: 'imap' | 'pop',
  name: string,
  port: number,
): Record<string, unknown> {
  return {
    name,
    protocol,
    starttls: false,
    server: '127.0.0.1',
    port,
    username: 'help@example.test',
    emailAddress: 'help@example.test',
    oauth: { provider: 'google', clientId: 'client-id', clientSecret: 'client-secret' },
  };
}

/**
 * A mailbox file for an IMAPS mailbox on a throwaway Dovecot, whose user `user` has the password `${user}-pw`
 * (the convention the test files start their Dovecot users with). `extra` overrides any field.
 */
export function imapsMailbox(
  dovecot: DovecotServer,
  name: string,
  user: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    name,
    protocol: 'imaps',
    server: 'localhost',
    port: dovecot.ports.imaps,
    username: user,
    password: `${user}-pw`,
    emailAddress: `${user}@example.test`,
    caFile: dovecot.caFile,
    ...extra,
  };
}
