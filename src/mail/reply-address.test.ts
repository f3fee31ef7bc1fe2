import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { prng } from '../../test/kit/prng.js';
import {
  baseAddress,
  checkReplyAddresses,
  makeReplyAddress,
  parseReplyAddress,
  REPLY_SIG_CHARS,
} from './reply-address.js';

const key = randomBytes(32);
const oldKey = randomBytes(32);
const own = ['support@example.com', 'Help@Example.com'];

/** Generated (portal, request) pairs, small and large ids alike; the seed replays a failure. */
function pairs(seed: number, n: number): [number, number][] {
  const r = prng(seed);
  return Array.from({ length: n }, () => [1 + Math.floor(r() * 50), 1 + Math.floor(r() ** 4 * 1e12)]);
}

describe('reply address', () => {
  it('makes an address that parses back and verifies, for generated ids', () => {
    for (const [portal, request] of pairs(13, 500)) {
      const address = makeReplyAddress('support@example.com', portal, request, key);
      expect(address).toMatch(
        new RegExp(`^support\\+${request}\\.[a-z2-7]{${REPLY_SIG_CHARS}}@example\\.com$`),
      );
      expect(parseReplyAddress(address)).toMatchObject({ base: 'support@example.com', requestId: request });
      expect(checkReplyAddresses([address], own, portal, [key])).toEqual({
        kind: 'valid',
        requestId: request,
        address,
      });
    }
  });

  it('survives a change of case and is made on the base of an address that has a +tag already', () => {
    const address = makeReplyAddress('Support+old@Example.COM', 3, 42, key);
    expect(address.startsWith('support+42.')).toBe(true);
    expect(checkReplyAddresses([address.toUpperCase()], own, 3, [key]).kind).toBe('valid');
    expect(baseAddress('A+b+c@X.org')).toBe('a@x.org');
  });

  it('refuses a tampered signature, another request id, another portal, another key', () => {
    for (const [portal, request] of pairs(7, 200)) {
      const address = makeReplyAddress('support@example.com', portal, request, key);
      const parsed = parseReplyAddress(address)!;
      const flipped = `${parsed.signature.slice(0, -1)}${parsed.signature.endsWith('a') ? 'b' : 'a'}`;
      const tampered = `support+${request}.${flipped}@example.com`;
      expect(checkReplyAddresses([tampered], own, portal, [key]).kind).toBe('invalid');
      const otherRequest = `support+${request + 1}.${parsed.signature}@example.com`;
      expect(checkReplyAddresses([otherRequest], own, portal, [key]).kind).toBe('invalid');
      expect(checkReplyAddresses([address], own, portal + 1, [key]).kind).toBe('invalid');
      expect(checkReplyAddresses([address], own, portal, [oldKey]).kind).toBe('invalid');
      const shortened = `support+${request}.${parsed.signature.slice(1)}@example.com`;
      expect(checkReplyAddresses([shortened], own, portal, [key]).kind).toBe('invalid');
    }
  });

  it('still verifies with a previous key after a key rotation', () => {
    const address = makeReplyAddress('help@example.com', 1, 9, oldKey);
    expect(checkReplyAddresses([address], own, 1, [key, oldKey]).kind).toBe('valid');
  });

  it('ignores plus-addresses of other domains and addresses of other forms', () => {
    const address = makeReplyAddress('support@example.com', 1, 9, key);
    expect(checkReplyAddresses([address.replace('example.com', 'example.org')], own, 1, [key])).toEqual({
      kind: 'none',
    });
    for (const other of [
      'support@example.com',
      'support+tag@example.com',
      'support+9@example.com',
      'support+9.@example.com',
      'support+0.aaaaaaaaaa@example.com',
      'support+x9.aaaaaaaaaa@example.com',
      '+9.aaaaaaaaaa@example.com',
      'support+9.aaaaaaaaaa',
    ]) {
      expect(checkReplyAddresses([other], own, 1, [key]).kind).toBe(
        parseReplyAddress(other) ? 'invalid' : 'none',
      );
    }
    expect(parseReplyAddress('support+9.aaaaaaaaaa')).toBeNull();
  });

  it('takes the first valid address of several, an invalid one only when none is valid', () => {
    const good = makeReplyAddress('support@example.com', 2, 5, key);
    const bad = 'support+6.aaaaaaaaaa@example.com';
    expect(checkReplyAddresses([bad, 'x@y.z', good], own, 2, [key])).toMatchObject({
      kind: 'valid',
      requestId: 5,
    });
    expect(checkReplyAddresses([bad], own, 2, [key])).toMatchObject({ kind: 'invalid', requestId: 6 });
  });
});

describe('hostile addresses', () => {
  it('mutated reply addresses: parsed or refused, never an exception, and never valid without the key', () => {
    const rand = prng(1024);
    const good = makeReplyAddress('support@example.com', 7, 123, key);
    const pieces = ['+', '@', '.', '0', '9'.repeat(20), 'a', '\0', '\ud800', ' ', '\n', 'Z', '-1', '1e3'];
    let parsed = 0;
    for (let round = 0; round < 2000; round++) {
      let a = good;
      for (let s = 1 + Math.floor(rand() * 3); s > 0; s--) {
        const at = Math.floor(rand() * (a.length + 1));
        const piece = pieces[Math.floor(rand() * pieces.length)]!.repeat(
          1 + Math.floor(rand() * (rand() < 0.05 ? 100_000 : 3)),
        );
        a = a.slice(0, at) + piece + a.slice(at + (rand() < 0.5 ? 1 : 0));
      }
      const p = parseReplyAddress(a);
      if (p) {
        parsed++;
        expect(Number.isSafeInteger(p.requestId) && p.requestId >= 1).toBe(true);
        expect(p.signature).toMatch(/^[a-z2-7]+$/);
      }
      const check = checkReplyAddresses([a], own, 7, [oldKey]);
      expect(check.kind).not.toBe('valid');
      expect(baseAddress(a).length).toBeLessThanOrEqual(a.length);
    }
    expect(parsed).toBeGreaterThan(0);
  });
});
