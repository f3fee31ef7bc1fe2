import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatedName, INJECTED, inject } from '../../test/kit/file-names.js';
import { prng } from '../../test/kit/prng.js';
import { isMailintakeError } from '../kernel/errors.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import {
  type AttachmentPolicy,
  checkAttachments,
  DEFAULT_ATTACHMENT_POLICY,
  DROP_MESSAGES,
  dropReason,
  type FileNameRule,
  fileNameProblem,
  resolveAttachmentPolicy,
  type Sniff,
} from './attachment-checks.js';
import { blobSniffer } from './sniff.js';
import type { StoredPart } from './types.js';

/** Real files, stored in a real blob store and sniffed by file-type through blobSniffer, as the intake does. */

const MB = 1024 * 1024;
/** A real 1x1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
/** A minimal PE image: DOS header with "MZ", e_lfanew pointing at a "PE\0\0" signature. */
function peExecutable(): Buffer {
  const b = Buffer.alloc(1024);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  b.writeUInt16LE(0x14c, 0x84); // i386
  return b;
}
const PDF = Buffer.from(
  '%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n',
);
/** A PNG of `size` bytes: the real image, padded (file-type decides by the signature and first chunk). */
const bigPng = (size: number) => Buffer.concat([PNG, Buffer.alloc(size - PNG.length)]);

let dir: string;
let blobs: FileBlobStore;
let sniff: Sniff;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-checks-'));
  blobs = new FileBlobStore(dir);
  sniff = blobSniffer(blobs);
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function part(
  filename: string,
  content: Buffer,
  opts: { contentType?: string; inline?: boolean } = {},
): Promise<StoredPart> {
  const stored = await blobs.put(Readable.from([content]));
  return {
    filename,
    contentType: opts.contentType ?? 'application/octet-stream',
    size: stored.size,
    sha256: stored.sha256,
    contentId: opts.inline ? `${filename}@test` : null,
    disposition: opts.inline ? 'inline' : 'attachment',
  };
}

const policy = (over: Record<string, unknown> = {}): AttachmentPolicy => resolveAttachmentPolicy(over);

async function verdict(p: StoredPart, pol: AttachmentPolicy = policy()) {
  const r = await checkAttachments([p], pol, sniff);
  return r.dropped[0] ? { code: r.dropped[0].code, message: r.dropped[0].message } : 'kept';
}

