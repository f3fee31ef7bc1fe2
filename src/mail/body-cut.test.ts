import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { MessageText } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { CuttingMailParser } from './body-cut.js';
import { CUT_MARKER_TEXT, parseMail } from './parse.js';

let dir: string;
let blobs: FileBlobStore;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailintake-body-cut-'));
  blobs = new FileBlobStore(dir);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const LIMIT = 8192;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

// ---------------------------------------------------------------------------------------------------------
// Generated bodies: every charset in every transfer encoding, text and HTML, at sizes around and far beyond
// the limit. Each is a list of lines in the charset's bytes, so the expected text is known exactly.
// ---------------------------------------------------------------------------------------------------------

type Charset = 'utf-8' | 'iso-8859-1' | 'shift_jis';
/** base64/75: lines of 75 characters, so quanta run across line (and chunk) ends. */
type Cte = '8bit' | 'quoted-printable' | 'base64' | 'base64/75';

/** 日本語テキスト in Shift_JIS (checked against TextDecoder('shift_jis') below). */
const SJIS_WORD = Buffer.from([
  0x93, 0xfa, 0x96, 0x7b, 0x8c, 0xea, 0x83, 0x65, 0x83, 0x4c, 0x83, 0x58, 0x83, 0x67,
]);

function lineBytes(charset: Charset, n: number, html: boolean): Buffer {
  const open = html ? '<p>' : '';
  const close = html ? '</p>' : '';
  const prefix = Buffer.from(`${open}${n} `, 'ascii');
  let words: Buffer;
  if (charset === 'utf-8') words = Buffer.from('Grüße aus Köln, 漢字 € café = ok '.repeat(2), 'utf8');
  else if (charset === 'iso-8859-1')
    words = Buffer.from('Grüße aus Köln, ½ café = déjà vu '.repeat(2), 'latin1');
  else words = Buffer.concat([SJIS_WORD, Buffer.from(' = '), SJIS_WORD, Buffer.from(' abc '), SJIS_WORD]);
  return Buffer.concat([prefix, words, Buffer.from(`${close}\r\n`, 'ascii')]);
}

function decode(charset: Charset, bytes: Buffer): string {
  return new TextDecoder(charset === 'iso-8859-1' ? 'latin1' : charset).decode(bytes);
}

/** Quoted-printable (RFC 2045 §6.7) with soft breaks at 76 columns, never inside an escape. */
function qp(bytes: Buffer): string {
  let out = '';
  let line = '';
  for (const b of bytes) {
    if (b === 0x0a) {
      // RFC 2045: whitespace at the end of a line is encoded (decoders drop it otherwise)
      line = line.replace(/ (\r?)$/, '=20$1');
      out += `${line}\n`;
      line = '';
      continue;
    }
    const tok =
      b === 0x0d
        ? '\r'
        : b < 0x20 || b > 0x7e || b === 0x3d
          ? `=${b.toString(16).toUpperCase().padStart(2, '0')}`
          : String.fromCharCode(b);
    if (tok !== '\r' && line.length + tok.length > 75) {
      out += `${line}=\r\n`;
      line = '';
    }
    line += tok;
  }
  return out + line;
}

function encodeBody(bytes: Buffer, cte: Cte): Buffer {
  if (cte === '8bit') return bytes;
  if (cte === 'quoted-printable') return Buffer.from(qp(bytes), 'ascii');
  const b64 = bytes.toString('base64');
  const wrap = cte === 'base64/75' ? /.{1,75}/g : /.{1,76}/g;
  return Buffer.from(`${b64.replace(wrap, '$&\r\n')}`, 'ascii');
}

function bodyOf(charset: Charset, bytes: number, html: boolean): Buffer {
  const lines: Buffer[] = [];
  let size = 0;
  for (let n = 0; size < bytes; n++) {
    const l = lineBytes(charset, n, html);
    lines.push(l);
    size += l.length;
  }
  return Buffer.concat(lines);
}

function part(type: 'text/plain' | 'text/html', charset: Charset, cte: Cte, raw: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(
      `Content-Type: ${type}; charset=${charset}\r\nContent-Transfer-Encoding: ${cte.replace('/75', '')}\r\n\r\n`,
    ),
    encodeBody(raw, cte),
  ]);
}

function mail(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from('From: a@example.test\r\nSubject: long\r\nMIME-Version: 1.0\r\n'), body]);
}

/** mailparser's view of a body: CRLF is LF. */
const asParsed = (s: string) => s.replace(/\r\n/g, '\n');

