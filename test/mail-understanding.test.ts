import { buffer } from 'node:stream/consumers';
import iconv from 'iconv-lite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildTnef } from './kit/tnef.js';
import { uuencode } from './kit/uuencode.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Mail understanding end to end: mails with raw 8-bit headers in three charsets, charset labels that lie, a
 * uuencoded file (as a part and inside the text), and a winmail.dat, delivered to a real Dovecot and taken in
 * on both engines. The requests show the subjects, names and file names as written (no U+FFFD), every file
 * downloads byte for byte as it was sent, and the intake log says which charset was chosen and why.
 */

const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
const NOTES = Buffer.from('Meeting notes\nline two\n');
function peExecutable(): Buffer {
  const exe = Buffer.alloc(1024);
  exe.write('MZ', 0, 'latin1');
  exe.writeUInt32LE(0x80, 0x3c);
  exe.write('PE\0\0', 0x80, 'latin1');
  return exe;
}

const b = (s: string) => Buffer.from(s, 'latin1');

function base64Lines(data: Buffer): string {
  return data.toString('base64').replace(/.{76}/g, '$&\r\n');
}

/** Raw Shift_JIS Subject, From name and file name; a Shift_JIS body labelled ISO-2022-JP. */
function japaneseMail(): Buffer {
  const sj = (s: string) => iconv.encode(s, 'Shift_JIS');
  return Buffer.concat([
    b('From: "'),
    sj('山田 太郎'),
    b('" <taro@example.jp>\r\nTo: support@example.test\r\nSubject: '),
    sj('請求書について（至急）'),
    b(
      '\r\nMessage-ID: <sjis-1@example.jp>\r\nDate: Mon, 07 Dec 2026 09:00:00 +0900\r\nMIME-Version: 1.0\r\n',
    ),
    b(
      'Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n',
    ),
    sj('お世話になっております。請求書の再発行をお願いします。'),
    b(
      '\r\n--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="',
    ),
    sj('請求書.pdf'),
    b(`"\r\n\r\n${base64Lines(PDF)}\r\n--b1--\r\n`),
  ]);
}

/** Raw windows-1252 Subject and From name; a Latin-1 body labelled UTF-8 with a uuencoded file in it; an x-uuencode part. */
function latinMail(): Buffer {
  const w = (s: string) => iconv.encode(s, 'windows-1252');
  return Buffer.concat([
    b('From: '),
    w('François Müller'),
    b(' <francois@example.fr>\r\nTo: support@example.test\r\nSubject: '),
    w('Facture n° 12 – déjà payée'),
    b(
      '\r\nMessage-ID: <latin-1@example.fr>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n',
    ),
    b(
      'Content-Type: multipart/mixed; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n',
    ),
    w('Voilà la facture, déjà réglée.\r\n\r\n'),
    b(uuencode(PNG, 'capture.png', '\r\n')),
    w('Merci, à bientôt.\r\n'),
    b('--b2\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n'),
    b(uuencode(PDF, 'recu.pdf', '\r\n')),
    b('--b2--\r\n'),
  ]);
}

/** Raw UTF-8 headers (valid: nothing to decide) and a winmail.dat with two files in it. */
function outlookMail(dat: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(
      'From: Zoë Ørsted <zoe@example.dk>\r\nTo: support@example.test\r\nSubject: Tilbud på printere\r\n',
      'utf8',
    ),
    b('Message-ID: <tnef-1@example.dk>\r\nDate: Mon, 07 Dec 2026 11:00:00 +0100\r\nMIME-Version: 1.0\r\n'),
    b(
      'Content-Type: multipart/mixed; boundary=b3\r\n\r\n--b3\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n',
    ),
    b(
      '--b3\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\nContent-Transfer-Encoding: base64\r\n',
    ),
    b(`Content-Disposition: attachment; filename="winmail.dat"\r\n\r\n${base64Lines(dat)}\r\n--b3--\r\n`),
  ]);
}

