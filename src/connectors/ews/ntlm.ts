import { createHash } from 'node:crypto';
import os from 'node:os';
import ntlm, { type Type2Message } from '@ewsjs/ntlm-client';

/**
 * NTLM for EWS on on-premises Exchange (MS-NLMP), on top of @ewsjs/ntlm-client, which computes the NTLMv2
 * response (MD4 in pure JS: Node 20's OpenSSL 3 has no md4) and lays out the AUTHENTICATE message.
 *
 * What we add around it, and why:
 * - Our own NEGOTIATE (type 1) message: the library's omits NTLMSSP_NEGOTIATE_UNICODE, so a Windows server
 *   answers with OEM strings and a user or domain name outside ASCII would be mangled.
 * - Only NTLMv2: the library falls back to NTLMv1 (DES of the password hash, crackable) when the server does
 *   not offer extended session security or sends no TargetInfo; we refuse instead (AUTH_FAILED saying so).
 * - Channel binding (MsvAvChannelBindings, MS-NLMP 2.2.2.1): Exchange 2019 CU14 and later turn Extended
 *   Protection on by default, and then IIS refuses NTLM over TLS that does not name the TLS certificate it was
 *   sent through (RFC 5929 tls-server-end-point). It also stops a relay of our NTLM exchange to another server.
 *   The library copies the challenge's TargetInfo into the NTLMv2 response verbatim, so the AV pair is added
 *   to that TargetInfo before the response is computed.
 * Known weakness kept from the library: its 8-byte client challenge comes from Math.random. It only matters
 * against the server itself (TLS with a verified certificate keeps anyone else out), and that server could
 * ask for the password in clear with Basic anyway.
 */

const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');

/** MS-NLMP 2.2.2.5 NEGOTIATE flags. */
const NEGOTIATE_UNICODE = 0x00000001;
const NEGOTIATE_OEM = 0x00000002;
const REQUEST_TARGET = 0x00000004;
const NEGOTIATE_NTLM = 0x00000200;
const NEGOTIATE_ALWAYS_SIGN = 0x00008000;
const NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000;
const NEGOTIATE_128 = 0x20000000;
const NEGOTIATE_56 = 0x80000000;

/** MS-NLMP 2.2.2.1 AV_PAIR ids. */
const MSV_AV_EOL = 0x0000;
const MSV_AV_CHANNEL_BINDINGS = 0x000a;

/** The NEGOTIATE (type 1) message, base64: no domain or workstation (both travel in the AUTHENTICATE). */
export function negotiateMessage(): string {
  const buf = Buffer.alloc(32);
  SIGNATURE.copy(buf, 0);
  buf.writeUInt32LE(1, 8);
  const flags =
    NEGOTIATE_UNICODE |
    NEGOTIATE_OEM |
    REQUEST_TARGET |
    NEGOTIATE_NTLM |
    NEGOTIATE_ALWAYS_SIGN |
    NEGOTIATE_EXTENDED_SESSIONSECURITY |
    NEGOTIATE_128 |
    NEGOTIATE_56;
  buf.writeUInt32LE(flags >>> 0, 12);
  // DomainNameFields and WorkstationFields: empty security buffers (offset 32 = end of message)
  buf.writeUInt32LE(32, 20);
  buf.writeUInt32LE(32, 28);
  return buf.toString('base64');
}

/** `DOMAIN\user` → domain and user; `user@domain` (a UPN) → no domain; a bare name → the server's domain. */
export function splitAccount(username: string): { user: string; domain: string | undefined } {
  const slash = username.indexOf('\\');
  if (slash > 0) return { domain: username.slice(0, slash), user: username.slice(slash + 1) };
  if (username.includes('@')) return { domain: '', user: username };
  return { domain: undefined, user: username };
}

export class NtlmRefused extends Error {
  override readonly name = 'NtlmRefused';
}

/**
 * The AUTHENTICATE (type 3) message, base64, answering the server's CHALLENGE `challenge` (base64) for a
 * connection whose server certificate is `certificate` (DER). Throws NtlmRefused when the server only
 * offers NTLMv1 or sends a malformed challenge.
 */