describe('file names', () => {
  /** The names and their kin: every one is an ordinary attachment and must be kept by default. */
  const ORDINARY = [
    'report.pdf',
    'poster (8).jpg',
    'Capture d’écran 2024-03-01 à 10.00.00.png',
    // the same, decomposed (é = e + U+0301, à = a + U+0300), as macOS writes names
    'Capture d’e\u0301cran 2024-03-01 a\u0300 10.00.00.png',
    '会议纪要（最终版）：第3季度.docx',
    'スクリーンショット 2024-03-01 10.00.00.png',
    'ｶﾀｶﾅ半角.xlsx',
    'Отчёт №5 за март.pdf',
    'Rechnung_März.pdf',
    'Rechnung_Ma\u0308rz.pdf',
    '보고서.hwp',
    'فاتورة رقم ٥.pdf',
    'חשבונית.pdf',
    'می\u200Cخواهم.pdf', // Persian: the zero-width non-joiner is part of the word
    'क्षत्रिय.txt',
    'รายงาน.pdf',
    'team 👩\u200D💻 notes.txt',
    '100% done & #1 [final] {v2}, ok!.pdf',
    "O'Brien; copy = 2 + 2 ~ $5 @home ^_^ `x`.txt",
    'report;rm -rf.pdf',
    'Rapport_r\uFFFDsum\uFFFD.pdf', // a name damaged by a charset decoder is still a customer's file
    'console.log',
    'com10.txt',
    'a.b.c.d.tar.gz',
    ' leading space.pdf',
    'no extension',
    `${'x'.repeat(251)}.pdf`, // exactly 255 bytes
    `${'ä'.repeat(125)}.pdf`, // 254 bytes
    `${'報'.repeat(83)}.pd`, // 252 bytes
    `${'😀'.repeat(62)}.pdf`, // 252 bytes
  ];

  it('keeps ordinary names of every script and punctuation, through the whole check', async () => {
    for (const name of ORDINARY) {
      expect(fileNameProblem(name), name).toBeNull();
    }
    const parts = await Promise.all(ORDINARY.map((name) => part(name, Buffer.from('plain bytes, no magic'))));
    const r = await checkAttachments(parts, policy(), sniff);
    expect(r.dropped.map((d) => [d.part.filename, d.detail])).toEqual([]);
    expect(r.kept.map((p) => p.filename)).toEqual(ORDINARY);
  });

  /** Each unsafe or unsaveable name with the rule it breaks. */
  const UNSAFE: [string, FileNameRule][] = [
    ['', 'empty'],
    ['../../etc/passwd.pdf', 'dot-segment'],
    ['..\\..\\Startup\\run.pdf', 'dot-segment'],
    ['docs/../x.pdf', 'dot-segment'],
    ['dir/report.pdf', 'path-separator'],
    ['dir\\report.pdf', 'path-separator'],
    ['report\r\nX-Injected: 1.pdf', 'control-character'],
    ['report\u0007.pdf', 'control-character'],
    ['invoice.pdf\u0000.exe', 'control-character'],
    ['report\u007F.pdf', 'control-character'],
    ['report\u0085.pdf', 'control-character'],
    ['report\u009B31m.pdf', 'control-character'],
    ['report\u2028.pdf', 'line-separator'],
    ['report\u2029.pdf', 'line-separator'],
    ['invoice\u202Egpj.exe', 'bidi-control'],
    ['invoice\u202Dfdp.exe', 'bidi-control'],
    ['invoice\u2067gpj.exe\u2069', 'bidi-control'],
    ['invoice\u200Fx.pdf', 'bidi-control'],
    ['invoice\u061Cx.pdf', 'bidi-control'],
    ['report\u200B.pdf', 'invisible-character'],
    ['\uFEFFreport.pdf', 'invisible-character'],
    ['re\u00ADport.pdf', 'invisible-character'],
    ['report\u{E0041}\u{E0042}.pdf', 'invisible-character'],
    ['report\uFFFE.pdf', 'noncharacter'],
    ['report\u{10FFFF}.pdf', 'noncharacter'],
    ['report\uFDD0.pdf', 'noncharacter'],
    ['report\uD800.pdf', 'unpaired-surrogate'],
    ['report\uDC00.pdf', 'unpaired-surrogate'],
    ['a<b.pdf', 'windows-forbidden'],
    ['a>b.pdf', 'windows-forbidden'],
    ['report.pdf:evil.exe', 'windows-forbidden'],
    ['say "hi".pdf', 'windows-forbidden'],
    ['a|b.pdf', 'windows-forbidden'],
    ['why?.pdf', 'windows-forbidden'],
    ['*.pdf', 'windows-forbidden'],
    ['.', 'only-dots'],
    ['..', 'only-dots'],
    ['....', 'only-dots'],
    ['.bashrc.pdf', 'leading-dot'],
    ['.htaccess', 'leading-dot'],
    ['report.pdf.', 'trailing-dot-or-space'],
    ['report.exe ', 'trailing-dot-or-space'],
    ['report.exe . .', 'trailing-dot-or-space'],
    ['nul.pdf', 'windows-device'],
    ['CON', 'windows-device'],
    ['con.tar.gz', 'windows-device'],
    ['Com1.jpg', 'windows-device'],
    ['LPT9', 'windows-device'],
    ['com¹.txt', 'windows-device'],
    ['CON  .txt', 'windows-device'],
    ['conin$.txt', 'windows-device'],
    [`${'a'.repeat(296)}.pdf`, 'too-long'],
    [`${'a'.repeat(252)}.pdf`, 'too-long'], // 256 bytes
    [`${'ä'.repeat(126)}.pdf`, 'too-long'], // 256 bytes in UTF-8 (130 characters)
    [`${'報'.repeat(84)}.pdf`, 'too-long'], // 256 bytes (88 characters)
    [`${'😀'.repeat(63)}.pdf`, 'too-long'], // 256 bytes
  ];

  it.each(UNSAFE)('refuses %j: %s', (name, rule) => {
    expect(fileNameProblem(name)?.rule).toBe(rule);
    expect(fileNameProblem(name, 'strict')?.rule).toBe(rule);
  });

  it('drops each of them with FILE_NAME_INVALID and the reference’s text, under both rule sets', async () => {
    for (const fileNames of ['safe', 'strict']) {
      const parts = await Promise.all(UNSAFE.map(([name]) => part(name, PDF)));
      const r = await checkAttachments(parts, policy({ fileNames }), sniff);
      expect(r.kept).toEqual([]);
      expect(r.dropped.map((d) => [d.code, d.message])).toEqual(
        UNSAFE.map(() => ['FILE_NAME_INVALID', 'Attachment file name is invalid']),
      );
      expect(r.dropped.map((d) => d.detail)).toEqual(UNSAFE.map(([name]) => fileNameProblem(name)?.detail));
    }
  });

  it('keeps 3,000 generated names from 13 scripts, under the safe rule', () => {
    const seed = 20240301;
    const rand = prng(seed);
    for (let i = 0; i < 3000; i++) {
      const name = generatedName(rand);
      expect(fileNameProblem(name), `seed ${seed}, name ${JSON.stringify(name)}`).toBeNull();
    }
  });

  it('refuses any of them with one unsafe element injected at a random position, naming that rule', () => {
    const seed = 10_2024;
    const rand = prng(seed);
    let checked = 0;
    for (const [rule, elements] of INJECTED) {
      for (const element of elements) {
        for (let i = 0; i < 20; i++) {
          const { name, at } = inject(generatedName(rand), element, rand);
          const problem = fileNameProblem(name);
          const label = `seed ${seed}: ${JSON.stringify(name)} (U+${element.codePointAt(0)?.toString(16)} at ${at})`;
          expect(problem?.rule, label).toBe(rule);
          expect(problem?.detail, label).toMatch(
            rule === 'path-separator' || rule === 'windows-forbidden'
              ? `'${element}'`
              : (element.codePointAt(0)?.toString(16).toUpperCase() ?? '?'),
          );
          checked++;
        }
      }
    }
    expect(checked).toBe(20 * INJECTED.reduce((n, [, e]) => n + e.length, 0));
  });

  it('refuses every Windows device name, any case, any extension, with trailing spaces', () => {
    const rand = prng(77);
    const devices = ['CON', 'PRN', 'AUX', 'NUL', 'CONIN$', 'CONOUT$'];
    for (const d of ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '¹', '²', '³'])
      devices.push(`COM${d}`, `LPT${d}`);
    for (const device of devices) {
      for (let i = 0; i < 10; i++) {
        const cased = Array.from(device, (c) => (rand() < 0.5 ? c.toLowerCase() : c)).join('');
        const spaces = ' '.repeat(Math.floor(rand() * 3));
        const ext = i === 0 ? '' : `.${generatedName(rand).replace(/[ .]+$/, '') || 'x'}`;
        const name = `${cased}${spaces}${ext}`;
        const problem = fileNameProblem(name);
        // "CON " (no extension) ends with a space: that rule comes first; both refuse it
        expect(problem?.rule, JSON.stringify(name)).toBe(
          ext === '' && spaces ? 'trailing-dot-or-space' : 'windows-device',
        );
      }
      // a longer word that starts with a device name is an ordinary name
      expect(fileNameProblem(`${device}sole.txt`)).toBeNull();
    }
  });

  it('refuses generated names ending in dots and spaces, and any name over 255 UTF-8 bytes', () => {
    const rand = prng(5);
    for (let i = 0; i < 500; i++) {
      const name = generatedName(rand);
      const tail = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => (rand() < 0.5 ? '.' : ' ')).join(
        '',
      );
      expect(fileNameProblem(`${name}${tail}`)?.rule, JSON.stringify(name + tail)).toBe(
        'trailing-dot-or-space',
      );
      let long = name;
      while (Buffer.byteLength(long) <= 255) long = `${generatedName(rand).replace(/[ .]+$/, '')}${long}`;
      expect(fileNameProblem(long)?.rule, JSON.stringify(long)).toBe('too-long');
    }
  });

  it('normalising a safe name to NFC never makes it unsafe (every code point walked)', () => {
    let changed = 0;
    const madeUnsafe: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const name = `a${String.fromCodePoint(cp)}b.pdf`;
      const nfc = name.normalize('NFC');
      if (nfc === name) continue;
      changed++;
      if (fileNameProblem(name) === null && fileNameProblem(nfc) !== null)
        madeUnsafe.push(`U+${cp.toString(16)}`);
    }
    expect(madeUnsafe).toEqual([]);
    // the code points NFC changes here: singletons such as U+212A KELVIN SIGN, and marks that compose with 'a'
    expect(changed).toBeGreaterThan(1000);
  });

  describe('the strict rule (fileNames: "strict")', () => {
    it('keeps only letters, digits, marks, dot, hyphen, underscore and space', () => {
      for (const name of [
        'report.pdf',
        'Scan 2024-01_v2.pdf',
        'Rechnung_Ma\u0308rz.pdf',
        '報告.pdf',
        'Отчёт.pdf',
      ]) {
        expect(fileNameProblem(name, 'strict'), name).toBeNull();
      }
      for (const name of [
        'poster (8).jpg',
        'Capture d’écran.png',
        'report;rm -rf.pdf',
        'a&b.pdf',
        '会议：纪要.docx',
      ]) {
        expect(fileNameProblem(name, 'strict')?.rule, name).toBe('strict-character');
        expect(fileNameProblem(name, 'safe'), name).toBeNull();
      }
    });

    it('drops a generated name with any other character, with the reference’s text', async () => {
      const rand = prng(31);
      const pol = policy({ fileNames: 'strict' });
      const names: string[] = [];
      for (let i = 0; i < 300; i++) {
        const name = generatedName(rand);
        const outside = Array.from(name).find((c) => !/^[\p{L}\p{M}\p{N}._\- ]$/u.test(c));
        expect(fileNameProblem(name, 'strict')?.rule ?? null, JSON.stringify(name)).toBe(
          outside === undefined ? null : 'strict-character',
        );
        if (outside !== undefined && names.length < 20) names.push(name);
      }
      const r = await checkAttachments(await Promise.all(names.map((n) => part(n, PDF))), pol, sniff);
      expect(r.dropped.map((d) => [d.code, d.message])).toEqual(
        names.map(() => ['FILE_NAME_INVALID', 'Attachment file name is invalid']),
      );
      expect(await verdict(await part('poster (8).jpg', PNG), pol)).toEqual({
        code: 'FILE_NAME_INVALID',
        message: 'Attachment file name is invalid',
      });
      expect(await verdict(await part('poster (8).png', PNG))).toBe('kept');
    });
  });
});

