import { describe, expect, it } from 'vitest';
import { MIN_REDACTED_LENGTH, secretsIn } from './secrets.js';

describe('secretsIn', () => {
  it('finds the password, a static access token and the OAuth client secret, and nothing else', () => {
    const body = {
      name: 'support',
      username: 'help@example.test',
      password: 'pa55word',
      accessToken: 'eyJ0eXAi',
      oauth: { clientId: 'client-id', clientSecret: 'client-secret' },
    };
    expect(secretsIn(body)).toEqual(['pa55word', 'eyJ0eXAi', 'client-secret']);
  });

  it('leaves out values too short to cut out, non-strings and non-objects', () => {
    const short = 'x'.repeat(MIN_REDACTED_LENGTH - 1);
    expect(secretsIn({ password: short, accessToken: 42, oauth: null })).toEqual([]);
    expect(secretsIn({ password: 'x'.repeat(MIN_REDACTED_LENGTH) })).toEqual([
      'x'.repeat(MIN_REDACTED_LENGTH),
    ]);
    for (const v of [null, undefined, 'password', 7, []]) expect(secretsIn(v)).toEqual([]);
  });
});
