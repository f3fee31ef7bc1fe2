import { describe, expect, it } from 'vitest';
import {
  CONNECTION_CODES,
  ERROR_HELP,
  type ErrorCode,
  MailintakeError,
  ROUND_RULES,
  type RoundRule,
  retriedNextRound,
  roundRuleOf,
  roundRuleOfCode,
} from './errors.js';

/**
 * The retry rule, code by code, as the fetch round has always acted on it (the loop's old RETRYABLE_MAIL_CODES
 * list: STORE_FAILED and INTERNAL retried; the connection codes ending the round; every other mail failure the
 * error route's). A new code fails here until someone decides what it means for the round.
 */
// The lists the round acted on before the rule table existed (intake's RETRYABLE_MAIL_CODES, errors.ts's
// CONNECTION_CODES, the codes a mail's processing raises): the table must give the same answers.
const OLD_RETRYABLE_MAIL_CODES: ErrorCode[] = ['STORE_FAILED', 'INTERNAL'];
const OLD_CONNECTION_CODES: ErrorCode[] = [
  ...['DNS_FAILED', 'CONNECT_FAILED', 'TLS_FAILED', 'AUTH_FAILED', 'FOLDER_NOT_FOUND', 'TIMEOUT'],
  ...['PROTOCOL_ERROR', 'OAUTH_NOT_AUTHORIZED', 'OAUTH_REAUTHORIZE_REQUIRED', 'OAUTH_CLIENT_REJECTED'],
  'OAUTH_PROVIDER_UNAVAILABLE',
] as ErrorCode[];
// RATE_LIMITED: the mail is fine, its sender is over the portal's limit; counting it again each round would not help.
const MAIL_FAILURES_ROUTED: ErrorCode[] = [
  'PARSE_FAILED',
  'MAIL_TOO_LARGE',
  'MAIL_TOO_COMPLEX',
  'RATE_LIMITED',
];

function expectedRule(code: ErrorCode): RoundRule {
  if (OLD_RETRYABLE_MAIL_CODES.includes(code)) return 'retry-mail';
  if (OLD_CONNECTION_CODES.includes(code)) return 'stop-round';
  if (MAIL_FAILURES_ROUTED.includes(code)) return 'error-folder';
  return 'outside-round';
}
const EXPECTED = Object.fromEntries(
  (Object.keys(ERROR_HELP) as ErrorCode[]).map((code) => [code, expectedRule(code)]),
) as Record<ErrorCode, RoundRule>;

describe('the retry rule (ROUND_RULES)', () => {
  it('classifies every error code, and no other', () => {
    expect(Object.keys(ROUND_RULES).sort()).toEqual(Object.keys(ERROR_HELP).sort());
    expect(Object.keys(EXPECTED).sort()).toEqual(Object.keys(ERROR_HELP).sort());
  });

  for (const code of Object.keys(ERROR_HELP) as ErrorCode[]) {
    it(`${code}: ${EXPECTED[code]}; retryable by default exactly when the round tries it again`, () => {
      const err = new MailintakeError(code, 'x');
      expect(roundRuleOf(err)).toBe(EXPECTED[code]);
      expect(roundRuleOfCode(code)).toBe(EXPECTED[code]);
      expect(err.retryable).toBe(EXPECTED[code] === 'stop-round' || EXPECTED[code] === 'retry-mail');
      expect(retriedNextRound(code)).toBe(EXPECTED[code] === 'retry-mail');
      expect(CONNECTION_CODES.has(code)).toBe(EXPECTED[code] === 'stop-round');
    });
  }

  it('a stored code it does not know, or none, is not retried (the error route takes the mail)', () => {
    expect(roundRuleOfCode(null)).toBe('error-folder');
    expect(roundRuleOfCode('SOMETHING_OLD')).toBe('error-folder');
    expect(roundRuleOfCode('toString')).toBe('error-folder');
    expect(retriedNextRound(null)).toBe(false);
  });

  it('a raiser that knows better about one failure keeps its own answer', () => {
    expect(new MailintakeError('AUTH_FAILED', 'refused', { retryable: false }).retryable).toBe(false);
    expect(new MailintakeError('PARSE_FAILED', 'source broke', { retryable: true }).retryable).toBe(true);
  });
});
