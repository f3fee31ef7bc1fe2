import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusMails, corpusRoot } from '../../test/kit/corpus.js';
import { isMailintakeError } from '../kernel/errors.js';
import type { BlobStore } from '../store/blobs/blob-store.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import {
  BareCrLineEndings,
  CUT_MARKER_TEXT,
  extractMessageIds,
  parseMail,
  resolveParseLimits,
} from './parse.js';

const corpus = corpusRoot;
const haveCorpus = existsSync(corpus);
if (!haveCorpus) {
  console.warn(
    `[parse.test] SKIPPING corpus tests: no corpus at ${corpus} (set MAILINTAKE_CORPUS to its folder)`,
  );
}

let dir: string;
let blobs: FileBlobStore;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailintake-parse-'));
  blobs = new FileBlobStore(dir);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const parseFile = (rel: string) => parseMail(createReadStream(join(corpus, rel)), { blobs });
const parseText = (raw: string, limits?: Parameters<typeof parseMail>[1]['limits']) =>
  parseMail(Readable.from([Buffer.from(raw)]), { blobs, limits });
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe.skipIf(!haveCorpus)('parseMail on real mails (corpus)', () => {
  it('ISO-2022-JP subject and body (a Japanese DSN); a NUL byte in the subject is removed', async () => {
    const mail = await parseFile('sisimai-set-of-emails/maildir/err/make-test-31.eml');
    // The encoded word ends in a 0 byte (…KQA?=): PostgreSQL would refuse it in a text column.
    expect(mail.subject).toBe('メール送信エラー (Error message)');
    expect(mail.text).toContain('宛先がみつかりませんでした。');
    expect(mail.messageId).toBe('20090428025103.QPTX17287.mapsmtag2.mopera.net@mapsmtag2');
    expect(mail.from).toEqual({ address: 'postmaster@mopera.net', name: 'Mail Administrator' });
    expect(mail.date).toBe('2009-04-28T02:51:03.000Z');
    expect(mail.attachments.map((a) => [a.filename, a.contentType, a.disposition])).toEqual([
      ['attachment-1.eml', 'message/rfc822', 'attachment'],
    ]);
  });

  it('encoded-word subject (ISO-8859-1), ISO-8859-1 body, and KOI8-R / Shift_JIS / Big5 / EUC-KR file names', async () => {
    const mail = await parseFile('otobo/scripts/test/sample/PostMaster/PostMaster-Test12.box');
    expect(mail.subject).toBe('test äöüß');
    expect(mail.text).toBe('test äöüß\n -Skywalker');
    expect(mail.cc).toHaveLength(2);
    expect(mail.attachments.map((a) => a.filename)).toEqual([
      'attachment-äöüß-utf8.txt',
      'attachment-äöüß-iso.txt',
      'Обяснительная.jpg',
      'Сообщение.jpg',
      '報告書①..txt',
      '金田　美羽',
      '國科會50科學之旅活動計畫徵求書(r_final).doc',
      '2차 보도자료.hwp',
    ]);
    expect(mail.attachments[2]?.contentType).toBe('image/pjpeg');
  });

  it('KOI8-R subject and file name; a root part that is itself the attachment', async () => {
    const mail = await parseFile('otobo/scripts/test/sample/PostMaster/PostMaster-Test13.box');
    expect(mail.subject).toBe('Заявка на генерацию 402 240108 (3)');
    expect(mail.from?.address).toBe('makarenkoaa@example.com');
    expect(mail.text).toBeNull();
    expect(mail.attachments).toHaveLength(1);
    expect(mail.attachments[0]).toMatchObject({
      filename: 'Заявка на генерацию 402 240108 (3).doc',
      contentType: 'application/msword',
      disposition: 'attachment',
    });
  });

  it('RFC 2231 file names (UTF-8 and Latin-1)', async () => {
    const utf8 = await parseFile(
      'james-mime4j/core/src/test/resources/mimetools-testmsgs/attachment-filename-encoding-UTF8.msg',
    );
    expect(utf8.attachments.map((a) => a.filename)).toEqual(['attachment.äöü']);
    const latin1 = await parseFile(
      'james-mime4j/core/src/test/resources/mimetools-testmsgs/attachment-filename-encoding-Latin1.msg',
    );
    expect(latin1.attachments.map((a) => a.filename)).toEqual(['attachment.äöü']);
    expect(utf8.text).toBe('Attachment Test\n');
  });

  it('nested message/rfc822 is kept as an .eml attachment whose blob parses again', async () => {
    const mail = await parseFile('otobo/scripts/test/sample/EmailParser/NestedMessage-Test1.box');
    expect(mail.subject).toBe('Test ticket w/attachment for bug 1970');
    expect(mail.from).toEqual({ address: 'michiel.beijen@otobo.org', name: 'Michiel Beijen' });
    expect(mail.html).toContain('<html');
    const [inner] = mail.attachments;
    expect(inner).toMatchObject({ filename: 'attachment-1.eml', contentType: 'message/rfc822' });
    const innerMail = await parseMail(blobs.get(inner!.sha256), { blobs });
    expect(innerMail.size).toBe(inner!.size);
    expect(innerMail.subject.length).toBeGreaterThan(0);
  });

  it('inline image with Content-ID inside multipart/related', async () => {
    const mail = await parseFile('otobo/scripts/test/sample/PostMaster/InlineImage.box');
    expect(mail.attachments).toEqual([
      {
        filename: 'test.png',
        contentType: 'image/png',
        size: 84,
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        contentId: 'image1@test.com',
        disposition: 'inline',
      },
    ]);
    expect(mail.html).toContain('cid:image1@test.com');
    const png = await buffer(blobs.get(mail.attachments[0]!.sha256));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(sha(png)).toBe(mail.attachments[0]!.sha256);
  });

  it('DSN bounce (multipart/report): delivery-status in the text, returned headers as an attachment', async () => {
    const mail = await parseFile('sisimai-set-of-emails/maildir/bsd/lhost-sendmail-18.eml');
    expect(mail.headers['content-type']).toMatch(/^multipart\/report; report-type=delivery-status;/);
    expect(mail.headers['auto-submitted']).toBe('auto-generated (postmaster-notification)');
    expect(mail.headers['return-path']).toBe('<MAILER-DAEMON>');
    expect(mail.text).toContain('The following addresses had permanent fatal errors');
    expect(mail.text).toContain('Status: 5.');
    expect(mail.attachments.map((a) => [a.filename, a.contentType])).toEqual([
      ['attachment-1.txt', 'text/rfc822-headers'],
    ]);
  });

  it('RFC 3834 auto-replies keep the headers the classifier needs', async () => {
    const a = await parseFile('sisimai-set-of-emails/maildir/bsd/rfc3834-01.eml');
    expect(a.headers).toMatchObject({
      'auto-submitted': 'auto-replied',
      'return-path': '<nyaan@neko.example.org>',
    });
    expect(a.subject).toBe('Away until May 5');
    const b = await parseFile('sisimai-set-of-emails/maildir/bsd/rfc3834-06.eml');
    expect(b.headers).toMatchObject({
      'auto-submitted': 'auto-replied',
      'x-auto-response-suppress': 'OOF, AutoReply, DR, NDR, RN, NRN',
      precedence: 'bulk',
      'return-path': '<>',
    });
  });

  it('no Message-ID gives null; a UTF-7 encoded-word subject is decoded', async () => {
    const mail = await parseFile('otobo/scripts/test/sample/EmailParser/UTF-7.box');
    expect(mail.messageId).toBeNull();
    expect(mail.subject).toBe(
      'Microsoft Forefront Protection for SharePoint successfully updated the Command scan engine on server XXX',
    );
    expect(mail.text).toBe('Microsoft Forefront Protection performed a successful scan engine update.\n');
  });

  it('CR-only line endings (old Mac) parse like the LF original', async () => {
    const mac = await parseFile('sisimai-set-of-emails/maildir/mac/rfc3834-01.eml');
    const lf = await parseFile('sisimai-set-of-emails/maildir/bsd/rfc3834-01.eml');
    expect(mac.contentHash).not.toBe(lf.contentHash);
    const { contentHash: _a, size: _b, ...macFields } = mac;
    const { contentHash: _c, size: _d, ...lfFields } = lf;
    expect(macFields).toEqual(lfFields);
    expect(mac.from?.address).toBe('kijitora@example.net');
  });

  it('broken and missing boundaries parse without throwing', async () => {
    const missing = await parseFile('james-mime4j/core/src/test/resources/testmsgs/missing-boundary.msg');
    expect(missing.headers['content-type']).toBe('multipart/alternative; boundary="inner-boundary"');
    // mailparser drops a body that never reaches its boundary (it is preamble): nothing to show, nothing thrown.
    expect(missing.text).toBeNull();
    const inner = await parseFile('james-mime4j/core/src/test/resources/testmsgs/missing-inner-boundary.msg');
    expect(inner.size).toBeGreaterThan(0);
    const bad = await parseFile('james-mime4j/core/src/test/resources/mimetools-testmsgs/badbound.msg');
    expect(bad.contentHash).toBe(
      sha(readFileSync(join(corpus, 'james-mime4j/core/src/test/resources/mimetools-testmsgs/badbound.msg'))),
    );
  });

  it('every mail in the corpus parses or fails with a coded error, never hangs', async () => {
    const counts = new Map<string, Map<string, number>>();
    const failures: string[] = [];
    const perMailTimeoutMs = 20_000;
    for (const { folder, name, raw } of corpusMails(corpus)) {
      let outcome: string;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          parseMail(Readable.from([raw]), { blobs }),
          new Promise((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`HANG: no answer within ${perMailTimeoutMs} ms`)),
              perMailTimeoutMs,
            );
          }),
        ]);
        outcome = 'parsed';
      } catch (err) {
        if (isMailintakeError(err)) outcome = err.code;
        else {
          outcome = 'UNCODED';
          failures.push(`${name}: ${String(err)}`);
        }
      } finally {
        clearTimeout(timer);
      }
      const byOutcome = counts.get(folder) ?? new Map<string, number>();
      byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
      counts.set(folder, byOutcome);
    }
    const lines = [...counts].map(
      ([folder, byOutcome]) =>
        `  ${folder.padEnd(24)} ${[...byOutcome].map(([outcome, n]) => `${outcome}: ${n}`).join(', ')}`,
    );
    console.log(`[parse.test] corpus results per folder (${corpus}):\n${lines.join('\n')}`);
    expect(failures).toEqual([]);
    expect([...counts.keys()].sort()).toEqual([
      'james-mime4j',
      'mailparser',
      'otobo',
      'postal-mime',
      'sisimai-set-of-emails',
    ]);
  }, 300_000);
});

