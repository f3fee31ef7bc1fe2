import { randomBytes } from 'node:crypto';
import type { AccessTokenSource } from '../../src/oauth/token-source.js';

/**
 * An AccessTokenSource for connector tests, and the server side that judges its tokens: what a provider and a
 * mail server agree on, without either. `verify` is what a protocol double's bearer verifier (or a test
 * server's XOAUTH2 check) calls. Tokens are long random strings, so a test can assert none of them leaks.
 */
export interface FakeTokenSource extends AccessTokenSource {
  /** Every token issued so far, in order. */
  readonly issued: string[];
  /** How often get() was called, and the tokens renew() was told were refused. */
  readonly calls: { get: number; renew: string[] };
  /**
   * The server stops accepting the current token (revoked, expired early) while the source still hands it
   * out: the next login is refused, and only renew() gives a good one.
   */
  revokeCurrent(): void;
  /** The server refuses every token, also renewed ones (wrong account consented, scope missing). */
  refuseAll(): void;
  /** renew() throws this from now on (e.g. OAUTH_REAUTHORIZE_REQUIRED); null: renew works again. */
  failRenewWith(err: Error | null): void;
  /** Server side: whom a token belongs to (null subject: an application token), or null to refuse it. */
  verify(token: string): Promise<{ subject: string | null } | null>;
}

export function fakeTokenSource(
  o: { kind?: 'delegated' | 'app'; subject?: string; tokenLength?: number } = {},
): FakeTokenSource {
  const kind = o.kind ?? 'delegated';
  const valid = new Set<string>();
  const issued: string[] = [];
  const calls = { get: 0, renew: [] as string[] };
  let current: string | undefined;
  let refuseAll = false;
  let renewFailure: Error | null = null;
  const issue = () => {
    // JWT-like: long, URL-safe; never shorter than the scrubbers' minimum
    const token = `eyJ${randomBytes(Math.ceil((o.tokenLength ?? 96) * 0.75)).toString('base64url')}`.slice(
      0,
      Math.max(16, o.tokenLength ?? 96),
    );
    issued.push(token);
    valid.add(token);
    current = token;
    return token;
  };
  return {
    kind,
    issued,
    calls,
    get: async () => {
      calls.get++;
      return current ?? issue();
    },
    renew: async (rejected) => {
      calls.renew.push(rejected);
      if (renewFailure) throw renewFailure;
      // another caller refreshed meanwhile: that token is the answer (the real source's contract)
      if (current !== undefined && current !== rejected) return current;
      return issue();
    },
    revokeCurrent: () => {
      if (current !== undefined) valid.delete(current);
    },
    refuseAll: () => {
      refuseAll = true;
    },
    failRenewWith: (err) => {
      renewFailure = err;
    },
    verify: async (token) => {
      if (refuseAll || !valid.has(token)) return null;
      return { subject: kind === 'app' ? null : (o.subject ?? 'someone@example.test') };
    },
  };
}
