import { describe, expect, it } from 'vitest';
import { isMailintakeError } from '../../kernel/errors.js';
import { PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS } from '../../kernel/limits.js';
import { checkPassword, hashPassword, verifyPassword } from './passwords.js';

describe('password hashing (scrypt)', () => {
  it('verifies the password it hashed, and nothing else', async () => {
    const stored = await hashPassword('correct horse battery');
    expect(stored).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterY', stored)).toBe(false);
    expect(await verifyPassword('', stored)).toBe(false);
  });

  it('salts every hash: the same password twice gives two hashes, both verifiable', async () => {
    const a = await hashPassword('the same password');
    const b = await hashPassword('the same password');
    expect(a).not.toBe(b);
    expect(await verifyPassword('the same password', a)).toBe(true);
    expect(await verifyPassword('the same password', b)).toBe(true);
  });

  it('reads the cost parameters from the stored hash', async () => {
    const stored = await hashPassword('parameters travel with it');
    const [, , r, p, salt, key] = stored.split('$');
    // another N than today's: verification must use the stored one, so it fails with a wrong N
    expect(await verifyPassword('parameters travel with it', `scrypt$16384$${r}$${p}$${salt}$${key}`)).toBe(
      false,
    );
  });

  it('never matches a missing or malformed hash (an account without a password, a tampered row)', async () => {
    expect(await verifyPassword('anything at all', null)).toBe(false);
    expect(await verifyPassword('anything at all', 'plain-text')).toBe(false);
    expect(await verifyPassword('anything at all', 'scrypt$1073741824$8$1$AAAA$AAAA')).toBe(false);
  });

  it('refuses a too short or too long password with a field error', async () => {
    const short = 'x'.repeat(PASSWORD_MIN_CHARS - 1);
    for (const bad of [short, 'x'.repeat(PASSWORD_MAX_CHARS + 1)]) {
      let error: unknown;
      try {
        checkPassword(bad);
      } catch (e) {
        error = e;
      }
      expect(isMailintakeError(error) && error.code).toBe('INVALID_SETTINGS');
      expect(isMailintakeError(error) && error.details.fields?.[0]?.field).toBe('password');
    }
    await expect(hashPassword(short)).rejects.toThrow(`at least ${PASSWORD_MIN_CHARS} characters`);
    expect(() => checkPassword('x'.repeat(PASSWORD_MIN_CHARS))).not.toThrow();
  });
});