describe('content vs extension', () => {
  it('drops a PNG named .txt (the reference’s "Alter.txt")', async () => {
    expect(await verdict(await part('Alter.txt', PNG, { contentType: 'text/plain' }))).toEqual({
      code: 'CONTENT_TYPE_MISMATCH',
      message: 'Attachment files contain invalid content type',
    });
  });

  it('drops an EXE (MZ/PE) named .pdf, and one without any extension', async () => {
    expect(await verdict(await part('invoice.pdf', peExecutable()))).toMatchObject({
      code: 'CONTENT_TYPE_MISMATCH',
    });
    expect(await verdict(await part('invoice', peExecutable()))).toMatchObject({
      code: 'CONTENT_TYPE_MISMATCH',
    });
  });

  it('keeps matching content, aliases and text types decided by extension', async () => {
    expect(await verdict(await part('report.pdf', PDF))).toBe('kept');
    expect(await verdict(await part('logo.png', PNG))).toBe('kept');
    expect(await verdict(await part('server.log', Buffer.from('GET / 200\n')))).toBe('kept');
    expect(await verdict(await part('data.csv', Buffer.from('a;b\n1;2\n')))).toBe('kept');
    expect(await verdict(await part('feed.xml', Buffer.from('<?xml version="1.0"?><a/>')))).toBe('kept');
    expect(await verdict(await part('invite.ics', Buffer.from('BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n')))).toBe(
      'kept',
    );
  });

  it('a text file of "G"s is not an MPEG transport stream (0x47 every 188 bytes): kept', async () => {
    expect(await verdict(await part('log-0.txt', Buffer.alloc(20_000, 'G')))).toBe('kept');
  });

  it('keeps unsniffable content under a binary extension (file-type knows no signature for it)', async () => {
    expect(await verdict(await part('export.dat', Buffer.from('plain bytes without any magic')))).toBe(
      'kept',
    );
    expect(await verdict(await part('notes.pdf', Buffer.from('not really a pdf, but no signature')))).toBe(
      'kept',
    );
  });

  it('drops a PNG under another binary extension', async () => {
    expect(await verdict(await part('contract.docx', PNG))).toMatchObject({ code: 'CONTENT_TYPE_MISMATCH' });
  });
});

