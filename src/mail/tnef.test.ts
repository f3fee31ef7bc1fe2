import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusRoot } from '../../test/kit/corpus.js';
import { prng } from '../../test/kit/prng.js';
import { buildTnef, mapiStrings, TNEF_SIGNATURE, tnefAttribute } from '../../test/kit/tnef.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { parseMail } from './parse.js';
import { readTnef, TnefError } from './tnef.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

describe('readTnef', () => {
  it('gives back every file of generated containers byte for byte, with long names and MIME types', () => {
    const rand = prng(4242);
    for (let round = 0; round < 50; round++) {
      const files = Array.from({ length: 1 + Math.floor(rand() * 5) }, (_, i) => ({
        title: `FILE~${i}.DAT`,
        longName: ['Rechnung März.pdf', '請求書.xlsx', 'photo 1.jpg', 'notes.txt'][i % 4] as string,
        mimeType: ['application/pdf', 'application/vnd.ms-excel', 'image/jpeg', 'text/plain'][
          i % 4
        ] as string,
        data: randomBytes(rand, Math.floor(rand() * 5000)),
      }));
      const got = readTnef(buildTnef(files, 'Hello from Outlook'), 200);
      const kept = files.filter((f) => f.data.length > 0);
      expect(got.files.map((f) => [f.name, f.mimeType, sha(f.data)])).toEqual(
        kept.map((f) => [f.longName, f.mimeType, sha(f.data)]),
      );
      expect(got.text).toBe('Hello from Outlook');
    }
  });

  it('falls back to the 8-bit title when there is no long file name', () => {
    const got = readTnef(buildTnef([{ title: 'Größe.txt', data: Buffer.from('x') }]), 10);
    expect(got.files[0]?.name).toBe('Größe.txt');
  });

  it.skipIf(!existsSync(corpusRoot))(
    'reads the real winmail.dat files of the corpus (message properties only)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mailintake-tnef-'));
      try {
        const blobs = new FileBlobStore(dir);
        for (const n of ['01', '02', '05', '07']) {
          const path = join(corpusRoot, `sisimai-set-of-emails/maildir/bsd/lhost-amazonworkmail-${n}.eml`);
          const mail = await parseMail(Readable.from([readFileSync(path)]), { blobs });
          const dat = mail.attachments.find((a) => a.filename === 'winmail.dat');
          expect(dat).toBeDefined();
          const content = readTnef(await buffer(blobs.get(dat!.sha256)), 200);
          expect(content.files).toEqual([]);
          expect(mail.parseNotes).toContain('"winmail.dat" holds no files; kept as it came');
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('hostile containers: lying lengths, huge counts, truncation, random bytes: a TnefError or a result, never more', () => {
    const rand = prng(99);
    const good = buildTnef([
      { longName: 'a.bin', mimeType: 'application/octet-stream', data: randomBytes(rand, 3000) },
      { longName: 'b.bin', data: randomBytes(rand, 100) },
    ]);
    const outcomes = new Set<string>();
    const tryRead = (buf: Buffer) => {
      try {
        const got = readTnef(buf, 50);
        for (const f of got.files) expect(f.data.length).toBeLessThanOrEqual(buf.length);
        outcomes.add('read');
      } catch (err) {
        expect(err).toBeInstanceOf(TnefError);
        outcomes.add((err as TnefError).problem);
      }
    };
    // every truncation
    for (let cut = 0; cut < good.length; cut += 7) tryRead(good.subarray(0, cut));
    // single bytes flipped anywhere (lengths and counts among them)
    for (let i = 0; i < 500; i++) {
      const copy = Buffer.from(good);
      const at = Math.floor(rand() * copy.length);
      copy[at] = Math.floor(rand() * 256);
      tryRead(copy);
    }
    // a length field that claims 4 GB
    const lying = Buffer.from(good);
    lying.writeUInt32LE(0xffffffff, 6 + 5);
    tryRead(lying);
    // a property list claiming 4 billion properties, and a value claiming 4 GB
    tryRead(
      Buffer.concat([
        TNEF_SIGNATURE,
        tnefAttribute(2, 0x9002, 6, Buffer.alloc(14)),
        tnefAttribute(
          2,
          0x9005,
          6,
          Buffer.concat([
            Buffer.from([0xff, 0xff, 0xff, 0xff]),
            mapiStrings([[0x3707, 0x1f, 'x']]).subarray(4),
          ]),
        ),
      ]),
    );
    // more files than allowed
    tryRead(buildTnef(Array.from({ length: 60 }, () => ({ data: Buffer.from('x') }))));
    // random bytes behind a valid signature
    for (let i = 0; i < 200; i++)
      tryRead(Buffer.concat([TNEF_SIGNATURE, randomBytes(rand, Math.floor(rand() * 400))]));
    expect(outcomes).toContain('TNEF_TRUNCATED');
    expect(outcomes).toContain('TNEF_TOO_MANY_FILES');
    expect(outcomes).toContain('read');
  });

  it('every 32-bit field set to 0, 2^31-1, 2^31 and 2^32-1, and attributes duplicated: a TnefError or a result', () => {
    const good = buildTnef(
      [
        { title: 'A.BIN', longName: 'a.bin', mimeType: 'application/pdf', data: randomBytes(prng(7), 300) },
        { title: 'B.BIN', data: randomBytes(prng(8), 40) },
      ],
      'body',
    );
    let read = 0;
    const tryRead = (buf: Buffer) => {
      try {
        const got = readTnef(buf, 50);
        for (const f of got.files) expect(f.data.length).toBeLessThanOrEqual(buf.length);
        read++;
      } catch (err) {
        expect(err).toBeInstanceOf(TnefError);
      }
    };
    for (let at = 6; at + 4 <= good.length; at++) {
      for (const v of [0, 0x7fffffff, 0x80000000, 0xffffffff]) {
        const copy = Buffer.from(good);
        copy.writeUInt32LE(v, at);
        tryRead(copy);
      }
    }
    // the attributes repeated many times over: files beyond the limit are refused, not collected
    tryRead(Buffer.concat([good, ...Array.from({ length: 40 }, () => good.subarray(6))]));
    expect(read).toBeGreaterThan(0);
  });

  it('a 1 MB Unicode file name of NULs with one letter after them reads in linear time', () => {
    // `/\0+$/` on this string backtracks over the whole run from every position: minutes, not milliseconds
    const nuls = Buffer.concat([Buffer.alloc(1 << 20), Buffer.from('x\0', 'utf16le')]);
    const props = Buffer.alloc(4 + 12 + nuls.length + 4);
    props.writeUInt32LE(1, 0);
    props.writeUInt16LE(0x1f, 4);
    props.writeUInt16LE(0x3707, 6);
    props.writeUInt32LE(1, 8);
    props.writeUInt32LE(nuls.length, 12);
    nuls.copy(props, 16);
    const dat = Buffer.concat([
      TNEF_SIGNATURE,
      tnefAttribute(2, 0x9002, 6, Buffer.alloc(14)),
      tnefAttribute(2, 0x800f, 6, Buffer.from('data')),
      tnefAttribute(2, 0x9005, 6, props.subarray(0, 16 + nuls.length + ((4 - (nuls.length % 4)) % 4))),
    ]);
    const got = readTnef(dat, 10);
    expect(got.files).toHaveLength(1);
    expect(got.files[0]?.name).toBe(`${'\0'.repeat(1 << 19)}x`);
  });
});

describe('parseMail with a winmail.dat', () => {
  let dir: string;
  let blobs: FileBlobStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailintake-tnef-parse-'));
    blobs = new FileBlobStore(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const mailWith = (dat: Buffer, text = 'See attached.') =>
    Buffer.from(
      'From: a@example.com\r\nSubject: files\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n' +
        (text ? `--b\r\nContent-Type: text/plain\r\n\r\n${text}\r\n` : '') +
        '--b\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\nContent-Transfer-Encoding: base64\r\n' +
        'Content-Disposition: attachment; filename="winmail.dat"\r\n\r\n' +
        `${dat.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n--b--\r\n`,
    );

  it('adds the files inside after the winmail.dat, stored byte for byte, and says so', async () => {
    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(prng(5), 2000)]);
    const txt = Buffer.from('plain notes\n');
    const dat = buildTnef([
      { title: 'RECHNU~1.PDF', longName: 'Rechnung März.pdf', mimeType: 'application/pdf', data: pdf },
      { title: 'notes.txt', data: txt },
    ]);
    const mail = await parseMail(Readable.from([mailWith(dat)]), { blobs });
    expect(mail.attachments.map((a) => [a.filename, a.contentType, a.sha256])).toEqual([
      ['winmail.dat', 'application/ms-tnef', sha(dat)],
      ['Rechnung März.pdf', 'application/pdf', sha(pdf)],
      ['notes.txt', 'text/plain', sha(txt)],
    ]);
    expect(await buffer(blobs.get(sha(pdf)))).toEqual(pdf);
    expect(mail.parseNotes).toContain('"winmail.dat" unpacked: 2 file(s); the winmail.dat is kept as well');
  });

  it('takes the body from the winmail.dat when the mail has none', async () => {
    const dat = buildTnef([{ longName: 'a.txt', data: Buffer.from('a') }], 'The body lives in here');
    const mail = await parseMail(Readable.from([mailWith(dat, '')]), { blobs });
    expect(mail.text).toBe('The body lives in here');
  });

  it('keeps a broken winmail.dat as it is, with a coded reason, and the mail parses', async () => {
    const dat = buildTnef([{ longName: 'a.bin', data: randomBytes(prng(8), 500) }]);
    const broken = dat.subarray(0, dat.length - 100);
    const mail = await parseMail(Readable.from([mailWith(broken)]), { blobs });
    expect(mail.attachments.map((a) => a.filename)).toEqual(['winmail.dat']);
    expect(mail.parseNotes?.join('\n')).toMatch(
      /"winmail\.dat" not unpacked \(TNEF_TRUNCATED: .*\); kept as it came/,
    );
    const notTnef = await parseMail(Readable.from([mailWith(Buffer.from('just some bytes'))]), { blobs });
    expect(notTnef.parseNotes?.join('\n')).toMatch(/not unpacked \(TNEF_NOT_TNEF/);
  });
});