function expectCutPrefix(got: string | null, whole: string, marker: string) {
  expect(got).not.toBeNull();
  expect(got!.endsWith(marker)).toBe(true);
  const kept = got!.slice(0, got!.length - marker.length);
  // A prefix of the real body: no garbage from a split character, no invented text
  expect(kept.includes('\uFFFD')).toBe(false);
  expect(whole.startsWith(kept)).toBe(true);
  expect(Buffer.byteLength(kept)).toBeLessThanOrEqual(LIMIT);
  // Not cut much shorter than it had to be: the budget counts bytes before charset conversion, so Shift_JIS
  // (2 bytes, 3 in UTF-8) and Latin-1 (1 byte, 2 in UTF-8) keep at least half; a line or so may go to the
  // line-end back-off.
  expect(Buffer.byteLength(kept)).toBeGreaterThan(LIMIT / 2 - 200);
  return kept;
}

const TEXT_MARKER = `\n\n${CUT_MARKER_TEXT}\n`;
const HTML_MARKER = `\n<p>${CUT_MARKER_TEXT}</p>\n`;

describe('bodies are cut while reading (generated: charset × transfer encoding × kind × size)', () => {
  it('the Shift_JIS sample is what the tests think it is', () => {
    expect(new TextDecoder('shift_jis').decode(SJIS_WORD)).toBe('日本語テキスト');
  });

  const charsets: Charset[] = ['utf-8', 'iso-8859-1', 'shift_jis'];
  const ctes: Cte[] = ['8bit', 'quoted-printable', 'base64', 'base64/75'];
  const sizes = [LIMIT / 4, LIMIT - 100, LIMIT * 3 + 17, 400_000];
  for (const charset of charsets) {
    for (const cte of ctes) {
      for (const html of [false, true]) {
        it(`${html ? 'text/html' : 'text/plain'} ${charset} ${cte}, ${sizes.join(' / ')} bytes`, async () => {
          for (const size of sizes) {
            const raw = bodyOf(charset, size, html);
            const whole = asParsed(decode(charset, raw));
            const m = await parseMail(
              Readable.from([mail(part(html ? 'text/html' : 'text/plain', charset, cte, raw))]),
              { blobs, limits: { maxTextBytes: LIMIT } },
            );
            const got = html ? m.html : m.text;
            if (Buffer.byteLength(whole) <= LIMIT) {
              expect(got?.replace(/\n+$/, '')).toBe(whole.replace(/\n+$/, ''));
              expect(m.truncated).toBeUndefined();
            } else {
              expectCutPrefix(got, whole, html ? HTML_MARKER : TEXT_MARKER);
              expect(m.truncated).toBe(true);
              expect(m.truncatedReason).toMatch(new RegExp(`${html ? 'HTML' : 'text'} kept \\d+ bytes`));
              if (raw.length > LIMIT * 2) expect(m.truncatedReason).toMatch(/more bytes not read/);
            }
          }
        });
      }
    }
  }

  it('one line longer than the limit (no line end to cut at) is cut without a broken character', async () => {
    for (const charset of charsets) {
      for (const cte of ctes) {
        const raw = Buffer.concat(
          Array.from({ length: 2000 }, (_, i) => lineBytes(charset, i, false).subarray(0, -2)),
        );
        const whole = decode(charset, raw);
        const m = await parseMail(Readable.from([mail(part('text/plain', charset, cte, raw))]), {
          blobs,
          limits: { maxTextBytes: LIMIT },
        });
        expectCutPrefix(m.text, whole, TEXT_MARKER);
      }
    }
  });
});

