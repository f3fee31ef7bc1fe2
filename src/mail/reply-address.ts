import { createHmac, timingSafeEqual } from 'node:crypto';

/*
 * A reply address per request (as GitLab Service Desk and Chatwoot do): `support+<id>.<sig>@example.com`, where
 * <sig> is a truncated HMAC-SHA256 over (portal, request) under a key only we hold. A customer's answer to it
 * threads to the request even when every header was stripped on the way; nobody can append to a request they
 * were never sent an address for, since the signature cannot be made without the key. Pure, no I/O.
 *
 * The signature is base32 (RFC 4648 alphabet, lower case): mail systems change the case of local parts, and
 * base32 means the same either way. 10 characters are 50 bits: guessing one takes ~10^15 tries per request.
 */

/** The label the key is derived under (kernel/secret-box.ts derivedKeys). */
export const REPLY_ADDRESS_KEY_LABEL = 'reply-address v1';
export const REPLY_SIG_CHARS = 10;

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= 0xff;
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** The signature of (portal, request) under one key. */
export function replySignature(key: Buffer, portalId: number, requestId: number): string {
  const mac = createHmac('sha256', key).update(`reply-address\n${portalId}\n${requestId}`).digest();
  return base32(mac).slice(0, REPLY_SIG_CHARS);
}

/** `local+tag@domain` → `local@domain`, lower-cased: the mailbox's address a plus-address belongs to. */
export function baseAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address.toLowerCase();
  const local = address.slice(0, at);
  const plus = local.indexOf('+');
  return `${plus < 0 ? local : local.slice(0, plus)}@${address.slice(at + 1)}`.toLowerCase();
}

/** The reply address of a request on a mailbox address (a +tag it already has is replaced). */
export function makeReplyAddress(
  mailboxAddress: string,
  portalId: number,
  requestId: number,
  key: Buffer,
): string {
  const base = baseAddress(mailboxAddress);
  const at = base.lastIndexOf('@');
  return `${base.slice(0, at)}+${requestId}.${replySignature(key, portalId, requestId)}@${base.slice(at + 1)}`;
}

export interface ParsedReplyAddress {
  /** The mailbox address it is a plus-address of (lower case). */
  base: string;
  requestId: number;
  signature: string;
}

const TAG = /^(\d{1,15})\.([a-z2-7]+)$/;

/** The parts of a reply address, or null when the address is not of that form. */
export function parseReplyAddress(address: string): ParsedReplyAddress | null {
  const lower = address.trim().toLowerCase();
  const at = lower.lastIndexOf('@');
  if (at < 1) return null;
  const local = lower.slice(0, at);
  const plus = local.indexOf('+');
  if (plus < 1) return null;
  const m = TAG.exec(local.slice(plus + 1));
  if (!m) return null;
  const requestId = Number(m[1]);
  if (!Number.isSafeInteger(requestId) || requestId < 1) return null;
  return { base: `${local.slice(0, plus)}@${lower.slice(at + 1)}`, requestId, signature: m[2]! };
}

export type ReplyAddressCheck =
  | { kind: 'none' }
  | { kind: 'valid'; requestId: number; address: string }
  | { kind: 'invalid'; requestId: number; address: string };

/**
 * The first reply address among `addresses` that belongs to one of `ownAddresses` (a plus-address of another
 * domain is someone else's), checked against every key (the current one first): valid, or invalid (a
 * tampered, guessed or other portal's signature), or none of that form.
 */
export function checkReplyAddresses(
  addresses: readonly string[],
  ownAddresses: readonly string[],
  portalId: number,
  keys: readonly Buffer[],
): ReplyAddressCheck {
  const own = new Set(ownAddresses.map(baseAddress));
  let invalid: ReplyAddressCheck | null = null;
  for (const address of addresses) {
    const parsed = parseReplyAddress(address);
    if (!parsed || !own.has(parsed.base)) continue;
    const given = Buffer.from(parsed.signature);
    for (const key of keys) {
      const expected = Buffer.from(replySignature(key, portalId, parsed.requestId));
      // constant time: the comparison must not tell an attacker how many characters they got right
      if (given.length === expected.length && timingSafeEqual(given, expected)) {
        return { kind: 'valid', requestId: parsed.requestId, address };
      }
    }
    invalid ??= { kind: 'invalid', requestId: parsed.requestId, address };
  }
  return invalid ?? { kind: 'none' };
}