describe('parseMail (synthetic)', () => {
  it('keeps no NUL in any header the classifier reads (PostgreSQL refuses NUL in text, wherever a value lands)', async () => {
    const names = [
      'X-Failed-Recipients',
      'Delivered-To',
      'X-Original-To',
      'Auto-Submitted',
      'List-Id',
      'Sender',
      'Precedence',
      'X-Loop',
    ];
    const raw = [
      'From: a@example.test',
      'To: b@example.test',
      'Subject: nul',
      ...names.map((n) => `${n}: x\u0000y@example.test`),
      '',
      'body',
      '',
    ].join('\r\n');
    const mail = await parseText(raw);
    for (const n of names) {
      expect(mail.headers[n.toLowerCase()], n).toBe('xy@example.test');
    }
  });

  it('streams a 50 MB attachment to the blob store with the right sha256 and size, memory bounded', async () => {
    const attachmentBytes = 50 * 1024 * 1024;
    const { stream, expected } = mailWithLargeAttachment(attachmentBytes);
    let peak = 0;
    const base = process.memoryUsage();
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - (base.heapUsed + base.arrayBuffers));
    }, 20);
    const mail = await parseMail(stream, { blobs }).finally(() => clearInterval(sampler));
    expect(mail.text).toBe('See the attached file.');
    expect(mail.attachments).toHaveLength(1);
    expect(mail.attachments[0]).toMatchObject({
      filename: 'big.bin',
      contentType: 'application/octet-stream',
      size: attachmentBytes,
      sha256: expected.sha256,
    });
    expect(await blobs.size(expected.sha256)).toBe(attachmentBytes);
    expect(mail.size).toBe(expected.rawSize);
    expect(mail.contentHash).toBe(expected.rawSha256);
    console.log(`[parse.test] 50 MB attachment: peak heap+buffers growth ${(peak / 1048576).toFixed(1)} MB`);
    // The attachment (50 MB, ~68 MB as base64) never sits in memory as a whole.
    expect(peak).toBeLessThan(40 * 1024 * 1024);
  }, 120_000);

  it('a raw stream over maxMailBytes fails with MAIL_TOO_LARGE and is destroyed', async () => {
    const { stream } = mailWithLargeAttachment(4 * 1024 * 1024);
    const err = await parseMail(stream, { blobs, limits: { maxMailBytes: 1024 * 1024 } }).catch(
      (e: unknown) => e,
    );
    expect(isMailintakeError(err) && err.code).toBe('MAIL_TOO_LARGE');
    expect(stream.destroyed).toBe(true);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });

  it('a raw stream that fails in the middle of an attachment rejects with PARSE_FAILED (no hang, no temp file)', async () => {
    const { stream: full } = mailWithLargeAttachment(4 * 1024 * 1024);
    let sent = 0;
    const broken = new Readable({
      async read() {
        for await (const chunk of full) {
          sent += (chunk as Buffer).length;
          if (sent > 2 * 1024 * 1024) {
            this.destroy(new Error('ECONNRESET'));
            return;
          }
          this.push(chunk);
        }
      },
    });
    const err = await parseMail(broken, { blobs }).catch((e: unknown) => e);
    expect(isMailintakeError(err) && err.code).toBe('PARSE_FAILED');
    expect(isMailintakeError(err) && err.retryable).toBe(true);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });

  it('a mail mailsplit refuses (a 2 MB header block) rejects with MAIL_TOO_COMPLEX naming the limit, not retryable', async () => {
    const raw = `Subject: x\r\nX-Huge: ${'a'.repeat(2 * 1024 * 1024)}\r\n\r\nbody\r\n`;
    const err = await parseText(raw).catch((e: unknown) => e);
    expect(isMailintakeError(err) && err.code).toBe('MAIL_TOO_COMPLEX');
    expect(isMailintakeError(err) && err.details).toEqual({ limit: 'maxHeaderBytes', max: 1024 * 1024 });
    expect(isMailintakeError(err) && err.retryable).toBe(false);
    expect((err as Error).cause).toBeInstanceOf(Error);
  });

  it('a failing blob store rejects with STORE_FAILED and does not stall the parser', async () => {
    const failing: BlobStore = {
      put: async (s) => {
        s.destroy();
        throw new Error('ENOSPC: no space left on device');
      },
      syncAll: async () => {},
      get: () => Readable.from([]),
      has: async () => false,
      size: async () => 0,
    };
    const { stream } = mailWithLargeAttachment(1024 * 1024);
    const err = await parseMail(stream, { blobs: failing }).catch((e: unknown) => e);
    expect(isMailintakeError(err) && err.code).toBe('STORE_FAILED');
    expect(String((err as Error).message)).toContain('ENOSPC');
  });

  it('headers: ids without brackets, groups flattened, invalid date is null, unnamed parts get a name', async () => {
    const raw = [
      'From: "Ann Example" <Ann@Example.COM>',
      'To: Team: bob@example.com, "Carl" <CARL@example.com>;, dave@example.com',
      'Cc: undisclosed-recipients:;',
      'Reply-To: <Help@Example.com>',
      'Subject: =?UTF-8?B?w4RyZ2VyIG1pdCBkZXIgQW5tZWxkdW5n?= [##42##]',
      'Date: Someday in the future',
      'Message-ID: abc123@example.com',
      "In-Reply-To: <a@x> (Ann's message of Monday)",
      'References: <r1@x>,<r2@x>',
      '  <r3@x> <r1@x>',
      'Auto-Submitted: no',
      'Content-Type: multipart/related; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Hello <img src="cid:img1@x"></p>',
      '--b1',
      'Content-Type: image/png',
      'Content-ID: <img1@x>',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('not really a png').toString('base64'),
      '--b1',
      'Content-Type: application/x-custom',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from('data').toString('base64'),
      '--b1--',
      '',
    ].join('\r\n');
    const mail = await parseText(raw);
    expect(mail.messageId).toBe('abc123@example.com');
    expect(mail.inReplyTo).toEqual(['a@x']);
    expect(mail.references).toEqual(['r1@x', 'r2@x', 'r3@x']);
    expect(mail.subject).toBe('Ärger mit der Anmeldung [##42##]');
    expect(mail.from).toEqual({ address: 'ann@example.com', name: 'Ann Example' });
    expect(mail.to.map((a) => a.address)).toEqual([
      'bob@example.com',
      'carl@example.com',
      'dave@example.com',
    ]);
    expect(mail.cc).toEqual([]);
    expect(mail.replyTo).toEqual([{ address: 'help@example.com', name: '' }]);
    expect(mail.date).toBeNull();
    expect(mail.headers).toEqual({
      'auto-submitted': 'no',
      'content-type': 'multipart/related; boundary="b1"',
      from: '"Ann Example" <Ann@Example.COM>',
    });
    expect(mail.html).toBe('<p>Hello <img src="cid:img1@x"></p>');
    expect(mail.attachments.map((a) => [a.filename, a.contentType, a.contentId, a.disposition])).toEqual([
      ['image-1.png', 'image/png', 'img1@x', 'inline'],
      ['attachment-1.bin', 'application/x-custom', null, 'attachment'],
    ]);
    expect(mail.truncated).toBeUndefined();
  });

  it('an empty input parses to an empty mail (the hash of nothing)', async () => {
    const mail = await parseMail(Readable.from([]), { blobs });
    expect(mail).toMatchObject({
      messageId: null,
      subject: '',
      from: null,
      text: null,
      size: 0,
      contentHash: sha(''),
    });
  });

  it('cuts text beyond maxTextBytes at a character boundary and flags it', async () => {
    const body = 'ä'.repeat(1000); // 2000 bytes in UTF-8
    const mail = await parseText(`Subject: long\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`, {
      maxTextBytes: 1001,
    });
    expect(mail.text).toBe(`${'ä'.repeat(500)}\n\n${CUT_MARKER_TEXT}\n`);
    expect(mail.truncated).toBe(true);
    expect(mail.truncatedReason).toMatch(/text kept 1000 bytes/);
  });
});

