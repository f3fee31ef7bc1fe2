import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * AES-256-GCM sealing for secrets at rest (passwords, tokens; later error reports). Format:
 * `v1.<base64 iv>.<base64 tag>.<base64 ciphertext>`. The version prefix leaves room for key rotation.
 * GCM's tag makes a tampered or wrongly-keyed value fail loudly instead of decrypting to garbage.
 */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('the secret key must be 32 bytes (base64 of 32 random bytes)');
    this.#key = key;
  }

  seal(plain: string): string {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.#key, iv);
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), ct.toString('base64')].join(
      '.',
    );
  }

  open(sealed: string): string {
    const [v, iv, tag, ct] = sealed.split('.');
    if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('not a sealed value');
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString('utf8');
  }
}

/**
 * The key comes from MAILINTAKE_SECRET_KEY, or from DATA_DIR/secret.key, created on first start with 0600
 * permissions. Losing the key means re-entering every mailbox password, so the README says to back it up.
 */
export function loadSecretBox(opts: { secretKey: string | undefined; dataDir: string }): SecretBox {
  if (opts.secretKey) {
    const key = Buffer.from(opts.secretKey, 'base64');
    if (key.length !== 32) throw new Error('MAILINTAKE_SECRET_KEY must be base64 of exactly 32 bytes');
    return new SecretBox(key);
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
  return new SecretBox(Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64'));
}
