import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { MailintakeError } from '../../src/kernel/errors.js';
import type { AccessTokenSource } from '../../src/oauth/token-source.js';

/**
 * An AccessTokenSource for connector tests, and the server side that judges its tokens: what a provider and a
 * mail server agree on, without either. `verify` is what a protocol double's bearer verifier (or a test
 * server's XOAUTH2 check) calls. Tokens are long random strings, so a test can assert none of them leaks
 * (`expectNoTokenIn`). A scripted mail server reads the token from the SASL payload and refuses it as a real
 * one does (`bearerInSasl`, `SASL_TOKEN_REFUSED`).
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
  /**
   * The user withdraws the consent: the server refuses the current token (revokeCurrent) and renew() throws
   * OAUTH_REAUTHORIZE_REQUIRED from now on. Returns that error, which the caller must surface as it is.
   */
  withdrawConsent(): MailintakeError;
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
  const revokeCurrent = () => {
    if (current !== undefined) valid.delete(current);
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
    revokeCurrent,
    refuseAll: () => {
      refuseAll = true;
    },
    withdrawConsent: () => {
      const withdrawn = new MailintakeError('OAUTH_REAUTHORIZE_REQUIRED', 'The consent was withdrawn');
      revokeCurrent();
      renewFailure = withdrawn;
      return withdrawn;
    },
    verify: async (token) => {
      if (refuseAll || !valid.has(token)) return null;
      return { subject: kind === 'app' ? null : (o.subject ?? 'someone@example.test') };
    },
  };
}

/** Asserts that no token the source issued shows in the error's JSON (and, with `stack`, in its stack). */
export function expectNoTokenIn(
  err: MailintakeError,
  tokens: FakeTokenSource,
  o: { stack?: boolean } = {},
): void {
  const text = JSON.stringify(o.stack ? { ...err.toJSON(), stack: err.stack } : err.toJSON());
  for (const token of tokens.issued) expect(text).not.toContain(token);
}

/**
 * Mail-server side of SASL XOAUTH2 and OAUTHBEARER (RFC 7628), as Dovecot's mech-oauth2 does it: the bearer
 * token in a decoded payload (`…^Aauth=Bearer <token>^A…`; '' when there is none), and the challenge that
 * refuses it: "+ " and the RFC 7628 error as base64 JSON, which the client answers before the final NO/-ERR.
 */
export function bearerInSasl(payload: string): string {
  return (
    payload
      .split('\x01')
      .find((f) => f.startsWith('auth=Bearer '))
      ?.slice('auth=Bearer '.length) ?? ''
  );
}

export const SASL_TOKEN_REFUSED = `+ ${Buffer.from(
  JSON.stringify({ status: 'invalid_token', schemes: 'bearer', scope: 'mail' }),
).toString('base64')}\r\n`;
