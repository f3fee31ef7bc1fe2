import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { isMailintakeError } from '../../kernel/errors.js';
import { RawPacks } from './raw-packs.js';

describe('RawPacks', () => {
  const root = mkdtempSync(join(tmpdir(), 'mailintake-packs-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const packs = new RawPacks(root);

  it('writes a batch of raw mails as one file and reads each back by its location', async () => {
    const writer = packs.writer();
    const mails = [Buffer.from('first mail'), Buffer.alloc(200_000, 7), Buffer.from(''), Buffer.from('last')];
    const locations = mails.map((m) => writer.add(m));
    await writer.flush();
    for (const [i, loc] of locations.entries()) expect(await buffer(packs.open(loc))).toEqual(mails[i]);
    const files = readdirSync(join(root, locations[0]!.pack.slice(0, 2)));
    expect(files).toEqual([`${locations[0]!.pack}.pack`]); // no temp file left
  });

  it('a writer with nothing added writes nothing', async () => {
    const before = readdirSync(root).length;
    await packs.writer().flush();
    expect(readdirSync(root)).toHaveLength(before);
  });

  it('refuses a location that is not ours before it becomes a path (../ traversal)', () => {
    for (const pack of ['../../etc/passwd', 'ABCDEF', '0'.repeat(31)]) {
      let err: unknown = null;
      try {
        packs.open({ pack, offset: 0, length: 1 });
      } catch (e) {
        err = e;
      }
      expect(isMailintakeError(err) && err.code).toBe('NOT_FOUND');
    }
  });

  it('a missing pack or a range past its end is NOT_FOUND, not a silent short read', async () => {
    const missing = await buffer(packs.open({ pack: 'a'.repeat(32), offset: 0, length: 5 })).catch((e) => e);
    expect(isMailintakeError(missing) && missing.code).toBe('NOT_FOUND');
    const writer = packs.writer();
    const loc = writer.add(Buffer.from('short'));
    await writer.flush();
    const past = await buffer(packs.open({ ...loc, length: 50 })).catch((e) => e);
    expect(isMailintakeError(past) && past.code).toBe('NOT_FOUND');
  });
});
