import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusRoot } from '../../test/kit/corpus.js';
import { prng } from '../../test/kit/prng.js';
import { uuencode } from '../../test/kit/uuencode.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { parseMail } from './parse.js';
import { decodeUuLine, extractUuBlocks, UuDecoder } from './uuencode.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

async function streamDecode(
  input: Buffer,
  cuts: () => number,
): Promise<{ out: Buffer; name: string | null }> {
  const d = new UuDecoder();
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length; ) {
    const n = Math.max(1, cuts());
    chunks.push(input.subarray(at, at + n));
    at += n;
  }
  const out = await buffer(Readable.from(chunks).pipe(d));
  return { out, name: d.name };
}

describe('UuDecoder (a part with a uuencode transfer encoding)', () => {
  it('decodes generated files of every size, in any chunking, LF or CRLF, with a preamble', async () => {
    const rand = prng(77);
    for (let round = 0; round < 60; round++) {
      const data = randomBytes(rand, Math.floor(rand() * 3000));
      const crlf = rand() < 0.5 ? '\r\n' : '\n';
      const input = Buffer.from(
        `some preamble${crlf}${uuencode(data, 'file name.bin', crlf)}trailer${crlf}`,
        'latin1',
      );
      const got = await streamDecode(input, () => Math.floor(rand() * 200));
      expect(sha(got.out)).toBe(sha(data));
      expect(got.name).toBe('file name.bin');
    }
  });

  it('passes a part that never says begin through unchanged', async () => {
    const input = Buffer.from('this is not uuencoded at all\nline two\n');
    expect((await streamDecode(input, () => 5)).out).toEqual(input);
    const big = randomBytes(prng(3), 200_000); // past the preamble it holds back
    expect(sha((await streamDecode(big, () => 10_000)).out)).toBe(sha(big));
  });

  it('truncated lines and a missing end give what is there, never more than the lines claim', async () => {
    const rand = prng(11);
    for (let round = 0; round < 100; round++) {
      const data = randomBytes(rand, 1 + Math.floor(rand() * 500));
      const text = uuencode(data, 'x');
      const cut = Buffer.from(text.slice(0, Math.floor(rand() * text.length)), 'latin1');
      const got = await streamDecode(cut, () => 64);
      if (got.name !== null) {
        expect(got.out.length).toBeLessThanOrEqual(data.length);
        expect(data.subarray(0, got.out.length)).toEqual(got.out.subarray(0, got.out.length));
      }
    }
  });

  it('a line that is no uuencode (too long, bad characters) is skipped', async () => {
    const input = Buffer.from(
      `begin 644 a\n${'x'.repeat(10_000)}\n${uuencode(Buffer.from('hi'), 'a').split('\n')[1]}\nend\n`,
    );
    expect((await streamDecode(input, () => 300)).out.toString()).toBe('hi');
    expect(decodeUuLine('M{{{{')).toBeNull();
  });
});

describe('extractUuBlocks (begin/end blocks inside a text body)', () => {
  it('takes out every block, leaves the prose, and a begin line without data stays text', () => {
    const rand = prng(5);
    const a = randomBytes(rand, 700);
    const b = randomBytes(rand, 33);
    const text = `Hello,\n\nbegin 644 is how my sentence starts\nfirst file:\n${uuencode(a, 'a.gif')}and\n${uuencode(b, 'b.zip')}bye`;
    const got = extractUuBlocks(text, 50);
    expect(got.blocks.map((x) => [x.name, sha(x.data), x.complete])).toEqual([
      ['a.gif', sha(a), true],
      ['b.zip', sha(b), true],
    ]);
    expect(got.text).toBe(
      'Hello,\n\nbegin 644 is how my sentence starts\nfirst file:\n[uuencoded file a.gif: kept as an attachment]\nand\n[uuencoded file b.zip: kept as an attachment]\nbye',
    );
    expect(extractUuBlocks(text, 1).blocks).toHaveLength(1);
  });
});

