import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMailintakeError } from '../../kernel/errors.js';
import { FileBlobStore } from './blob-store.js';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

describe('FileBlobStore', () => {
  let root: string;
  let store: FileBlobStore;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'mailintake-blobs-'));
    store = new FileBlobStore(root);
  });
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('stores a stream under its sha256 and reads it back', async () => {
    const { sha256, size } = await store.put(Readable.from([Buffer.from('hello '), Buffer.from('world')]));
    expect(sha256).toBe(sha('hello world'));
    expect(size).toBe(11);
    expect(await store.has(sha256)).toBe(true);
    expect(await store.size(sha256)).toBe(11);
    expect(await text(store.get(sha256))).toBe('hello world');
    expect(readdirSync(join(root, sha256.slice(0, 2), sha256.slice(2, 4)))).toEqual([sha256]);
  });

  it('is idempotent: the same content twice is one file and leaves no temp file', async () => {
    const a = await store.put(Readable.from([Buffer.from('same')]));
    const b = await store.put(Readable.from([Buffer.from('same')]));
    expect(b).toEqual(a);
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('stores an empty stream', async () => {
    const { sha256, size } = await store.put(Readable.from([]));
    expect(size).toBe(0);
    expect(sha256).toBe(sha(''));
    expect(await store.size(sha256)).toBe(0);
  });

  it('concurrent puts of the same content both succeed', async () => {
    const body = Buffer.alloc(300_000, 7);
    const [a, b] = await Promise.all([store.put(Readable.from([body])), store.put(Readable.from([body]))]);
    expect(a).toEqual(b);
    expect(await store.size(a.sha256)).toBe(300_000);
  });

  it('a failing source rejects and leaves no temp file', async () => {
    const failing = new Readable({
      read() {
        this.push(Buffer.from('partial'));
        this.destroy(new Error('connection reset'));
      },
    });
    await expect(store.put(failing)).rejects.toThrow('connection reset');
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
  });

  it('a missing blob: has() is false, size() and get() give NOT_FOUND', async () => {
    const key = sha('never stored');
    expect(await store.has(key)).toBe(false);
    await expect(store.size(key)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const err = await text(store.get(key)).catch((e: unknown) => e);
    expect(isMailintakeError(err) && err.code).toBe('NOT_FOUND');
  });

  it('path traversal keys are refused before they touch the file system', async () => {
    for (const key of ['../../../etc/passwd', '/etc/passwd', `${'a'.repeat(63)}/`, 'A'.repeat(64), '']) {
      expect(await store.has(key)).toBe(false);
      expect(() => store.get(key)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
      await expect(store.size(key)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    }
  });
});
