import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * AES-256-GCM sealing for data at rest: passwords and tokens (short strings), error reports and the mails POP3
 * keeps on our side (bytes, streamed). GCM's tag makes a tampered or wrongly-keyed value fail loudly instead of
 * decrypting to garbage.
 *
 * Key rotation: the box holds the current key and any number of previous ones (MAILINTAKE_SECRET_KEY_PREVIOUS).
 * Everything is sealed with the current key; opening tries the key a value names (bytes) or each key in turn
 * (strings), so data sealed before a rotation stays readable until `mailintake secret-key reseal` has sealed it
 * again with the new key.
 *
 * String format (unchanged since the first release): `v1.<base64 iv>.<base64 tag>.<base64 ciphertext>`.
 *
 * Byte format (streamed, so a 100 MB mail never sits in memory): a 20-byte header — `MISB`, version 1, the key's
 * id (first 8 bytes of its sha256), a random 7-byte nonce prefix — then the plaintext in 64 KiB chunks, each
 * sealed on its own with nonce = prefix ‖ chunk counter (32 bit) ‖ last-chunk flag, the header as associated data
 * and its 16-byte tag after it. Chunks are checked before any of their bytes are released, a reordered or
 * dropped chunk breaks the nonce sequence, and a cut-off stream lacks the chunk flagged last (the STREAM
 * construction of Hoang, Reyhanitabar, Rogaway and Vizár, "Online authenticated-encryption and its
 * nonce-reuse misuse-resistance", CRYPTO 2015): a reader never sees unauthenticated or truncated plaintext as
 * if it were whole.
 */
export class SecretBox {
  readonly #keys: { id: Buffer; key: Buffer }[];

  constructor(key: Buffer, previous: Buffer[] = []) {
    for (const k of [key, ...previous]) {
      if (k.length !== 32) throw new Error('a secret key must be 32 bytes (base64 of 32 random bytes)');
    }
    this.#keys = [key, ...previous].map((k) => ({ id: keyId(k), key: k }));
  }

  /** How many keys can open data: the current one plus the previous ones still configured. */
  get keyCount(): number {
    return this.#keys.length;
  }

  seal(plain: string): string {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.#keys[0]!.key, iv);
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), ct.toString('base64')].join(
      '.',
    );
  }

  open(sealed: string): string {
    return this.#openString(sealed).plain;
  }

  /** Whether a sealed string opens with the current key (false: sealed with a previous key, reseal it). */
  sealedWithCurrentKey(sealed: string): boolean {
    return this.#openString(sealed).keyIndex === 0;
  }

  #openString(sealed: string): { plain: string; keyIndex: number } {
    const [v, iv, tag, ct] = sealed.split('.');
    if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('not a sealed value');
    for (const [i, { key }] of this.#keys.entries()) {
      try {
        const decipher = crypto.createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
        decipher.setAuthTag(Buffer.from(tag, 'base64'));
        const plain = Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]);
        return { plain: plain.toString('utf8'), keyIndex: i };
      } catch {
        // the tag does not match under this key: try the next one
      }
    }
    throw new Error('the sealed value does not open with the configured key(s): wrong key or damaged data');
  }

  /**
   * Keys for another purpose derived from the secret key with HKDF-SHA256 under `label` (so a leaked derived
   * key reveals nothing of the sealing key): the current key's first, then the previous keys', so that what was
   * signed before a key rotation still verifies.
   */
  derivedKeys(label: string): Buffer[] {
    return this.#keys.map(({ key }) =>
      Buffer.from(crypto.hkdfSync('sha256', key, Buffer.alloc(0), `mailintake ${label}`, 32)),
    );
  }

  /** A stream that seals what is written to it with the current key (byte format above). */
  sealStream(): Transform {
    return new SealTransform(this.#keys[0]!);
  }

  /** A stream that opens the byte format; it fails (and releases nothing of the failing chunk) on a wrong key or damage. */
  openStream(): Transform {
    return new OpenTransform(this.#keys);
  }

  sealBytes(plain: Buffer): Buffer {
    const out: Buffer[] = [];
    const sealer = new Sealer(this.#keys[0]!, (b) => out.push(b));
    sealer.write(plain);
    sealer.end();
    return Buffer.concat(out);
  }

  openBytes(sealed: Buffer): Buffer {
    const out: Buffer[] = [];
    const opener = new Opener(this.#keys, (b) => out.push(b));
    opener.write(sealed);
    opener.end();
    return Buffer.concat(out);
  }

  /**
   * Which configured key sealed bytes starting with `head` (at least HEADER_BYTES of them): 0 the current one,
   * 1… a previous one, -1 none of them (or not sealed bytes at all).
   */
  keyIndexOfSealedBytes(head: Buffer): number {
    if (head.length < HEADER_BYTES || !head.subarray(0, 4).equals(MAGIC) || head[4] !== VERSION) return -1;
    const id = head.subarray(5, 13);
    return this.#keys.findIndex((k) => k.id.equals(id));
  }
}

export const HEADER_BYTES = 20;

/** The plaintext length of sealed bytes of `sealedLength` (the byte format above): for a Content-Length. */
export function openedLength(sealedLength: number): number {
  const chunks = Math.max(1, Math.ceil((sealedLength - HEADER_BYTES) / (CHUNK + TAG)));
  return sealedLength - HEADER_BYTES - chunks * TAG;
}
const MAGIC = Buffer.from('MISB');
const VERSION = 1;
const CHUNK = 64 * 1024;
const TAG = 16;

function keyId(key: Buffer): Buffer {
  return crypto.createHash('sha256').update(key).digest().subarray(0, 8);
}

function nonce(prefix: Buffer, counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0);
  n.writeUInt32BE(counter, 7);
  n[11] = last ? 1 : 0;
  return n;
}

class Sealer {
  readonly #key: Buffer;
  readonly #header: Buffer;
  readonly #prefix: Buffer;
  readonly #emit: (b: Buffer) => void;
  #pending: Buffer = Buffer.alloc(0);
  #counter = 0;
  #started = false;

  constructor(key: { id: Buffer; key: Buffer }, emit: (b: Buffer) => void) {
    this.#key = key.key;
    this.#prefix = crypto.randomBytes(7);
    this.#header = Buffer.concat([MAGIC, Buffer.from([VERSION]), key.id, this.#prefix]);
    this.#emit = emit;
  }

  #chunk(plain: Buffer, last: boolean): void {
    if (this.#counter === 0xffffffff) throw new Error('too much data for one sealed stream');
    const cipher = crypto.createCipheriv(
      'aes-256-gcm',
      this.#key,
      nonce(this.#prefix, this.#counter++, last),
    );
    cipher.setAAD(this.#header);
    this.#emit(Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]));
  }

  write(data: Buffer): void {
    if (!this.#started) {
      this.#started = true;
      this.#emit(this.#header);
    }
    // A chunk is sealed as "not last" only once more data is known to follow it.
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, data]) : data;
    while (this.#pending.length > CHUNK) {
      this.#chunk(this.#pending.subarray(0, CHUNK), false);
      this.#pending = this.#pending.subarray(CHUNK);
    }
  }

  end(): void {
    if (!this.#started) this.write(Buffer.alloc(0));
    this.#chunk(this.#pending, true);
    this.#pending = Buffer.alloc(0);
  }
}

class Opener {
  readonly #keys: { id: Buffer; key: Buffer }[];
  readonly #emit: (b: Buffer) => void;
  #header: Buffer | null = null;
  #key: Buffer | null = null;
  #pending: Buffer = Buffer.alloc(0);
  #counter = 0;

  constructor(keys: { id: Buffer; key: Buffer }[], emit: (b: Buffer) => void) {
    this.#keys = keys;
    this.#emit = emit;
  }

  #chunk(sealed: Buffer, last: boolean): void {
    const decipher = crypto.createDecipheriv(
      'aes-256-gcm',
      this.#key!,
      nonce(this.#header!.subarray(13, 20), this.#counter++, last),
    );
    decipher.setAAD(this.#header!);
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()]);
    } catch {
      throw new Error('the sealed data does not open: damaged, cut off, or sealed with another key');
    }
    this.#emit(plain);
  }

  write(data: Buffer): void {
    this.#pending = this.#pending.length ? Buffer.concat([this.#pending, data]) : data;
    if (!this.#header) {
      if (this.#pending.length < HEADER_BYTES) return;
      const header = this.#pending.subarray(0, HEADER_BYTES);
      if (!header.subarray(0, 4).equals(MAGIC) || header[4] !== VERSION) {
        throw new Error('not sealed data (unknown format)');
      }
      const key = this.#keys.find((k) => k.id.equals(header.subarray(5, 13)));
      if (!key) {
        throw new Error(
          'the data was sealed with a key that is not configured (set it in MAILINTAKE_SECRET_KEY_PREVIOUS)',
        );
      }
      this.#header = Buffer.from(header);
      this.#key = key.key;
      this.#pending = this.#pending.subarray(HEADER_BYTES);
    }
    // The last chunk is whatever remains at the end: keep at least one full chunk back until then.
    while (this.#pending.length > CHUNK + TAG) {
      this.#chunk(this.#pending.subarray(0, CHUNK + TAG), false);
      this.#pending = this.#pending.subarray(CHUNK + TAG);
    }
  }

  end(): void {
    if (!this.#header) throw new Error('not sealed data (too short)');
    if (this.#pending.length < TAG) throw new Error('the sealed data is cut off');
    this.#chunk(this.#pending, true);
    this.#pending = Buffer.alloc(0);
  }
}

class SealTransform extends Transform {
  readonly #sealer: Sealer;
  constructor(key: { id: Buffer; key: Buffer }) {
    super();
    this.#sealer = new Sealer(key, (b) => this.push(b));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#sealer.write(chunk);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }
  override _flush(callback: TransformCallback): void {
    try {
      this.#sealer.end();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }
}

class OpenTransform extends Transform {
  readonly #opener: Opener;
  constructor(keys: { id: Buffer; key: Buffer }[]) {
    super();
    this.#opener = new Opener(keys, (b) => this.push(b));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#opener.write(chunk);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }
  override _flush(callback: TransformCallback): void {
    try {
      this.#opener.end();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }
}

function decodeKey(value: string, name: string): Buffer {
  const key = Buffer.from(value.trim(), 'base64');
  if (key.length !== 32) throw new Error(`${name} must be base64 of exactly 32 bytes`);
  return key;
}

/**
 * The key comes from MAILINTAKE_SECRET_KEY, or from DATA_DIR/secret.key, created on first start with 0600
 * permissions. Losing the key means re-entering every mailbox password and losing the error reports, so the
 * README says to back it up. `previousKeys` (MAILINTAKE_SECRET_KEY_PREVIOUS) only open data sealed before a
 * rotation; nothing new is sealed with them.
 */
export function loadSecretBox(opts: {
  secretKey: string | undefined;
  previousKeys?: string[] | undefined;
  dataDir: string;
}): SecretBox {
  const previous = (opts.previousKeys ?? []).map((k, i) =>
    decodeKey(k, `MAILINTAKE_SECRET_KEY_PREVIOUS (key ${i + 1})`),
  );
  if (opts.secretKey) {
    return new SecretBox(decodeKey(opts.secretKey, 'MAILINTAKE_SECRET_KEY'), previous);
  }
  const file = path.join(opts.dataDir, 'secret.key');
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  try {
    // 'wx': never overwrite a key another process just created (two first starts at once).
    fs.writeFileSync(file, crypto.randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o077) throw new Error(`${file} is readable by others (mode ${mode.toString(8)}); chmod 600 it`);
  return new SecretBox(decodeKey(fs.readFileSync(file, 'utf8'), file), previous);
}