describe.each(ENGINES)('mail understanding end to end on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'mu', password: 'mu-pw' }] });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  it('raw 8-bit headers, lying labels, uuencode and winmail.dat: right text, identical files, decisions in the log', async () => {
    const dat = buildTnef([
      { title: 'TILBUD~1.PDF', longName: 'Tilbud på printere.pdf', mimeType: 'application/pdf', data: PDF },
      { title: 'notes.txt', longName: 'notes.txt', mimeType: 'text/plain', data: NOTES },
      // unpacked files meet the attachment checks like any other: the default policy denies .exe
      {
        title: 'setup.exe',
        longName: 'setup.exe',
        mimeType: 'application/octet-stream',
        data: peExecutable(),
      },
    ]);
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'mu', 'mu', { idle: false }));
    await deliverMaildir(dovecot, 'mu', [japaneseMail(), latinMail(), outlookMail(dat)]);

    const [summary] = await rt.services.fetch.once({ mailbox: 'mu' });
    expect(summary).toMatchObject({ fetched: 3, created: 3, errored: 0 });
    expect((await listInbox(dovecot, 'mu')).every((m) => m.flags.includes('\\Seen'))).toBe(true);

    const list = await rt.services.requests.list({});
    const bySubject = new Map(list.items.map((r) => [r.subject, r.id]));
    const show = async (subject: string) => {
      const id = bySubject.get(subject);
      expect(id, `a request "${subject}" among ${[...bySubject.keys()].join(' | ')}`).toBeDefined();
      return rt.services.requests.show(id!);
    };
    const download = async (id: number) => buffer((await rt.services.requests.attachment(id)).open());

    const jp = await show('請求書について（至急）');
    expect(jp.requester).toMatchObject({ address: 'taro@example.jp', name: '山田 太郎' });
    expect(jp.text).toContain('お世話になっております。請求書の再発行をお願いします。');
    expect(jp.attachments.map((a) => a.filename)).toEqual(['請求書.pdf']);
    expect(await download(jp.attachments[0]!.id)).toEqual(PDF);

    const fr = await show('Facture n° 12 – déjà payée');
    expect(fr.requester).toMatchObject({ address: 'francois@example.fr', name: 'François Müller' });
    expect(fr.text).toContain('Voilà la facture, déjà réglée.');
    expect(fr.text).toContain('[uuencoded file capture.png: kept as an attachment]');
    expect(fr.text).toContain('Merci, à bientôt.');
    expect(fr.attachments.map((a) => [a.filename, a.contentType])).toEqual([
      ['recu.pdf', 'application/pdf'],
      ['capture.png', 'image/png'],
    ]);
    expect(await download(fr.attachments[0]!.id)).toEqual(PDF);
    expect(await download(fr.attachments[1]!.id)).toEqual(PNG);

    const dk = await show('Tilbud på printere');
    expect(dk.requester).toMatchObject({ address: 'zoe@example.dk', name: 'Zoë Ørsted' });
    expect(dk.attachments.map((a) => [a.filename, a.contentType])).toEqual([
      ['winmail.dat', 'application/ms-tnef'],
      ['Tilbud på printere.pdf', 'application/pdf'],
      ['notes.txt', 'text/plain'],
    ]);
    expect(await download(dk.attachments[0]!.id)).toEqual(dat);
    expect(await download(dk.attachments[1]!.id)).toEqual(PDF);
    expect(await download(dk.attachments[2]!.id)).toEqual(NOTES);
    expect(dk.droppedAttachments.map((d) => [d.filename, d.code])).toEqual([
      ['setup.exe', 'EXTENSION_RESTRICTED'],
    ]);

    for (const r of [jp, fr, dk]) {
      expect(r.subject).not.toContain('\ufffd');
      expect(r.requester?.name).not.toContain('\ufffd');
      expect(r.text).not.toContain('\ufffd');
      for (const a of r.attachments) expect(a.filename).not.toContain('\ufffd');
    }

    const log = (await rt.services.log.list({ mailbox: 'mu' })).items;
    const reasonsOf = (subject: string) => log.find((e) => e.subject === subject)?.reasons ?? [];
    expect(reasonsOf('請求書について（至急）')).toEqual(
      expect.arrayContaining([
        'body charset ISO-2022-JP did not fit the bytes; decoded as Shift_JIS (detected)',
        'Subject: raw 8-bit bytes without a charset; decoded as Shift_JIS (detected)',
        'From: raw 8-bit bytes without a charset; decoded as Shift_JIS (detected)',
        'file name (Content-Disposition): raw 8-bit bytes without a charset; decoded as Shift_JIS (detected)',
      ]),
    );
    expect(reasonsOf('Facture n° 12 – déjà payée')).toEqual(
      expect.arrayContaining([
        'body charset UTF-8 did not fit the bytes; decoded as windows-1252 (detected)',
        'Subject: raw 8-bit bytes without a charset; decoded as windows-1252 (detected)',
        'From: raw 8-bit bytes without a charset; decoded as windows-1252 (detected)',
        'uuencoded part decoded: "recu.pdf"',
        'uuencoded file "capture.png" in the text body kept as an attachment',
      ]),
    );
    expect(reasonsOf('Tilbud på printere')).toEqual(
      expect.arrayContaining(['"winmail.dat" unpacked: 3 file(s); the winmail.dat is kept as well']),
    );
    expect(reasonsOf('Tilbud på printere').some((r) => r.includes('charset'))).toBe(false);
  });
});