describe('extension lists', () => {
  it('denies the default list (.exe, .js …) by default', async () => {
    expect(DEFAULT_ATTACHMENT_POLICY.deniedExtensions).toEqual(
      expect.arrayContaining(['exe', 'js', 'bat', 'ps1', 'jar', 'msi']),
    );
    expect(await verdict(await part('setup.exe', peExecutable()))).toEqual({
      code: 'EXTENSION_RESTRICTED',
      message: 'Attachment files contain invalid extensions',
    });
    expect(await verdict(await part('invoice.pdf.js', Buffer.from('WScript.Echo(1)')))).toMatchObject({
      code: 'EXTENSION_RESTRICTED',
    });
    expect(await verdict(await part('SETUP.EXE', peExecutable()))).toMatchObject({
      code: 'EXTENSION_RESTRICTED',
    });
  });

  it('an allow-list admits only its extensions; deny wins over allow; an empty allow-list allows all', async () => {
    const allowPdf = policy({ allowedExtensions: ['.PDF', 'png'] });
    expect(allowPdf.allowedExtensions).toEqual(['pdf', 'png']);
    expect(await verdict(await part('report.pdf', PDF), allowPdf)).toBe('kept');
    expect(await verdict(await part('notes.txt', Buffer.from('hi')), allowPdf)).toMatchObject({
      code: 'EXTENSION_RESTRICTED',
    });
    expect(await verdict(await part('README', Buffer.from('hi')), allowPdf)).toMatchObject({
      code: 'EXTENSION_RESTRICTED',
    });
    const both = policy({ allowedExtensions: ['pdf'], deniedExtensions: ['pdf'] });
    expect(await verdict(await part('report.pdf', PDF), both)).toMatchObject({
      code: 'EXTENSION_RESTRICTED',
    });
    const open = policy({ allowedExtensions: [], deniedExtensions: [] });
    expect(await verdict(await part('setup.exe', peExecutable()), open)).toBe('kept');
  });
});