describe('uuencode with hostile input', () => {
  const sample = (rand: () => number) =>
    `Hi\n${uuencode(randomBytes(rand, 500), 'a.bin')}between\n${uuencode(randomBytes(rand, 90), 'b.gif')}bye\n`;

  /** Flips, cuts, duplicated lines, NULs, lone surrogates and long lines, from a seed. */
  function mutate(rand: () => number, text: string): string {
    const lines = text.split('\n');
    const steps = 1 + Math.floor(rand() * 4);
    for (let s = 0; s < steps; s++) {
      const at = Math.floor(rand() * lines.length);
      const line = lines[at] ?? '';
      const pos = Math.floor(rand() * (line.length + 1));
      switch (Math.floor(rand() * 7)) {
        case 0:
          lines[at] =
            line.slice(0, pos) + String.fromCharCode(Math.floor(rand() * 256)) + line.slice(pos + 1);
          break;
        case 1:
          lines[at] = line.slice(0, pos);
          break;
        case 2:
          lines.splice(at, 0, ...lines.slice(at, at + 1 + Math.floor(rand() * 5)));
          break;
        case 3:
          lines[at] = `${line.slice(0, pos)}\0\ud800${line.slice(pos)}`;
          break;
        case 4:
          lines[at] = `begin 644 ${' '.repeat(Math.floor(rand() * 5000))}x${line}`;
          break;
        case 5:
          lines[at] = line.repeat(1 + Math.floor(rand() * 300));
          break;
        default:
          lines.length = at;
      }
    }
    return lines.join(rand() < 0.5 ? '\n' : '\r\n');
  }

  it('extractUuBlocks and UuDecoder on mutated samples: results only, and never more bytes than came in', async () => {
    const rand = prng(2024);
    for (let round = 0; round < 300; round++) {
      const text = mutate(rand, sample(rand));
      const got = extractUuBlocks(text, 50);
      const decoded = got.blocks.reduce((n, b) => n + b.data.length, 0);
      expect(decoded).toBeLessThanOrEqual(text.length);
      expect(got.blocks.length).toBeLessThanOrEqual(50);
      const input = Buffer.from(text, 'latin1');
      const { out } = await streamDecode(input, () => Math.floor(rand() * 3000));
      expect(out.length).toBeLessThanOrEqual(input.length);
    }
  });

  it('a begin line of 1 MB of blanks before a letter is read in linear time, in a body and in a stream', async () => {
    // `begin 644(?: +(.*?))?\s*$` backtracked quadratically over such a line: minutes for this size
    const line = `begin 644 a${' '.repeat(1 << 20)}x`;
    const file = uuencode(Buffer.from('hello'), 'h.txt');
    const got = extractUuBlocks(`${line}\n${line}\n${file}`, 50);
    expect(got.blocks.map((b) => b.data.toString())).toEqual(['hello']);
    // the stream takes the first begin line for the file's (its name cut at 255 characters)
    const { out, name } = await streamDecode(Buffer.from(`${line}\n${file}`), () => 1 << 21);
    expect([out.toString(), name]).toEqual(['hello', `a${' '.repeat(254)}`]);
  });
});

describe.skipIf(!existsSync(corpusRoot))('parseMail with uuencode (corpus and generated)', () => {
  let dir: string;
  let blobs: FileBlobStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailintake-uu-'));
    blobs = new FileBlobStore(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('james-mime4j uu-zeegee.msg: two GIFs out of the text body, whole (GIF header to trailer)', async () => {
    const raw = readFileSync(
      join(corpusRoot, 'james-mime4j/core/src/test/resources/mimetools-testmsgs/uu-zeegee.msg'),
    );
    const mail = await parseMail(Readable.from([raw]), { blobs });
    expect(mail.attachments.map((x) => [x.filename, x.contentType, x.size])).toEqual([
      ['up.gif', 'image/gif', 110],
      ['zeegee.gif', 'image/gif', 4834],
    ]);
    for (const part of mail.attachments) {
      const gif = await buffer(blobs.get(part.sha256));
      expect(gif.subarray(0, 6).toString('latin1')).toBe('GIF87a');
      expect(gif[gif.length - 1]).toBe(0x3b); // the GIF trailer: nothing lost at the end
    }
    expect(mail.text).not.toMatch(/^M[^\n]{59}$/m);
    expect(mail.parseNotes).toEqual([
      'uuencoded file "up.gif" in the text body kept as an attachment',
      'uuencoded file "zeegee.gif" in the text body kept as an attachment',
    ]);
  });

  it('a part with Content-Transfer-Encoding: x-uuencode is stored decoded, named by its begin line', async () => {
    const data = randomBytes(prng(21), 5000);
    const raw =
      'From: a@example.com\r\nSubject: uu\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n' +
      '--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\n' +
      `Content-Transfer-Encoding: x-uuencode\r\n\r\n${uuencode(data, 'report.pdf', '\r\n')}--b--\r\n`;
    const mail = await parseMail(Readable.from([Buffer.from(raw, 'latin1')]), { blobs });
    expect(mail.attachments.map((x) => [x.filename, x.contentType, x.sha256])).toEqual([
      ['report.pdf', 'application/pdf', sha(data)],
    ]);
    expect(mail.parseNotes).toEqual(['uuencoded part decoded: "report.pdf"']);
  });
});
