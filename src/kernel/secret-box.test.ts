import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { HEADER_BYTES, loadSecretBox, openedLength, SecretBox } from './secret-box.js';

const key = () => crypto.randomBytes(32);

describe('SecretBox strings', () => {
  it('seals and opens; a value sealed before a rotation opens with the old key listed as previous', () => {
    const oldKey = key();
    const before = new SecretBox(oldKey).seal('hunter2');
    const rotated = new SecretBox(key(), [oldKey]);
    expect(rotated.open(before)).toBe('hunter2');
    expect(rotated.sealedWithCurrentKey(before)).toBe(false);
    const after = rotated.seal('hunter2');
    expect(rotated.sealedWithCurrentKey(after)).toBe(true);
    // once the old key is dropped, what was sealed with it no longer opens
    expect(() => new SecretBox(key()).open(before)).toThrow(/does not open/);
  });
});

describe('SecretBox bytes (chunked AES-256-GCM)', () => {
  // sizes around the 64 KiB chunk edges: empty, one byte, exactly one chunk, one byte more, several chunks
  for (const size of [0, 1, 65_536, 65_537, 3 * 65_536 + 123]) {
    it(`round-trips ${size} bytes, streamed and in one piece, and reports the opened length`, async () => {
      const box = new SecretBox(key());
      const plain = crypto.randomBytes(size);
      const sealed = box.sealBytes(plain);
      expect(openedLength(sealed.length)).toBe(size);
      expect(box.openBytes(sealed).equals(plain)).toBe(true);
      // streamed in odd slices, both ways
      const slices = (b: Buffer) =>
        Array.from({ length: Math.ceil(b.length / 7001) + 1 }, (_, i) =>
          b.subarray(i * 7001, (i + 1) * 7001),
        );
      const streamedSeal = await buffer(Readable.from(slices(plain)).pipe(box.sealStream()));
      expect(openedLength(streamedSeal.length)).toBe(size);
      const opened = await buffer(Readable.from(slices(streamedSeal)).pipe(box.openStream()));
      expect(opened.equals(plain)).toBe(true);
    });
  }

  it('does not contain the plaintext, and refuses another key, a flipped bit and a cut-off end', () => {
    const box = new SecretBox(key());
    const plain = Buffer.from(`Subject: Quarterly figures\r\n\r\n${'x'.repeat(200_000)}`);
    const sealed = box.sealBytes(plain);
    expect(sealed.includes('Quarterly')).toBe(false);
    expect(() => new SecretBox(key()).openBytes(sealed)).toThrow(/not configured/);
    const flipped = Buffer.from(sealed);
    flipped[HEADER_BYTES + 10]! ^= 1;
    expect(() => box.openBytes(flipped)).toThrow(/does not open/);
    // cut after the first full chunk: the chunk flagged "last" is missing
    expect(() => box.openBytes(sealed.subarray(0, HEADER_BYTES + 65_536 + 16))).toThrow(/does not open/);
    expect(() => box.openBytes(sealed.subarray(0, 10))).toThrow(/too short/);
  });

  it('names the sealing key: current, previous, unknown', () => {
    const oldKey = key();
    const old = new SecretBox(oldKey).sealBytes(Buffer.from('report'));
    const rotated = new SecretBox(key(), [oldKey]);
    expect(rotated.keyIndexOfSealedBytes(old)).toBe(1);
    expect(rotated.openBytes(old).toString()).toBe('report');
    expect(rotated.keyIndexOfSealedBytes(rotated.sealBytes(Buffer.from('report')))).toBe(0);
    expect(new SecretBox(key()).keyIndexOfSealedBytes(old)).toBe(-1);
  });
});

describe('loadSecretBox', () => {
  it('creates a 0600 key file on first start and reuses it; previous keys come from the environment form', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailintake-key-'));
    try {
      const first = loadSecretBox({ secretKey: undefined, dataDir: dir });
      expect(fs.statSync(path.join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
      const sealed = first.seal('pw');
      expect(loadSecretBox({ secretKey: undefined, dataDir: dir }).open(sealed)).toBe('pw');
      const oldKey = fs.readFileSync(path.join(dir, 'secret.key'), 'utf8');
      const rotated = loadSecretBox({
        secretKey: key().toString('base64'),
        previousKeys: [oldKey],
        dataDir: dir,
      });
      expect(rotated.open(sealed)).toBe('pw');
      expect(rotated.keyCount).toBe(2);
      expect(() => loadSecretBox({ secretKey: 'c2hvcnQ=', dataDir: dir })).toThrow(/exactly 32 bytes/);
      expect(() => loadSecretBox({ secretKey: undefined, previousKeys: ['c2hvcnQ='], dataDir: dir })).toThrow(
        /PREVIOUS/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
