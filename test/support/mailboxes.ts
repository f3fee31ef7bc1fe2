import type { DovecotServer } from './dovecot.js';

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