describe('empty and oversize files', () => {
  it('drops an empty file', async () => {
    expect(await verdict(await part('empty.txt', Buffer.alloc(0)))).toEqual({
      code: 'EMPTY_FILE',
      message: 'Attachment contains empty files',
    });
  });

  it('drops a file over maxSizeMb; -1 is unlimited', async () => {
    const big = await part('big.pdf', Buffer.concat([PDF, Buffer.alloc(Math.round(1.5 * MB))]));
    expect(await verdict(big, policy({ maxSizeMb: 1 }))).toEqual({
      code: 'TOO_LARGE',
      message: 'Attachment size exceeds the configured limit',
    });
    expect(await verdict(big, policy({ maxSizeMb: 2 }))).toBe('kept');
    expect(await verdict(big, policy({ maxSizeMb: -1 }))).toBe('kept');
    expect(policy().maxSizeMb).toBe(25);
  });
});

describe('inline images', () => {
  it('against the 3 MB default: 4 MB dropped, 2 MB kept; -1 skips the size check', async () => {
    const four = await part('image001.png', bigPng(4 * MB), { contentType: 'image/png', inline: true });
    const two = await part('image002.png', bigPng(2 * MB), { contentType: 'image/png', inline: true });
    const r = await checkAttachments([four, two], policy(), sniff);
    expect(r.kept).toEqual([two]);
    expect(r.dropped).toEqual([
      expect.objectContaining({
        part: four,
        code: 'INLINE_TOO_LARGE',
        message: DROP_MESSAGES.INLINE_TOO_LARGE,
      }),
    ]);
    expect(dropReason(r.dropped[0]!)).toBe(
      "dropped inline image 'image001.png': Inline image size exceeds the configured limit",
    );
    expect(await verdict(four, policy({ inlineImageMaxSizeMb: -1 }))).toBe('kept');
    // an attachment (not inline) of 4 MB is measured against maxSizeMb (25), not the inline limit
    const attached = await part('photo.png', bigPng(4 * MB), { contentType: 'image/png' });
    expect(await verdict(attached)).toBe('kept');
  });
});

