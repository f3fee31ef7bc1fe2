import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobStore } from '../blobs/blob-store.js';
import { blobSniffer } from '../blobs/sniff.js';
import { isMailintakeError } from '../errors.js';
import {
  type AttachmentPolicy,
  checkAttachments,
  DEFAULT_ATTACHMENT_POLICY,
  DROP_MESSAGES,
  dropReason,
  resolveAttachmentPolicy,
  type Sniff,
} from './attachment-checks.js';
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
  it('keeps plain, spaced and international names', async () => {
    for (const name of ['report.pdf', 'Scan 2024-01_v2.pdf', 'Rechnung_März.pdf', '報告.pdf', 'Отчёт.pdf']) {
      expect(await verdict(await part(name, PDF)), name).toBe('kept');
    }
    // decomposed "ä" (a + U+0308 COMBINING DIAERESIS), as macOS writes it
    expect(await verdict(await part('Rechnung_Ma\u0308rz.pdf', PDF))).toBe('kept');
  });

  it.each([
    ['../../etc/passwd.pdf', 'unix path traversal'],
    ['..\\..\\Startup\\run.pdf', 'windows path traversal'],
    ['dir/report.pdf', 'a slash'],
    ['report\r\nX-Injected: 1.pdf', 'CR/LF'],
    ['report\u0007.pdf', 'a control character'],
    ['invoice.pdf\u0000.exe', 'NUL'],
    ['.bashrc.pdf', 'a leading dot'],
    ['invoice\u202Efdp.pdf', 'right-to-left override'],
    ['report.pdf.', 'a trailing dot'],
    ['nul.pdf', 'a Windows device name'],
    [`${'a'.repeat(296)}.pdf`, 'a 300-byte name'],
    [`${'ä'.repeat(126)}.pdf`, 'a name of 256 bytes in UTF-8 (130 characters)'],
    ['report;rm -rf.pdf', 'a semicolon'],
  ])('drops %j (%s) with FILE_NAME_INVALID', async (name) => {
    expect(await verdict(await part(name, PDF))).toEqual({
      code: 'FILE_NAME_INVALID',
      message: 'Attachment file name is invalid',
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