describe('CuttingMailParser', () => {
  it('never hands mailparser more than the budget of a huge body (fails if the hooks are not called)', async () => {
    for (const cte of ['8bit', 'quoted-printable', 'base64'] as const) {
      const raw = bodyOf('utf-8', 3_000_000, false);
      const parser = new CuttingMailParser({ skipTextToHtml: true }, LIMIT);
      let text: MessageText | null = null;
      await pipeline(
        Readable.from([mail(part('text/plain', 'utf-8', cte, raw))]),
        parser as unknown as Transform,
        async (src) => {
          for await (const item of src as AsyncIterable<MessageText>) if (item.type === 'text') text = item;
        },
      );
      const held = Buffer.byteLength((text as MessageText | null)?.text ?? '');
      expect(held).toBeGreaterThan(LIMIT / 2);
      expect(held).toBeLessThanOrEqual(LIMIT);
      expect(parser.dropped.text).toBeGreaterThan(raw.length - LIMIT - 1000);
      expect(parser.dropped.html).toBe(0);
    }
  });

  it('-1 (unlimited) keeps a body of any size whole, unmarked', async () => {
    const raw = bodyOf('utf-8', 400_000, false);
    const m = await parseMail(Readable.from([mail(part('text/plain', 'utf-8', 'quoted-printable', raw))]), {
      blobs,
      limits: { maxTextBytes: -1 },
    });
    expect(m.text).toBe(asParsed(raw.toString('utf8')));
    expect(m.truncated).toBeUndefined();
  });

  it('budget is per kind, across parts: a second text part after the budget is spent gets nothing', async () => {
    const big = bodyOf('utf-8', LIMIT * 4, false);
    const second = Buffer.from('SECOND PART\r\n');
    const body = Buffer.concat([
      Buffer.from('Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'),
      part('text/plain', 'utf-8', 'quoted-printable', big),
      Buffer.from('\r\n--b\r\n'),
      part('text/plain', 'utf-8', '8bit', second),
      Buffer.from('\r\n--b--\r\n'),
    ]);
    const m = await parseMail(Readable.from([mail(body)]), { blobs, limits: { maxTextBytes: LIMIT } });
    expect(m.text).not.toContain('SECOND PART');
    expectCutPrefix(m.text, asParsed(big.toString('utf8')), TEXT_MARKER);
  });
});

describe('huge bodies in real mail structures', () => {
  /** multipart/mixed [ multipart/alternative [ text, multipart/related [ html, image ] ], attachment ] */
  function nested(text: Buffer, html: Buffer, image: Buffer, attachment: Buffer): Buffer {
    return Buffer.concat([
      Buffer.from('Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'),
      Buffer.from('Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n'),
      part('text/plain', 'utf-8', 'quoted-printable', text),
      Buffer.from('\r\n--a\r\nContent-Type: multipart/related; boundary="r"\r\n\r\n--r\r\n'),
      part('text/html', 'utf-8', 'base64', html),
      Buffer.from(
        '\r\n--r\r\nContent-Type: image/png\r\nContent-ID: <img1@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n',
      ),
      encodeBody(image, 'base64'),
      Buffer.from('--r--\r\n\r\n--a--\r\n\r\n--m\r\n'),
      Buffer.from(
        'Content-Type: application/pdf; name="report.pdf"\r\nContent-Disposition: attachment; filename="report.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
      ),
      encodeBody(attachment, 'base64'),
      Buffer.from('--m--\r\n'),
    ]);
  }

  for (const size of [LIMIT * 2, 2_000_000]) {
    it(`nested multipart/alternative with ${size}-byte text and HTML parts: both cut and marked, attachments after them intact`, async () => {
      const text = bodyOf('utf-8', size, false);
      const html = bodyOf('utf-8', size, true);
      const image = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31) % 256));
      const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(300_000, 7)]);
      const m = await parseMail(Readable.from([mail(nested(text, html, image, pdf))]), {
        blobs,
        limits: { maxTextBytes: LIMIT },
      });
      expectCutPrefix(m.text, asParsed(text.toString('utf8')), TEXT_MARKER);
      expectCutPrefix(m.html, asParsed(html.toString('utf8')), HTML_MARKER);
      expect(m.truncatedReason).toMatch(/text kept \d+ bytes.*HTML kept \d+ bytes/);
      expect(m.attachments.map((a) => [a.contentType, a.size, a.sha256])).toEqual([
        ['image/png', image.length, sha(image)],
        ['application/pdf', pdf.length, sha(pdf)],
      ]);
      expect(m.attachments[1]!.filename).toBe('report.pdf');
    });
  }

  it('a body within the limit is kept whole and unmarked, with its attachment', async () => {
    const text = bodyOf('utf-8', LIMIT / 2, false);
    const html = bodyOf('utf-8', LIMIT / 2, true);
    const image = Buffer.alloc(1000, 1);
    const pdf = Buffer.from('%PDF-1.4\nsmall');
    const m = await parseMail(Readable.from([mail(nested(text, html, image, pdf))]), {
      blobs,
      limits: { maxTextBytes: LIMIT },
    });
    // the part's own last line end stays (the one before the boundary belongs to the boundary)
    expect(m.text).toBe(asParsed(text.toString('utf8')));
    expect(m.html).toBe(asParsed(html.toString('utf8')));
    expect(m.truncated).toBeUndefined();
    expect(m.attachments).toHaveLength(2);
  });
});