export function authenticateMessage(
  challenge: string,
  account: { username: string; password: string },
  certificate: Buffer | undefined,
): string {
  let type2: Type2Message;
  try {
    type2 = ntlm.decodeType2Message(challenge);
  } catch (err) {
    throw new NtlmRefused(`the server's NTLM challenge is malformed (${(err as Error).message})`);
  }
  if (type2.version !== 2 || !type2.targetInfo || type2.targetInfo.buffer.length === 0) {
    throw new NtlmRefused(
      'the server offers only NTLMv1 (no extended session security or no target information), which can be cracked; Mailintake only answers with NTLMv2',
    );
  }
  if (certificate) {
    type2.targetInfo.buffer = withAvPair(
      type2.targetInfo.buffer,
      MSV_AV_CHANNEL_BINDINGS,
      channelBindingHash(certificate),
    );
  }
  const { user, domain } = splitAccount(account.username);
  const workstation = os.hostname().split('.')[0]!.slice(0, 15).toUpperCase();
  const message = ntlm.createType3Message(type2, user, account.password, workstation, domain);
  return message.replace(/^NTLM /, '');
}

/** TargetInfo with one AV pair added before MsvAvEOL (replacing one with the same id). */
export function withAvPair(targetInfo: Buffer, id: number, value: Buffer): Buffer {
  const pairs: Buffer[] = [];
  for (let pos = 0; pos + 4 <= targetInfo.length; ) {
    const avId = targetInfo.readUInt16LE(pos);
    const len = targetInfo.readUInt16LE(pos + 2);
    if (avId === MSV_AV_EOL || pos + 4 + len > targetInfo.length) break;
    if (avId !== id) pairs.push(targetInfo.subarray(pos, pos + 4 + len));
    pos += 4 + len;
  }
  const head = Buffer.alloc(4);
  head.writeUInt16LE(id, 0);
  head.writeUInt16LE(value.length, 2);
  return Buffer.concat([...pairs, head, value, Buffer.alloc(4)]);
}

/**
 * MD5 of the gss_channel_bindings_struct (RFC 2744 3.11, as MS-NLMP 3.1.5.1.2 uses it) whose application data
 * is "tls-server-end-point:" + the certificate hash (RFC 5929 4.1). No initiator or acceptor addresses.
 */
export function channelBindingHash(certificate: Buffer): Buffer {
  const appData = Buffer.concat([
    Buffer.from('tls-server-end-point:', 'latin1'),
    createHash(endPointHash(certificate)).update(certificate).digest(),
  ]);
  const struct = Buffer.alloc(20);
  struct.writeUInt32LE(appData.length, 16);
  return createHash('md5')
    .update(Buffer.concat([struct, appData]))
    .digest();
}

/**
 * RFC 5929 4.1: the hash of the certificate's own signature algorithm, except that MD5 and SHA-1 become
 * SHA-256. Read from the DER: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }.
 */
export function endPointHash(der: Buffer): 'sha256' | 'sha384' | 'sha512' {
  try {
    const cert = derChild(der, 0);
    const tbs = derChild(der, cert.contentStart);
    const algorithm = derChild(der, tbs.end);
    const oid = derChild(der, algorithm.contentStart);
    const hex = der.subarray(oid.contentStart, oid.end).toString('hex');
    // sha384WithRSAEncryption, ecdsa-with-SHA384 / sha512WithRSAEncryption, ecdsa-with-SHA512
    if (hex === '2a864886f70d01010c' || hex === '2a8648ce3d040303') return 'sha384';
    if (hex === '2a864886f70d01010d' || hex === '2a8648ce3d040304') return 'sha512';
  } catch {
    // not parseable as we expect: SHA-256, which is right for nearly every certificate in use
  }
  return 'sha256';
}

/** The DER element starting at `start`: where its content starts and where it ends. */
function derChild(der: Buffer, start: number): { contentStart: number; end: number } {
  if (start + 2 > der.length) throw new Error('truncated');
  let len = der[start + 1]!;
  let contentStart = start + 2;
  if (len & 0x80) {
    const bytes = len & 0x7f;
    if (bytes === 0 || bytes > 4 || contentStart + bytes > der.length) throw new Error('bad length');
    len = 0;
    for (let i = 0; i < bytes; i++) len = len * 256 + der[contentStart + i]!;
    contentStart += bytes;
  }
  const end = contentStart + len;
  if (end > der.length) throw new Error('truncated');
  return { contentStart, end };
}