describe('extractMessageIds', () => {
  it('handles brackets, bare ids, commas, comments and duplicates', () => {
    expect(extractMessageIds('<a@b>')).toEqual(['a@b']);
    expect(extractMessageIds('a@b')).toEqual(['a@b']);
    expect(extractMessageIds('<a@b>,<c@d> <a@b>')).toEqual(['a@b', 'c@d']);
    expect(extractMessageIds('"Joe" <a@b> (Joe\'s message of Mon, 1 Jan)')).toEqual(['a@b']);
    expect(extractMessageIds('a@b, c@d')).toEqual(['a@b', 'c@d']);
    expect(extractMessageIds('')).toEqual([]);
    expect(extractMessageIds('<>')).toEqual([]);
  });
});

describe('resolveParseLimits', () => {
  it('fills in defaults and accepts -1 as unlimited', () => {
    expect(resolveParseLimits()).toEqual({
      maxMailBytes: 100 * 1024 * 1024,
      maxTextBytes: 4 * 1024 * 1024,
      maxHeaderBytes: 1024 * 1024,
      maxParts: 1000,
      maxDepth: 100,
    });
    expect(resolveParseLimits({ maxMailBytes: -1 }).maxMailBytes).toBe(-1);
  });
  it.each([0, Number.NaN, -2, 1.5, Number.POSITIVE_INFINITY])(
    'rejects %s instead of turning the limit off',
    (v) => {
      for (const key of ['maxMailBytes', 'maxTextBytes', 'maxHeaderBytes', 'maxParts', 'maxDepth'] as const) {
        expect(() => resolveParseLimits({ [key]: v })).toThrow(
          expect.objectContaining({
            code: 'INVALID_SETTINGS',
            details: { fields: [expect.objectContaining({ field: key })] },
          }),
        );
      }
    },
  );
});

