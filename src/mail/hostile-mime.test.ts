import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAD, HOSTILE_SHAPES, multipart, nestedMultipart, repeat } from '../../test/kit/hostile-mimes.js';
import { isMailintakeError } from '../kernel/errors.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { type ComplexityLimit, DEFAULT_PARSE_LIMITS, type ParseLimits, parseMail } from './parse.js';

/** Every shape of test/support/hostile-mimes.ts through parseMail, and the limits as settings. */
let dir: string;
let blobs: FileBlobStore;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailintake-hostile-'));
  blobs = new FileBlobStore(dir);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Streams the chunks as bytes (latin1: a generator's \xff is one byte, as a sender would send it). */
const source = (chunks: Iterable<string>) =>
  Readable.from(
    (function* () {
      for (const c of chunks) yield Buffer.from(c, 'latin1');
    })(),
  );

const parse = (chunks: Iterable<string>, limits?: Partial<ParseLimits>) =>
  parseMail(source(chunks), { blobs, ...(limits ? { limits } : {}) });

describe('hostile mails through parseMail', () => {
  it.each(HOSTILE_SHAPES.map((s) => [s.name, s] as const))('%s', async (_name, shape) => {
    const result = await parse(shape.chunks()).then(
      (mail) => ({ mail }),
      (err: unknown) => ({ err }),
    );
    if (typeof shape.expect !== 'function') {
      const limits = Array.isArray(shape.expect) ? shape.expect : [shape.expect];
      const json = 'err' in result && isMailintakeError(result.err) ? result.err.toJSON() : null;
      expect(json?.error, String('err' in result ? result.err : 'parsed')).toBe('MAIL_TOO_COMPLEX');
      expect(limits).toContain(json?.details.limit);
      expect(json?.details.max).toBe(DEFAULT_PARSE_LIMITS[json?.details.limit as ComplexityLimit]);
      expect('err' in result && isMailintakeError(result.err) && result.err.retryable).toBe(false);
    } else {
      if ('err' in result) throw result.err;
      shape.expect(result.mail);
    }
    const tmp = join(dir, 'tmp');
    expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
  });
});

describe('the complexity limits are settings: a lower one applies, -1 turns one off', () => {
  const cases: { limit: ComplexityLimit; low: number; over: () => Iterable<string> }[] = [
    {
      limit: 'maxHeaderBytes',
      low: 4096,
      over: () => [`${HEAD}\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\nbody\r\n`],
    },
    {
      limit: 'maxParts',
      low: 10,
      over: () => multipart(repeat(1_500, () => 'Content-Type: text/plain\r\n\r\nx')),
    },
    { limit: 'maxDepth', low: 5, over: () => nestedMultipart(150) },
  ];
  it.each(cases.map((c) => [c.limit, c] as const))('%s', async (_name, c) => {
    const err = await parse(c.over(), { [c.limit]: c.low }).catch((e: unknown) => e);
    expect(isMailintakeError(err) && err.toJSON()).toMatchObject({
      error: 'MAIL_TOO_COMPLEX',
      details: { limit: c.limit, max: c.low },
    });
    // over the default too (except the header case, which is under it): -1 lets it through
    const mail = await parse(c.over(), { [c.limit]: -1 });
    expect(mail.subject).toBe('hostile');
  });
});
