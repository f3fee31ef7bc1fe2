/**
 * The server half of NTLM (MS-NLMP) for the EWS double: CHALLENGE messages out, AUTHENTICATE messages checked
 * against the account's password with NTLMv2 (and, like Exchange with Extended Protection, the TLS channel
 * binding). Written from the specification independently of the client library the product uses, with its
 * own MD4 (RFC 1320; Node 20's OpenSSL 3 has none), so a mistake shared by both sides cannot pass unnoticed.
 * Test-only: nothing under src/ imports this.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');

export const FLAGS = {
  UNICODE: 0x00000001,
  OEM: 0x00000002,
  REQUEST_TARGET: 0x00000004,
  NTLM: 0x00000200,
  ALWAYS_SIGN: 0x00008000,
  TARGET_TYPE_DOMAIN: 0x00010000,
  EXTENDED_SESSIONSECURITY: 0x00080000,
  TARGET_INFO: 0x00800000,
  VERSION: 0x02000000,
  N128: 0x20000000,
  N56: 0x80000000,
} as const;

export const AV = {
  EOL: 0,
  NB_COMPUTER: 1,
  NB_DOMAIN: 2,
  DNS_COMPUTER: 3,
  DNS_DOMAIN: 4,
  TIMESTAMP: 7,
  CHANNEL_BINDINGS: 10,
} as const;

/** RFC 1320 MD4. */
export function md4(input: Buffer): Buffer {
  const bitLength = input.length * 8;
  const total = (((input.length + 8) >>> 6) + 1) * 64;
  const msg = Buffer.alloc(total);
  input.copy(msg);
  msg[input.length] = 0x80;
  msg.writeUInt32LE(bitLength >>> 0, total - 8);
  msg.writeUInt32LE(Math.floor(bitLength / 2 ** 32), total - 4);
  const rotl = (x: number, n: number) => (x << n) | (x >>> (32 - n));
  const F = (x: number, y: number, z: number) => (x & y) | (~x & z);
  const G = (x: number, y: number, z: number) => (x & y) | (x & z) | (y & z);
  const H = (x: number, y: number, z: number) => x ^ y ^ z;
  const rounds: [typeof F, number[], number[], number][] = [
    [F, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [3, 7, 11, 19], 0],
    [G, [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15], [3, 5, 9, 13], 0x5a827999],
    [H, [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15], [3, 9, 11, 15], 0x6ed9eba1],
  ];
  let state = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  for (let off = 0; off < total; off += 64) {
    const X = Array.from({ length: 16 }, (_, i) => msg.readUInt32LE(off + i * 4));
    // each step updates the first register of (a,b,c,d), then the tuple rotates to (d,a',b,c)
    let h = [...state];
    for (const [f, order, shifts, add] of rounds) {
      for (let i = 0; i < 16; i++) {
        const r = rotl((h[0]! + f(h[1]!, h[2]!, h[3]!) + X[order[i]!]! + add) | 0, shifts[i % 4]!);
        h = [h[3]!, r, h[1]!, h[2]!];
      }
    }
    state = state.map((v, i) => (v + h[i]!) | 0);
  }
  const out = Buffer.alloc(16);
  for (const [i, v] of state.entries()) out.writeUInt32LE(v >>> 0, i * 4);
  return out;
}

const utf16 = (s: string) => Buffer.from(s, 'utf16le');

/** MS-NLMP 3.3.2 NTOWFv2: HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) + domain)). */
export function ntowfv2(password: string, user: string, domain: string): Buffer {
  return createHmac('md5', md4(utf16(password)))
    .update(utf16(user.toUpperCase() + domain))
    .digest();
}

export function avPairs(pairs: [number, Buffer][]): Buffer {
  const parts: Buffer[] = [];
  for (const [id, value] of pairs) {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(id, 0);
    head.writeUInt16LE(value.length, 2);
    parts.push(head, value);
  }
  parts.push(Buffer.alloc(4)); // MsvAvEOL
  return Buffer.concat(parts);
}

