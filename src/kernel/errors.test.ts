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
const EXPECTED: Record<ErrorCode, RoundRule> = {
  DNS_FAILED: 'stop-round',
  CONNECT_FAILED: 'stop-round',
  TLS_FAILED: 'stop-round',
  AUTH_FAILED: 'stop-round',
  FOLDER_NOT_FOUND: 'stop-round',
  TIMEOUT: 'stop-round',
  PROTOCOL_ERROR: 'stop-round',
  OAUTH_NOT_AUTHORIZED: 'stop-round',
  OAUTH_REAUTHORIZE_REQUIRED: 'stop-round',
  OAUTH_CLIENT_REJECTED: 'stop-round',
  OAUTH_PROVIDER_UNAVAILABLE: 'stop-round',
  OAUTH_CONSENT_FAILED: 'outside-round',
  MAILBOX_BUSY: 'outside-round',
  FETCH_RUNNING: 'outside-round',
  PARSE_FAILED: 'error-folder',
  STORE_FAILED: 'retry-mail',
  ACK_FAILED: 'outside-round',
  MAIL_TOO_LARGE: 'error-folder',
  MAIL_TOO_COMPLEX: 'error-folder',
  SEND_FAILED: 'outside-round',
  INVALID_SETTINGS: 'outside-round',
  INVALID_JSON: 'outside-round',
  INVALID_ID: 'outside-round',
  NOT_FOUND: 'outside-round',
  CONFLICT: 'outside-round',
  UNAUTHORIZED: 'outside-round',
  STORE_NOT_FOUND: 'outside-round',
  PORT_IN_USE: 'outside-round',
  INTERNAL: 'retry-mail',
};

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
