import crypto from 'node:crypto';
import { MailintakeError } from '../../kernel/errors.js';
import { PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS } from '../../kernel/limits.js';

/**
 * Passwords are stored as `scrypt$N$r$p$salt$hash` (base64url): a random salt per user and the cost parameters
 * travel with the hash, so raising the cost later leaves existing hashes verifiable.
 */
const PARAMS = { N: 2 ** 15, r: 8, p: 1 };
const KEY_BYTES = 32;
// scrypt needs 128 * N * r bytes; Node's default ceiling (32 MiB) is exactly that, so leave room
const MAX_MEM = 64 * 1024 * 1024;

function scrypt(password: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    crypto.scrypt(password.normalize('NFC'), salt, KEY_BYTES, { N, r, p, maxmem: MAX_MEM }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** INVALID_SETTINGS naming the field when the password is too short or too long. */
export function checkPassword(password: string, field = 'password'): void {
  const message =
    password.length < PASSWORD_MIN_CHARS
      ? `at least ${PASSWORD_MIN_CHARS} characters`
      : password.length > PASSWORD_MAX_CHARS
        ? `at most ${PASSWORD_MAX_CHARS} characters`
        : null;
  if (message) {
    throw new MailintakeError('INVALID_SETTINGS', `The password must have ${message}.`, {
      details: { fields: [{ field, message }] },
    });
  }
}

export async function hashPassword(password: string): Promise<string> {
  checkPassword(password);
  const salt = crypto.randomBytes(16);
  const key = await scrypt(password, salt, PARAMS.N, PARAMS.r, PARAMS.p);
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64url'), key.toString('base64url')].join(
    '$',
  );
}

/** Whether the password matches the stored hash (constant-time compare); a malformed hash never matches. */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  const parts = (stored ?? '').split('$');
  const [scheme, n, r, p, salt, key] = parts;
  const N = Number(n);
  const R = Number(r);
  const P = Number(p);
  const ok =
    parts.length === 6 &&
    scheme === 'scrypt' &&
    Number.isInteger(Math.log2(N)) &&
    N >= 2 ** 10 &&
    N <= 2 ** 17 &&
    R >= 1 &&
    R <= 32 &&
    P >= 1 &&
    P <= 16;
  if (!ok || password.length > PASSWORD_MAX_CHARS) {
    // the same work as a real check, so that timing does not tell whether the account exists
    await scrypt(password.slice(0, PASSWORD_MAX_CHARS), DUMMY_SALT, PARAMS.N, PARAMS.r, PARAMS.p);
    return false;
  }
  const expected = Buffer.from(key ?? '', 'base64url');
  const actual = await scrypt(password, Buffer.from(salt ?? '', 'base64url'), N, R, P);
  return expected.length === actual.length && crypto.timingSafeEqual(expected, actual);
}

const DUMMY_SALT = crypto.randomBytes(16);