describe('switches', () => {
  it('skipAttachmentValidation keeps every attachment, but still checks inline images', async () => {
    const pol = policy({ skipAttachmentValidation: true });
    expect(await verdict(await part('setup.exe', peExecutable()), pol)).toBe('kept');
    expect(await verdict(await part('Alter.txt', PNG), pol)).toBe('kept');
    const inline = await part('image003.png', bigPng(4 * MB), { contentType: 'image/png', inline: true });
    expect(await verdict(inline, pol)).toMatchObject({ code: 'INLINE_TOO_LARGE' });
  });

  it('skipInlineImageValidation keeps every inline image, but still checks attachments', async () => {
    const pol = policy({ skipInlineImageValidation: true });
    const inline = await part('image004.png', bigPng(4 * MB), { contentType: 'image/png', inline: true });
    expect(await verdict(inline, pol)).toBe('kept');
    expect(await verdict(await part('empty.txt', Buffer.alloc(0)), pol)).toMatchObject({
      code: 'EMPTY_FILE',
    });
  });
});

describe('policy validation', () => {
  it('fills in the defaults', () => {
    expect(resolveAttachmentPolicy({})).toEqual(DEFAULT_ATTACHMENT_POLICY);
    expect(resolveAttachmentPolicy({ maxSizeMb: null })).toEqual(DEFAULT_ATTACHMENT_POLICY);
    expect(resolveAttachmentPolicy({ maxSizeMb: 0.5 }).maxSizeMb).toBe(0.5);
  });

  it('fileNames is "safe" by default, takes "strict", and refuses anything else', () => {
    expect(DEFAULT_ATTACHMENT_POLICY.fileNames).toBe('safe');
    expect(resolveAttachmentPolicy({ fileNames: 'strict' }).fileNames).toBe('strict');
    expect(resolveAttachmentPolicy({ fileNames: null }).fileNames).toBe('safe');
    for (const bad of ['loose', 'STRICT', '', true, 1, ['strict']]) {
      let caught: unknown;
      try {
        resolveAttachmentPolicy({ fileNames: bad });
      } catch (err) {
        caught = err;
      }
      expect(isMailintakeError(caught) && caught.details.fields, JSON.stringify(bad)).toEqual([
        { field: 'fileNames', message: expect.stringContaining('"safe" or "strict"') },
      ]);
    }
  });

  it('rejects 0, NaN, Infinity, negatives other than -1 and wrong types, naming every field', () => {
    let caught: unknown;
    try {
      resolveAttachmentPolicy({
        maxSizeMb: 0,
        inlineImageMaxSizeMb: -2,
        allowedExtensions: 'pdf',
        deniedExtensions: ['exe', '../x'],
        skipAttachmentValidation: 'yes',
        colour: 'red',
      });
    } catch (err) {
      caught = err;
    }
    expect(isMailintakeError(caught) && caught.code).toBe('INVALID_SETTINGS');
    const fields = isMailintakeError(caught) ? (caught.details.fields ?? []).map((f) => f.field) : [];
    expect(fields.sort()).toEqual(
      [
        'colour',
        'maxSizeMb',
        'inlineImageMaxSizeMb',
        'allowedExtensions',
        'deniedExtensions.1',
        'skipAttachmentValidation',
      ].sort(),
    );
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, -0.5, '5']) {
      expect(() => resolveAttachmentPolicy({ inlineImageMaxSizeMb: bad })).toThrow(/inlineImageMaxSizeMb/);
    }
    expect(() => resolveAttachmentPolicy([])).toThrow(/attachmentPolicy/);
  });
});
