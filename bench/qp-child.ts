/**
 * Measurement (h), in its own Node process so that only this parse counts: one generated quoted-printable mail
 * through the real parser (mail/parse.ts) into a blob store in a temp directory, streamed from a generator
 * (never whole in memory). Prints one JSON line: peak RSS and seconds. Shape by BENCH_QP_SHAPE:
 * `attachment` (BENCH_QP_MB of quoted-printable attachment, 76-column lines with escapes) or `soft-breaks`
 * (a text body of BENCH_QP_MB of `=\r\n` only, which decodes to nothing).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseMail } from '../src/mail/parse.js';
import { FileBlobStore } from '../src/store/blobs/blob-store.js';

const shape = process.env.BENCH_QP_SHAPE === 'soft-breaks' ? 'soft-breaks' : 'attachment';
const bytes = Number(process.env.BENCH_QP_MB ?? '64') * 1024 * 1024;

function* mail(): Generator<Buffer> {
  const head =
    'From: a@example.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n';
  yield Buffer.from(head);
  const line =
    shape === 'attachment'
      ? Buffer.from(`${'a'.repeat(70)}=3D=\r\n`.repeat(1000))
      : Buffer.from('=\r\n'.repeat(10_000));
  yield Buffer.from(
    shape === 'attachment'
      ? '--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Disposition: attachment; filename=a.bin\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
      : '--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n',
  );
  for (let sent = 0; sent < bytes; sent += line.length) yield line;
  yield Buffer.from('\r\n--XX--\r\n');
}

const dir = mkdtempSync(join(tmpdir(), 'mailintake-bench-qp-'));
try {
  const started = process.hrtime.bigint();
  await parseMail(Readable.from(mail()), { blobs: new FileBlobStore(dir) });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    JSON.stringify({
      shape,
      mib: bytes / 1024 / 1024,
      peakMaxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
      seconds: Math.round(seconds * 100) / 100,
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
