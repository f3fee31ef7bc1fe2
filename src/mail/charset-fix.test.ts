import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusRoot } from '../../test/kit/corpus.js';
import { prng } from '../../test/kit/prng.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import {
  CharsetLedger,
  chooseHeaderCharset,
  mergedEncodedWords,
  redecodedHeaderLine,
} from './charset-fix.js';
import { parseMail } from './parse.js';

let dir: string;
let blobs: FileBlobStore;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailintake-charset-'));
  blobs = new FileBlobStore(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const parse = (raw: Buffer) => parseMail(Readable.from([raw]), { blobs });
const b = (s: string) => Buffer.from(s, 'latin1');

/** Names and subjects people type, in the charset their client sends them raw in. */
const PEOPLE: { charset: string; name: string; subject: string; file: string }[] = [
  { charset: 'Shift_JIS', name: '山田 太郎', subject: '請求書について', file: '添付ファイル.pdf' },
  {
    charset: 'EUC-JP',
    name: '鈴木 花子',
    subject: 'お問い合わせの件について、ご確認ください',
    file: '見積書.xlsx',
  },
  {
    charset: 'windows-1252',
    name: 'François Müller',
    subject: 'Rechnung für März',
    file: 'Größe und Maße.pdf',
  },
  { charset: 'windows-1251', name: 'Иван Петров', subject: 'Привет, мир! Счёт за услуги', file: 'Счёт.pdf' },
  { charset: 'GB18030', name: '王小明', subject: '关于发票的问题，请尽快回复', file: '发票.pdf' },
  { charset: 'UTF-8', name: 'Zoë Ørsted', subject: 'Ünïcödé ✓ 請求書', file: 'naïve café.txt' },
];

/** A mail whose Subject, From display name and file name are raw bytes in `charset`, no charset declared. */
function rawHeaderMail(p: (typeof PEOPLE)[number], where: 'disposition' | 'type'): Buffer {
  const enc = (s: string) => iconv.encode(s, p.charset);
  const nameParam =
    where === 'disposition'
      ? [
          b('Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="'),
          enc(p.file),
          b('"\r\n'),
        ]
      : [
          b('Content-Type: application/octet-stream; name="'),
          enc(p.file),
          b('"\r\nContent-Disposition: attachment\r\n'),
        ];
  return Buffer.concat([
    b('From: "'),
    enc(p.name),
    b('" <someone@example.com>\r\nTo: support@example.org\r\nSubject: '),
    enc(p.subject),
    b('\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n'),
    b('Content-Type: text/plain\r\n\r\nHello\r\n--b\r\n'),
    ...nameParam,
    b('\r\nfile body\r\n--b--\r\n'),
  ]);
}

describe('raw 8-bit header bytes (no RFC 2047/2231 encoding)', () => {
  it('Subject, From name and file names come out as written, in every charset, with the choice in the notes', async () => {
    for (const p of PEOPLE) {
      for (const where of ['disposition', 'type'] as const) {
        const mail = await parse(rawHeaderMail(p, where));
        expect({ subject: mail.subject, name: mail.from?.name, file: mail.attachments[0]?.filename }).toEqual(
          {
            subject: p.subject,
            name: p.name,
            file: p.file,
          },
        );
        if (p.charset === 'UTF-8') {
          expect(mail.parseNotes).toBeUndefined();
        } else {
          expect(mail.parseNotes).toContain(
            `Subject: raw 8-bit bytes without a charset; decoded as ${p.charset} (detected)`,
          );
          expect(mail.parseNotes?.some((n) => n.startsWith('file name ('))).toBe(true);
        }
      }
    }
  });

  it("prefers a charset the mail declares elsewhere (a later part's charset=) over the detector", async () => {
    const raw = Buffer.concat([
      b('From: a@example.com\r\nSubject: '),
      iconv.encode('Preis: 10 € - Größe', 'ISO-8859-15'),
      b('\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n'),
      b('Content-Type: text/plain; charset=us-ascii\r\n\r\nx\r\n--b\r\n'),
      b('Content-Type: text/plain; charset=ISO-8859-15\r\n\r\ny\r\n--b--\r\n'),
    ]);
    const mail = await parse(raw);
    expect(mail.subject).toBe('Preis: 10 € - Größe');
    expect(mail.parseNotes).toEqual([
      'Subject: raw 8-bit bytes without a charset; decoded as ISO-8859-15 (declared elsewhere in the mail)',
    ]);
  });

  it('a value ending in a character whose UTF-8 ends in 0xA0 (à) keeps it, raw UTF-8 or raw windows-1252', async () => {
    for (const charset of ['UTF-8', 'windows-1252']) {
      const enc = (t: string) => iconv.encode(t, charset);
      const raw = Buffer.concat([
        b('From: x@example.com (Jean '),
        enc('Voilà'),
        b(')\r\nSubject: '),
        enc('Et voilà'),
        b('\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n'),
        b('Content-Type: application/octet-stream; name='),
        enc('déjà'),
        b('\r\n\r\nx\r\n--b--\r\n'),
      ]);
      const mail = await parse(raw);
      expect([mail.subject, mail.attachments[0]?.filename], charset).toEqual(['Et voilà', 'déjà']);
      expect(mail.from?.name ?? '').not.toContain('\ufffd');
    }
  });

  it('random bytes in the headers: the mail parses, and no U+FFFD comes out of them', async () => {
    const rand = prng(2026);
    for (let i = 0; i < 150; i++) {
      const junk = () => {
        const out = Buffer.alloc(1 + Math.floor(rand() * 80));
        for (let j = 0; j < out.length; j++) {
          let v = Math.floor(rand() * 256);
          if (v === 0x0a || v === 0x0d) v = 0xa0; // keep the header block's structure
          out[j] = v;
        }
        return out;
      };
      const raw = Buffer.concat([
        b('From: "'),
        junk(),
        b('" <x@example.com>\r\nSubject: '),
        junk(),
        b('\r\nContent-Type: text/plain; charset='),
        rand() < 0.5 ? b('utf-8') : b('iso-2022-jp'),
        b('\r\n\r\n'),
        junk(),
        b('\r\n'),
      ]);
      const mail = await parse(raw);
      expect(mail.subject).not.toContain('\ufffd');
      expect(mail.text ?? '').not.toContain('\ufffd');
    }
  });
});

describe('a character split across two encoded words', () => {
  /** `text`'s bytes in `charset`, cut at random byte positions into encoded words, Q or B at random. */
  function splitWords(rand: () => number, text: string, charset: string): string {
    const bytes = iconv.encode(text, charset);
    const words: string[] = [];
    for (let at = 0; at < bytes.length; ) {
      const n = 1 + Math.floor(rand() * 9);
      const piece = bytes.subarray(at, at + n);
      at += n;
      const q = [...piece].map((x) => `=${x.toString(16).toUpperCase().padStart(2, '0')}`).join('');
      words.push(rand() < 0.5 ? `=?${charset}?B?${piece.toString('base64')}?=` : `=?${charset}?Q?${q}?=`);
    }
    return words.join('\r\n ');
  }

  it('is joined again, in subjects, names and file names (generated splits, UTF-8 and Shift_JIS)', async () => {
    const rand = prng(22);
    for (let round = 0; round < 40; round++) {
      const charset = round % 2 === 0 ? 'UTF-8' : 'Shift_JIS';
      const text = ['Евгений Васильев', '請求書について（至急）', 'Größe und Maße', 'お問い合わせ'][
        round % 4
      ] as string;
      const raw = Buffer.from(
        `From: ${splitWords(rand, text, charset)} <x@example.com>\r\nSubject: ${splitWords(rand, text, charset)}\r\n` +
          'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n' +
          `Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="${splitWords(rand, `${text}.pdf`, charset)}"\r\n\r\nx\r\n--b--\r\n`,
        'latin1',
      );
      const mail = await parse(raw);
      expect([mail.subject, mail.from?.name, mail.attachments[0]?.filename]).toEqual([
        text,
        text,
        `${text}.pdf`,
      ]);
    }
  });

  it('leaves words that each hold whole characters, other charsets next to each other, and UTF-7 alone', () => {
    expect(mergedEncodedWords('Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= =?UTF-8?Q?_aus?=')).toBeNull();
    expect(mergedEncodedWords('Subject: =?UTF-8?Q?=C3?= =?ISO-8859-1?Q?=BC?=')).toBeNull();
    expect(mergedEncodedWords('Subject: =?UTF-7?Q?+AD?= =?UTF-7?Q?w-?=')).toBeNull();
    expect(mergedEncodedWords('Subject: plain')).toBeNull();
  });

  it.skipIf(!existsSync(corpusRoot))(
    'otobo PostMaster-Test22: a Cyrillic name split across Q and B words',
    async () => {
      const mail = await parse(
        readFileSync(join(corpusRoot, 'otobo/scripts/test/sample/EmailParser/PostMaster-Test22.box')),
      );
      expect(mail.to[0]?.name).toBe('QBQB Евгений Васильев Новоподзалупинский');
      expect(mail.subject).toBe('QBQB Евгений Васильев Новоподзалупинский <xxzzyy@gmail.com>');
    },
  );
});

describe('charset labels that lie', () => {
  const body = (label: string, bytes: Buffer) => (): Buffer =>
    Buffer.concat([
      b(
        `From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=${label}\r\n\r\n`,
      ),
      bytes,
      b('\r\n'),
    ]);
  const cases: { label: string; real: string; text: string }[] = [
    {
      label: 'ISO-2022-JP',
      real: 'Shift_JIS',
      text: 'お問い合わせの件について、ご確認ください。請求書の再発行をお願いします。',
    },
    { label: 'UTF-8', real: 'windows-1252', text: 'Grüße aus München, die Rechnung für März ist unterwegs.' },
    { label: 'UTF-8', real: 'Shift_JIS', text: 'パスワードを忘れました。再設定の方法を教えてください。' },
    { label: 'utf-8', real: 'GB18030', text: '关于发票的问题，请尽快回复。我的账户无法登录，请帮忙处理。' },
    { label: 'UTF-8', real: 'KOI8-R', text: 'Привет, мир! Счёт за услуги связи за прошлый месяц.' },
    { label: 'us-ascii', real: 'windows-1252', text: 'Café crème, déjà vu: voilà la facture.' },
  ];

  it('a body whose label does not fit its bytes is decoded by the chain, and the trace says which charset', async () => {
    for (const c of cases) {
      const mail = await parse(body(c.label, iconv.encode(c.text, c.real))());
      expect(mail.text?.trim()).toBe(c.text);
      expect(mail.parseNotes).toEqual([
        `body charset ${c.label} did not fit the bytes; decoded as ${c.real} (detected)`,
      ]);
    }
  });

  it('a label that fits is decoded as before, with nothing in the trace', async () => {
    for (const c of cases) {
      const mail = await parse(body(c.real, iconv.encode(c.text, c.real))());
      expect(mail.text?.trim()).toBe(c.text);
      expect(mail.parseNotes).toBeUndefined();
    }
    // a real ISO-2022-JP body (7-bit, with escapes) still decodes through mailparser's own decoder
    const jis = Buffer.from('\x1b$B$3$s$K$A$O\x1b(B\r\n', 'latin1');
    const mail = await parse(body('ISO-2022-JP', jis)());
    expect(mail.text?.trim()).toBe('こんにちは');
    expect(mail.parseNotes).toBeUndefined();
  });
});

describe.skipIf(!existsSync(corpusRoot))(
  'real mails with raw 8-bit headers and lying labels (corpus)',
  () => {
    const file = (rel: string) => parse(readFileSync(join(corpusRoot, rel)));

    it('otobo PostMaster-Test14/18: raw Latin-1 in From, UTF-8 and us-ascii labels on Latin-1 bodies', async () => {
      const m14 = await file('otobo/scripts/test/sample/PostMaster/PostMaster-Test14.box');
      expect(m14.from?.name).toBe('VIAGRA ® Official Site');
      expect(m14.text).not.toContain('\ufffd');
      expect(m14.parseNotes).toEqual([
        'body charset UTF-8 did not fit the bytes; decoded as windows-1252 (detected)',
        'From: raw 8-bit bytes without a charset; decoded as windows-1252 (detected)',
      ]);
      const m18 = await file('otobo/scripts/test/sample/PostMaster/PostMaster-Test18.box');
      expect(m18.from?.name).toBe('© VIAGRA ® Official');
      expect(m18.text).not.toContain('\ufffd');
    });

    it('otobo PostMaster-Test11: 8-bit body without any charset', async () => {
      const mail = await file('otobo/scripts/test/sample/PostMaster/PostMaster-Test11.box');
      expect(mail.text).toContain('... pc va demasiado rápido ...');
    });

    it('sisimai lhost-ezweb-02: a Japanese bounce labelled ISO-2022-JP whose bytes are EUC-JP', async () => {
      const mail = await file('sisimai-set-of-emails/maildir/bsd/lhost-ezweb-02.eml');
      expect(mail.text).toContain('次のあて先へのメッセージはエラーのため送信できませんでした。');
      expect(mail.parseNotes).toEqual([
        'body charset iso-2022-jp did not fit the bytes; decoded as EUC-JP (detected)',
      ]);
    });
  },
);

describe('header lines with hostile input', () => {
  /** Raw header lines as mailsplit keeps them (one character per byte). */
  const samples = [
    ...PEOPLE.map((p) => `Subject: ${iconv.encode(p.subject, p.charset).toString('latin1')}`),
    `Subject: =?utf-8?Q?=D0=92=D0?= =?utf-8?B?sNGB?= and =?shift_jis?B?${iconv.encode('請求書', 'Shift_JIS').toString('base64')}?=`,
    `From: =?utf-8*en?q?Zo=C3=AB?= <a@example.com>, ${b('Müller').toString('latin1')} <m@example.com>`,
  ];

  function mutate(rand: () => number, line: string): string {
    let out = line;
    for (let s = 1 + Math.floor(rand() * 4); s > 0; s--) {
      const pos = Math.floor(rand() * (out.length + 1));
      switch (Math.floor(rand() * 6)) {
        case 0:
          out = out.slice(0, pos) + String.fromCharCode(Math.floor(rand() * 256)) + out.slice(pos + 1);
          break;
        case 1:
          out = out.slice(0, pos);
          break;
        case 2:
          out =
            out.slice(0, pos) +
            out.slice(Math.floor(rand() * out.length)).repeat(1 + Math.floor(rand() * 50));
          break;
        case 3:
          out = `${out.slice(0, pos)}\0=?utf-8?q?=00?=${out.slice(pos)}`;
          break;
        case 4:
          out = `${out.slice(0, pos)}${' '.repeat(Math.floor(rand() * 20_000))}\u00e4${out.slice(pos)}`;
          break;
        default:
          out = `${out.slice(0, pos)}=?${'x'.repeat(Math.floor(rand() * 300))}?${out.slice(pos)}`;
      }
    }
    return out.includes(':') ? out : `Subject:${out}`;
  }

  it('mutated lines: merged and re-decoded lines come back, no exception, at most a few times their size', () => {
    const rand = prng(77);
    for (let round = 0; round < 400; round++) {
      const lines = samples.map((l) => mutate(rand, l));
      const ledger = new CharsetLedger();
      chooseHeaderCharset(lines, ledger);
      for (const line of lines) {
        const merged = mergedEncodedWords(line);
        if (merged !== null) expect(merged.length).toBeLessThanOrEqual(4 * line.length + 64);
        const redone = redecodedHeaderLine(merged ?? line, ledger, 'Subject');
        if (redone !== null) expect(redone.line.length).toBeLessThanOrEqual(3 * (merged ?? line).length);
      }
      expect(ledger.notes.length).toBeLessThanOrEqual(20);
    }
  });

  it('a 1 MB line of blanks between two 8-bit characters is read in linear time', () => {
    // UTF-8 `ä`, 1 MB of blanks, `ä`: /[ \t\r\n]+$/ backtracked over the run from every blank (minutes)
    const line = `Subject: ${b('Ã¤').toString('latin1')}${' \t'.repeat(1 << 19)}Ã¤\r\n`;
    expect(redecodedHeaderLine(line, new CharsetLedger(), 'Subject')).toBeNull();
    // and the same in windows-1252 is decoded, blanks and all
    const latin = `Subject: \u00e4${' '.repeat(1 << 20)}\u00e4`;
    expect(redecodedHeaderLine(latin, new CharsetLedger(), 'Subject')?.text).toBe(
      ` ä${' '.repeat(1 << 20)}ä`,
    );
  });

  it('keeps at most 16 declared charsets, however many parts declare one', () => {
    const ledger = new CharsetLedger();
    for (let i = 0; i < 5000; i++)
      ledger.declare(i % 2 ? `x-made-up-${i}` : ['cp1251', 'koi8-r', 'latin2'][i % 3]!);
    expect(ledger.declared).toHaveLength(16);
    expect(ledger.declared.slice(0, 3)).toEqual(['cp1251', 'x-made-up-1', 'latin2']);
  });
});
