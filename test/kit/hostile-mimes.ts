import { expect } from 'vitest';
import { UUENCODE_MAX_BLOCKS } from '../../src/kernel/limits.js';
import { type ComplexityLimit, DEFAULT_PARSE_LIMITS } from '../../src/mail/parse.js';
import type { ParsedMail } from '../../src/mail/types.js';
import { buildTnef } from './tnef.js';

/**
 * Mails built to hurt the parser, one generator per shape, each at a size that proves its class in well under a
 * second. Every shape must end as a parsed mail (checked for what it should keep) or as MAIL_TOO_COMPLEX naming
 * the limit it crossed; never a bare PARSE_FAILED, a hang, or a leftover temp file. src/mail/hostile-mime.test.ts runs
 * every shape through parseMail; test/hostile-mime.test.ts takes a subset through Dovecot on both engines.
 */

export const HEAD = [
  'From: Customer <customer@example.test>',
  'To: support@example.test',
  'Subject: hostile',
  'Message-ID: <hostile@example.test>',
  'Date: Mon, 07 Dec 2026 00:00:00 +0000',
  'MIME-Version: 1.0',
].join('\r\n');
const MIB = 1024 * 1024;
const OVER_HEADER = DEFAULT_PARSE_LIMITS.maxHeaderBytes + 64 * 1024;

/** A mail whose one attachment is the given winmail.dat. */
function tnefMail(dat: Buffer): string {
  return (
    `${HEAD}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n` +
    'Content-Type: application/ms-tnef; name="winmail.dat"\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
    `${dat.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n--b--\r\n`
  );
}

export function* repeat(n: number, line: (i: number) => string): Generator<string> {
  for (let i = 0; i < n; i++) yield line(i);
}

/** A header block of `bytes` bytes of `line(i)` lines, put in front of HEAD. */
function* headerOf(bytes: number, line: (i: number) => string): Generator<string> {
  let sent = 0;
  for (let i = 0; sent < bytes; i++) {
    const l = line(i);
    sent += l.length;
    yield l;
  }
}

export function* nestedMultipart(depth: number): Generator<string> {
  yield `${HEAD}\r\n`;
  for (let i = 0; i < depth - 1; i++)
    yield `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n`;
  yield 'Content-Type: text/plain\r\n\r\ndeep\r\n';
  for (let i = depth - 2; i >= 0; i--) yield `--b${i}--\r\n`;
}

export function* multipart(parts: Iterable<string>): Generator<string> {
  yield `${HEAD}\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n`;
  for (const p of parts) yield `--B\r\n${p}\r\n`;
  yield '--B--\r\n';
}

const attachment = (name: string, base64: string, type = 'application/octet-stream') =>
  `Content-Type: ${type}\r\nContent-Disposition: attachment; filename="${name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64}`;

export interface HostileShape {
  name: string;
  chunks: () => Iterable<string>;
  /** The limit it must cross (MAIL_TOO_COMPLEX), or a check of the parsed mail. */
  expect: ComplexityLimit | ComplexityLimit[] | ((mail: ParsedMail) => void);
}