export function readAvPairs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let pos = 0; pos + 4 <= buf.length; ) {
    const id = buf.readUInt16LE(pos);
    const len = buf.readUInt16LE(pos + 2);
    if (id === AV.EOL || pos + 4 + len > buf.length) break;
    out.set(id, buf.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return out;
}

/** The message type (1, 2 or 3) of a base64 NTLM token, or undefined when it is not NTLMSSP. */
export function messageType(token: Buffer): number | undefined {
  if (token.length < 12 || !token.subarray(0, 8).equals(SIGNATURE)) return undefined;
  return token.readUInt32LE(8);
}

export interface ServerIdentity {
  /** NetBIOS domain, e.g. EXAMPLE. */
  domain: string;
  /** NetBIOS computer name, e.g. EXCH01. */
  computer: string;
  dnsDomain: string;
  dnsComputer: string;
}

/**
 * A CHALLENGE (type 2) message answering a NEGOTIATE: Unicode if the client offers it, NTLMv2-capable
 * (extended session security + TargetInfo) unless `v1Only` (a legacy server, to test that clients refuse it).
 */
export function challengeMessage(
  negotiate: Buffer,
  who: ServerIdentity,
  o: { v1Only?: boolean } = {},
): { token: Buffer; serverChallenge: Buffer } {
  const asked = negotiate.length >= 16 ? negotiate.readUInt32LE(12) : 0;
  const unicode = (asked & FLAGS.UNICODE) !== 0;
  let flags =
    (unicode ? FLAGS.UNICODE : FLAGS.OEM) |
    FLAGS.REQUEST_TARGET |
    FLAGS.NTLM |
    FLAGS.ALWAYS_SIGN |
    FLAGS.TARGET_TYPE_DOMAIN |
    FLAGS.VERSION |
    (asked & FLAGS.N128) |
    (asked & FLAGS.N56);
  if (!o.v1Only) flags |= (asked & FLAGS.EXTENDED_SESSIONSECURITY) | FLAGS.TARGET_INFO;
  const serverChallenge = randomBytes(8);
  const targetName = unicode ? utf16(who.domain) : Buffer.from(who.domain, 'latin1');
  const filetime = (BigInt(Date.now()) + 11_644_473_600_000n) * 10_000n;
  const stamp = Buffer.alloc(8);
  stamp.writeBigUInt64LE(filetime);
  const targetInfo = o.v1Only
    ? Buffer.alloc(0)
    : avPairs([
        [AV.NB_DOMAIN, utf16(who.domain)],
        [AV.NB_COMPUTER, utf16(who.computer)],
        [AV.DNS_DOMAIN, utf16(who.dnsDomain)],
        [AV.DNS_COMPUTER, utf16(who.dnsComputer)],
        [AV.TIMESTAMP, stamp],
      ]);
  const header = Buffer.alloc(56);
  SIGNATURE.copy(header, 0);
  header.writeUInt32LE(2, 8);
  header.writeUInt16LE(targetName.length, 12);
  header.writeUInt16LE(targetName.length, 14);
  header.writeUInt32LE(56, 16);
  header.writeUInt32LE(flags >>> 0, 20);
  serverChallenge.copy(header, 24);
  header.writeUInt16LE(targetInfo.length, 40);
  header.writeUInt16LE(targetInfo.length, 42);
  header.writeUInt32LE(56 + targetName.length, 44);
  // Version: Windows 10.0 build 17763, NTLM revision 15
  Buffer.from([10, 0, 0x63, 0x45, 0, 0, 0, 15]).copy(header, 48);
  return { token: Buffer.concat([header, targetName, targetInfo]), serverChallenge };
}

export interface AuthenticateMessage {
  flags: number;
  user: string;
  domain: string;
  workstation: string;
  ntResponse: Buffer;
}

export function parseAuthenticate(buf: Buffer): AuthenticateMessage {
  if (messageType(buf) !== 3 || buf.length < 64) throw new Error('not an AUTHENTICATE message');
  const flags = buf.readUInt32LE(60);
  const field = (at: number) => {
    const len = buf.readUInt16LE(at);
    const offset = buf.readUInt32LE(at + 4);
    if (offset + len > buf.length) throw new Error('security buffer outside the message');
    return buf.subarray(offset, offset + len);
  };
  const str = (at: number) => field(at).toString(flags & FLAGS.UNICODE ? 'utf16le' : 'latin1');
  return {
    flags,
    ntResponse: field(20),
    domain: str(28),
    user: str(36),
    workstation: str(44),
  };
}

/**
 * MS-NLMP 3.3.2: NTProofStr = HMAC-MD5(NTOWFv2, ServerChallenge + blob). Returns the client's AV pairs when
 * the proof matches, undefined when it does not (wrong password, or not an NTLMv2 response at all).
 */
export function verifyNtlmV2(
  auth: AuthenticateMessage,
  serverChallenge: Buffer,
  password: string,
): Map<number, Buffer> | undefined {
  const nt = auth.ntResponse;
  if (nt.length < 16 + 28) return undefined; // a 24-byte NTLMv1 response is refused, as Exchange's policy does
  const proof = nt.subarray(0, 16);
  const blob = nt.subarray(16);
  const expected = createHmac('md5', ntowfv2(password, auth.user, auth.domain))
    .update(Buffer.concat([serverChallenge, blob]))
    .digest();
  if (!timingSafeEqual(proof, expected)) return undefined;
  return readAvPairs(blob.subarray(28));
}

/**
 * The channel binding a client must send over a TLS connection presenting `certificateDer` (RFC 5929
 * tls-server-end-point with SHA-256, which is what a SHA-256-signed certificate asks for, in the RFC 2744
 * channel-bindings structure, MD5-hashed as MS-NLMP 2.2.2.1 says).
 */
export function expectedChannelBinding(certificateDer: Buffer): Buffer {
  const data = Buffer.concat([
    Buffer.from('tls-server-end-point:'),
    createHash('sha256').update(certificateDer).digest(),
  ]);
  const struct = Buffer.alloc(20); // initiator and acceptor address types and lengths: 0
  struct.writeUInt32LE(data.length, 16);
  return createHash('md5')
    .update(Buffer.concat([struct, data]))
    .digest();
}
