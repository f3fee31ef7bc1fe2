import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Decoder, decode } from 'libqp';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { prng } from '../../test/kit/prng.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { parseMail } from './parse.js';
import { StreamingQpDecoder } from './qp-stream.js';

/** Everything the decoder pushes, with the inputs cut into the given pieces. */
async function streamed(input: Buffer, cuts: number[]): Promise<Buffer> {
  const d = new StreamingQpDecoder();
  const out: Buffer[] = [];
  d.on('data', (b: Buffer) => out.push(b));
  const ended = new Promise((resolve, reject) => d.on('end', resolve).on('error', reject));
  let at = 0;
  for (const size of cuts) {
    if (at >= input.length) break;
    d.write(input.subarray(at, at + size));
    at += size;
  }
  if (at < input.length) d.write(input.subarray(at));
  d.end();
  await ended;
  return Buffer.concat(out);
}

/** Quoted-printable as mail really carries it, and as attackers shape it: every element at random. */
function generatedQp(rand: () => number, length: number): Buffer {
  const pieces = [
    () => 'plain text ',
    () => '=3D',
    () => '=C3=A9',
    () => '=\r\n', // soft line break
    () => '=\n',
    () => '\r\n',
    () => '\n',
    () => '   \t \r\n', // trailing white space: stripped
    () => ' \t', // inner white space: kept
    () => '=', // a lone '=' (broken escape)
    () => '=4', // half an escape
    () => '=zz', // not hex
    () => '\xe9\xff', // raw 8-bit bytes
    () => 'x'.repeat(Math.floor(rand() * 200_000)), // a line longer than the carry
    () => `${' '.repeat(Math.floor(rand() * 30_000))}x`, // a long run of white space (below MAX_CARRY: see below)
  ];
  let s = '';
  while (s.length < length) s += pieces[Math.floor(rand() * pieces.length)]!();
  return Buffer.from(s, 'binary');
}

describe('quoted-printable decoding that streams', () => {
  it('decodes exactly as libqp decodes the whole part, however the input is cut (generated inputs and cuts)', async () => {
    const rand = prng(20261207);
    for (let n = 0; n < 60; n++) {
      const input = generatedQp(rand, 1000 + Math.floor(rand() * 400_000));
      const expected = decode(input);
      const cuts = Array.from({ length: 200 }, () =>
        rand() < 0.3 ? 1 + Math.floor(rand() * 3) : 1 + Math.floor(rand() * 70_000),
      );
      const got = await streamed(input, cuts);
      expect(got.equals(expected), `case ${n} (${input.length} bytes)`).toBe(true);
    }
  });

  it('keeps a run of white space longer than 64 KB as it is, the one place it differs from the library', async () => {
    // libqp strips white space at the end of a line; to know a 100 KB run is at the end, the whole run would
    // have to be held. Kept instead (no byte of the mail is lost), so memory stays bounded whatever a line holds.
    const input = Buffer.from(`a${' '.repeat(100_000)}\r\nb`, 'binary');
    const got = await streamed(input, Array(50).fill(4096));
    expect(decode(input).toString('binary')).toBe('a\r\nb');
    expect(got.toString('binary')).toBe(`a${' '.repeat(100_000)}\r\nb`);
  });

  it('gives out what it decoded as the lines come, where the library waits for the end of the part', async () => {
    const lines = Buffer.from(`${'a'.repeat(70)}=3D=\r\n`.repeat(10_000), 'binary');
    const ours = new StreamingQpDecoder();
    let oursOut = 0;
    ours.on('data', (b: Buffer) => {
      oursOut += b.length;
    });
    ours.write(lines);
    await new Promise((r) => setImmediate(r));
    expect(oursOut).toBe(71 * 10_000);
    // why it exists: libqp's Decoder holds every byte of the part until end() (a 64 MB attachment in memory)
    const library = new Decoder();
    let libraryOut = 0;
    library.on('data', (b: Buffer) => {
      libraryOut += b.length;
    });
    library.write(lines);
    await new Promise((r) => setImmediate(r));
    expect(libraryOut).toBe(0);
  });

  const dir = mkdtempSync(join(tmpdir(), 'mailintake-qp-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is what the parser decodes quoted-printable attachments and bodies with: same bytes, the body still cut', async () => {
    const rand = prng(7);
    const attachment = generatedQp(rand, 600_000);
    const body = Buffer.from(`${'=\r\n'.repeat(300_000)}the end=3D\r\n`, 'binary');
    const mail = Buffer.concat([
      Buffer.from(
        'From: a@example.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n' +
          '--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
      ),
      body,
      Buffer.from(
        '\r\n--XX\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Disposition: attachment; filename=a.bin\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
      ),
      attachment,
      Buffer.from('\r\n--XX--\r\n'),
    ]);
    const fed = vi.spyOn(StreamingQpDecoder.prototype, '_transform');
    const m = await parseMail(Readable.from([mail]), { blobs: new FileBlobStore(dir) });
    // both parts went through the streaming decoder (the library's holds a whole part in memory)
    expect(fed.mock.calls.length).toBeGreaterThanOrEqual(2);
    fed.mockRestore();
    expect(m.text?.trim()).toBe('the end=');
    const [a] = m.attachments;
    // mailsplit hands the part's body over without the line break before the boundary
    expect(a?.sha256).toBe(
      createHash('sha256')
        .update(decode(attachment.subarray(0, attachment.length)))
        .digest('hex'),
    );
  });
});