/** Every shape; test/hostile-mime.test.ts takes a subset end to end. */
export const HOSTILE_SHAPES: HostileShape[] = [
  // --- headers: one node's header block is held whole, so every way of making it huge is one limit
  {
    name: 'one unfolded header line over the header limit',
    chunks: () => [`X-Long: ${'a'.repeat(OVER_HEADER)}\r\n${HEAD}\r\n\r\nbody\r\n`],
    expect: 'maxHeaderBytes',
  },
  {
    name: '100,000 header lines',
    chunks: () => [HEAD, '\r\n', ...repeat(100_000, (i) => `X-H${i}: v\r\n`), '\r\nbody\r\n'],
    expect: 'maxHeaderBytes',
  },
  {
    name: 'no blank line before a huge body',
    chunks: () => [`${HEAD}\r\n`, ...repeat(30_000, () => 'text without a colon, line after line ....\r\n')],
    expect: 'maxHeaderBytes',
  },
  {
    name: 'folded continuation lines over the header limit',
    chunks: () => [
      `${HEAD}\r\nX-Fold: a\r\n`,
      ...headerOf(OVER_HEADER, () => ` ${'b'.repeat(61)}\r\n`),
      '\r\nbody\r\n',
    ],
    expect: 'maxHeaderBytes',
  },
  {
    name: 'a header name over the header limit',
    chunks: () => [`${HEAD}\r\nX${'n'.repeat(OVER_HEADER)}: v\r\n\r\nbody\r\n`],
    expect: 'maxHeaderBytes',
  },
  {
    name: '100,000 encoded words in Subject',
    chunks: () => [
      HEAD.replace('Subject: hostile', 'Subject:'),
      ...repeat(100_000, () => '\r\n =?UTF-8?B?YWJj?='),
      '\r\n\r\nbody\r\n',
    ],
    expect: 'maxHeaderBytes',
  },
  {
    name: 'RFC 2231 continuation bomb (filename*0..*99999) in a part',
    chunks: () =>
      multipart([
        `Content-Type: application/octet-stream\r\nContent-Disposition: attachment${[...repeat(100_000, (i) => `;\r\n filename*${i}*=a`)].join('')}\r\n\r\nabc`,
      ]),
    expect: 'maxHeaderBytes',
  },
  {
    name: '100,000 To addresses',
    chunks: () => [
      HEAD.replace('To: support@example.test', 'To: a0@example.test'),
      ...repeat(100_000, (i) => `,\r\n a${i + 1}@example.test`),
      '\r\n\r\nbody\r\n',
    ],
    expect: 'maxHeaderBytes',
  },
  {
    name: 'a display name over the header limit',
    chunks: () => [`${HEAD.replace('From: Customer', `From: "${'N'.repeat(OVER_HEADER)}"`)}\r\n\r\nbody\r\n`],
    expect: 'maxHeaderBytes',
  },
  // --- structure: nodes are counted (each is a row and a blob put), nesting is bounded
  {
    name: 'multipart nested 10,000 deep',
    chunks: () => nestedMultipart(10_000),
    // mailsplit splits ahead of mailparser: it may count node 1,001 before mailparser meets depth 101
    expect: ['maxDepth', 'maxParts'],
  },
  {
    name: 'multipart nested one deeper than the limit',
    chunks: () => nestedMultipart(DEFAULT_PARSE_LIMITS.maxDepth + 1),
    expect: 'maxDepth',
  },
  {
    name: 'multipart nested exactly at the limit',
    chunks: () => nestedMultipart(DEFAULT_PARSE_LIMITS.maxDepth),
    expect: (m) => expect(m.text).toBe('deep'),
  },
  {
    name: 'message/rfc822 nested 10,000 deep (kept as one attachment, not descended into)',
    chunks: () => [
      `${HEAD}\r\n`,
      ...repeat(10_000, (i) => `Content-Type: message/rfc822\r\n\r\nSubject: level ${i}\r\n`),
      'Content-Type: text/plain\r\n\r\ndeep\r\n',
    ],
    expect: (m) => expect(m.attachments.map((a) => a.contentType)).toEqual(['message/rfc822']),
  },
  {
    name: '100,000 empty parts',
    chunks: () => multipart(repeat(100_000, () => '')),
    expect: 'maxParts',
  },
  {
    name: '50,000 tiny attachments',
    chunks: () => multipart(repeat(50_000, (i) => attachment(`f${i}.bin`, 'YWJj'))),
    expect: 'maxParts',
  },
  {
    name: 'the same attachment 10,000 times',
    chunks: () =>
      multipart(repeat(10_000, () => attachment('same.pdf', 'QUJD'.repeat(100), 'application/pdf'))),
    expect: 'maxParts',
  },
  {
    name: 'a 7 KB boundary',
    chunks: () => {
      const b = 'q'.repeat(7_000);
      return [
        `${HEAD}\r\nContent-Type: multipart/mixed; boundary="${b}"\r\n\r\n--${b}\r\nContent-Type: text/plain\r\n\r\nhi\r\n--${b}--\r\n`,
      ];
    },
    expect: (m) => expect(m.text).toBe('hi'),
  },
  {
    name: 'a boundary that never closes',
    chunks: () => [
      `${HEAD}\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n`,
    ],
    expect: (m) => expect(m.text?.trim()).toBe('hi'),
  },
  {
    name: 'multipart without a boundary parameter',
    chunks: () => [
      `${HEAD}\r\nContent-Type: multipart/mixed\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B--\r\n`,
    ],
    expect: (m) => expect(m.subject).toBe('hostile'),
  },
  {
    name: 'duplicated Content-Type',
    chunks: () => [
      `${HEAD}\r\nContent-Type: multipart/mixed; boundary="B"\r\nContent-Type: text/plain\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B--\r\n`,
    ],
    expect: (m) => expect(m.text).toBe('hi'),
  },
  {
    name: 'a 64 KB Content-ID',
    chunks: () =>
      multipart([
        'Content-Type: text/html\r\n\r\n<p>x</p>',
        `Content-Type: image/png\r\nContent-ID: <${'c'.repeat(65_536)}>\r\nContent-Transfer-Encoding: base64\r\n\r\nYWJj`,
      ]),
    expect: (m) => expect(m.attachments[0]?.contentId).toHaveLength(65_536),
  },
  // --- line endings
  {
    name: 'NUL instead of line ends',
    chunks: () => [`${HEAD.replaceAll('\r\n', '\0')}\0\0body\0`],
    expect: (m) => expect(m.from).toBeNull(),
  },
  {
    name: 'CR-only line ends',
    chunks: () => [`${HEAD.replaceAll('\r\n', '\r')}\r\rbody\r`],
    expect: (m) => expect([m.subject, m.text]).toEqual(['hostile', 'body\n']),
  },
  {
    name: 'LF-only line ends',
    chunks: () => [`${HEAD.replaceAll('\r\n', '\n')}\n\nbody\n`],
    expect: (m) => expect([m.subject, m.text]).toEqual(['hostile', 'body\n']),
  },
  // --- encodings
  {
    name: 'broken base64 (invalid characters, one 1 MB line)',
    chunks: () =>
      multipart([
        `Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n${'!!**$$%%YWJj'.repeat(MIB / 12)}`,
      ]),
    expect: (m) => expect(m.attachments).toHaveLength(1),
  },
  {
    name: 'quoted-printable: 2 MB of soft-broken line',
    chunks: () => [
      `${HEAD}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n`,
      ...repeat(512, () => 'a=\r\n'.repeat(1024)),
      '\r\n',
    ],
    expect: (m) => expect(m.text?.trim()).toBe('a'.repeat(512 * 1024)),
  },
  ...['x-evil', 'utf-7', 'iso-2022-jp'].map(
    (charset): HostileShape => ({
      name: `lying charset ${charset}`,
      chunks: () => [
        `${HEAD}\r\nContent-Type: text/plain; charset=${charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n`,
        `hello +ADw-script+AD4- \x1b$B\x1b(\xff\xfe${'\x1b$B'.repeat(10_000)}\r\n`,
      ],
      // UTF-7 is refused (it would turn +ADw-script+AD4- into <script>): no tag appears whatever the charset
      expect: (m) => expect(m.text).not.toContain('<script>'),
    }),
  ),
  {
    // Node's binary-to-text encodings are names iconv-lite knows: the charset chain took `base64` for the
    // mail's own charset and turned the raw subject into base64 digits
    name: 'charset=base64 on a part beside a raw 8-bit subject',
    chunks: () => [
      HEAD.replace('Subject: hostile', 'Subject: Rechnung f\xfcr M\xe4rz'),
      '\r\nContent-Type: text/plain; charset=base64\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
      'Gr\xfc\xdfe aus M\xfcnchen\r\n',
    ],
    expect: (m) => expect([m.subject, m.text?.trim()]).toEqual(['Rechnung für März', 'Grüße aus München']),
  },
  {
    name: '10,000 UTF-7 encoded words',
    chunks: () => [
      HEAD.replace('Subject: hostile', 'Subject:'),
      ...repeat(10_000, () => '\r\n =?UTF-7?Q?+ADw-?='),
      '\r\n\r\nbody\r\n',
    ],
    expect: (m) => expect(m.subject).not.toContain('<'),
  },
  {
    name: 'uuencode body',
    chunks: () => [
      `${HEAD}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f.txt\r\n#86)C\r\n\`\r\nend\r\n`,
    ],
    expect: (m) => expect(m.attachments).toHaveLength(1),
  },
  {
    name: 'x-gzip64 body',
    chunks: () => [
      `${HEAD}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-gzip64\r\n\r\nH4sIAAAAAAAAA0tMSgYAwkEkNQMAAAA=\r\n`,
    ],
    expect: (m) => expect(m.attachments).toHaveLength(1),
  },
  // --- uuencode and winmail.dat unpacked by the parser (mail/uuencode.ts, mail/tnef.ts)
  {
    name: 'uuencode: 10,000 begin/end blocks in a text body',
    chunks: () => [
      `${HEAD}\r\nContent-Type: text/plain\r\n\r\n`,
      ...repeat(10_000, (i) => `begin 644 f${i}.txt\r\n#86)C\r\n\`\r\nend\r\n`),
    ],
    expect: (m) => {
      // the first UUENCODE_MAX_BLOCKS become files, the rest stay text
      expect(m.attachments).toHaveLength(UUENCODE_MAX_BLOCKS);
      expect(m.attachments.every((a) => a.size === 3)).toBe(true);
      expect(m.text).toContain(`begin 644 f${UUENCODE_MAX_BLOCKS}.txt`);
    },
  },
  {
    name: 'uuencode part: an 8 MB line, truncated lines, no end',
    chunks: () => [
      `${HEAD}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n`,
      'begin 644 f.bin\r\n',
      ...repeat(8, () => 'M'.repeat(MIB)),
      '\r\nM86)C86)C\r\n#8\r\nM\r\n',
    ],
    expect: (m) => {
      expect(m.attachments.map((a) => a.filename)).toEqual(['f.bin']);
      expect(m.attachments[0]?.size).toBeLessThan(100);
    },
  },
  {
    name: 'winmail.dat: an attribute length claiming 4 GB',
    chunks: () => {
      const dat = buildTnef([{ longName: 'a.txt', data: Buffer.from('abc') }]);
      dat.writeUInt32LE(0xffffffff, 6 + 5);
      return [tnefMail(dat)];
    },
    expect: (m) => {
      expect(m.attachments.map((a) => a.filename)).toEqual(['winmail.dat']);
      expect(m.parseNotes?.join('\n')).toMatch(/not unpacked \(TNEF_TRUNCATED/);
    },
  },
  {
    name: 'winmail.dat: 100,000 files',
    chunks: () => [tnefMail(buildTnef(Array.from({ length: 100_000 }, () => ({ data: Buffer.from('x') }))))],
    expect: (m) => {
      expect(m.attachments.map((a) => a.filename)).toEqual(['winmail.dat']);
      expect(m.parseNotes?.join('\n')).toMatch(/not unpacked \(TNEF_TOO_MANY_FILES/);
    },
  },
  {
    name: 'raw 8-bit junk in Subject, From and a file name',
    chunks: () => [
      HEAD.replace(
        'Subject: hostile',
        `Subject: \x81\xfe\x8d\x90\xff\xc3\x28${'\xa0\x9d'.repeat(5000)}`,
      ).replace('Customer <', '\xe9\x80\x80\x81 <'),
      '\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n',
      'Content-Type: application/octet-stream; name="\xff\xfe\x00\x81.bin"\r\n\r\nx\r\n--b--\r\n',
    ],
    expect: (m) => {
      expect(m.subject).not.toContain('\ufffd');
      expect(m.from?.name).not.toContain('\ufffd');
      expect(m.attachments[0]?.filename).not.toContain('\ufffd');
    },
  },
  // --- addresses
  {
    name: 'group syntax, empty and nested groups',
    chunks: () => [
      `${HEAD.replace('To: support@example.test', 'To: undisclosed:; , team: x@example.test, "q" <z@example.test>; , g2: g3: deep@example.test;;')}\r\n\r\nbody\r\n`,
    ],
    expect: (m) =>
      expect(m.to.map((a) => a.address)).toEqual(['x@example.test', 'z@example.test', 'deep@example.test']),
  },
  {
    name: 'address and display name with NUL',
    chunks: () => [`${HEAD.replace('From: Customer <', 'From: "A\0B" <a\0')}\r\n\r\nbody\r\n`],
    expect: (m) => expect(`${m.from?.name}${m.from?.address}`).not.toContain('\0'),
  },
  {
    name: 'comments nested 10,000 deep after an address',
    chunks: () => [
      `${HEAD.replace('From: Customer <customer@example.test>', `From: customer@example.test ${'('.repeat(10_000)}x${')'.repeat(10_000)}`)}\r\n\r\nbody\r\n`,
    ],
    expect: (m) => expect(m.from?.address).toBe('customer@example.test'),
  },
  // --- dates: unreadable or out of range is "unknown", never the time of parsing or a 6-digit year
  ...[
    'Mon, 7 Dec 99999 00:00:00 +0000',
    '-271821-04-20T00:00:00Z',
    'Fri, 31 Dec 275760 23:59:59 -2359',
    '\x01\xff garbage 99:99:99 +9999',
  ].map(
    (date): HostileShape => ({
      name: `Date: ${JSON.stringify(date)}`,
      chunks: () => [`${HEAD.replace(/Date: [^\r]*/, `Date: ${date}`)}\r\n\r\nbody\r\n`],
      expect: (m) => expect(m.date).toBeNull(),
    }),
  ),
];