describe('BareCrLineEndings', () => {
  const run = async (chunks: string[]) => {
    const out = await buffer(Readable.from(chunks.map((c) => Buffer.from(c))).pipe(new BareCrLineEndings()));
    return out.toString();
  };
  it('turns CR-only line ends into LF, also across chunk boundaries', async () => {
    expect(await run(['Subject: a\rFrom: b\r', '\rbody\r', 'more\r'])).toBe(
      'Subject: a\nFrom: b\n\nbody\nmore\n',
    );
    // A CRLF inside a CR-only mail (split across chunks) stays one line end.
    expect(await run(['Subject: a\rX: b\r', '\nY: c\r'])).toBe('Subject: a\nX: b\r\nY: c\n');
  });
  it('leaves CRLF and LF mails byte for byte as they are', async () => {
    expect(await run(['Subject: a\r', '\nX: y\r\n\r\nbin\rary\r\n'])).toBe(
      'Subject: a\r\nX: y\r\n\r\nbin\rary\r\n',
    );
    expect(await run(['Subject: a\nX: \r\n'])).toBe('Subject: a\nX: \r\n');
  });
});

// ---------------------------------------------------------------------------------------------------------

/** A mail with one base64 attachment of `bytes` pseudo-random bytes, generated while it is read. */
function mailWithLargeAttachment(bytes: number) {
  const expected = { sha256: '', rawSha256: '', rawSize: 0 };
  const contentHash = createHash('sha256');
  const rawHash = createHash('sha256');
  async function* generate(): AsyncGenerator<Buffer> {
    const emit = (s: string | Buffer) => {
      const b = typeof s === 'string' ? Buffer.from(s) : s;
      rawHash.update(b);
      expected.rawSize += b.length;
      return b;
    };
    yield emit(
      [
        'From: sender@example.com',
        'To: help@example.com',
        'Subject: big file',
        'Message-ID: <big@example.com>',
        'Content-Type: multipart/mixed; boundary="XX"',
        '',
        '--XX',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'See the attached file.',
        '--XX',
        'Content-Type: application/octet-stream; name="big.bin"',
        'Content-Disposition: attachment; filename="big.bin"',
        'Content-Transfer-Encoding: base64',
        '',
        '',
      ].join('\r\n'),
    );
    // 57 bytes make one 76-character base64 line; blocks of 1024 lines.
    const block = 57 * 1024;
    for (let done = 0; done < bytes; done += block) {
      // Random bytes: no two blocks alike, so nothing downstream can get away with deduplicating or compressing.
      const data = randomBytes(Math.min(block, bytes - done));
      contentHash.update(data);
      const b64 = data.toString('base64').replace(/.{76}/g, '$&\r\n');
      yield emit(b64.endsWith('\n') ? b64 : `${b64}\r\n`);
    }
    expected.sha256 = contentHash.digest('hex');
    yield emit('--XX--\r\n');
    expected.rawSha256 = rawHash.digest('hex');
  }
  return { stream: Readable.from(generate(), { objectMode: false }), expected };
}
