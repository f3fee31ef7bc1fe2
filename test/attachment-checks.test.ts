import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { main } from '../src/cli/program.js';
import type { DropEvent } from '../src/intake/fetch-mailbox.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Attachment and inline-image checks end to end: real Dovecot, real store (both engines), real files in the
 * mails. A dropped item never drops the mail; it is listed with the request, in the intake log and in the
 * system log, in the same transaction.
 */

const MB = 1024 * 1024;
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
function peExecutable(): Buffer {
  const b = Buffer.alloc(1024);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  return b;
}

describe.each(ENGINES)('attachment checks on real mail, %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  let env: Record<string, string>;
  const notified: DropEvent[] = [];
  const box = (name: string, user: string, extra: Record<string, unknown> = {}) =>
    imapsMailbox(dovecot, name, user, extra);

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['checks', 'strict'].map((n) => ({ name: n, password: `${n}-pw` })),
    });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    env = fresh.env;
    rt = await openRuntime(fresh.config, {
      notifyDrops: async (event) => {
        notified.push(event);
      },
    });
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  it('takes the mail in, keeps the PDF, drops a PNG named .txt, an empty file and an .exe', async () => {
    await rt.services.mailboxes.add(box('checks', 'checks'));
    await deliverMaildir(dovecot, 'checks', [
      buildMail({
        subject: 'Four files',
        messageId: 'four-files@example.test',
        attachments: [
          { filename: 'report.pdf', contentType: 'application/pdf', content: PDF },
          { filename: 'Alter.txt', contentType: 'text/plain', content: PNG },
          { filename: 'empty.log', contentType: 'text/plain', content: Buffer.alloc(0) },
          { filename: 'setup.exe', contentType: 'application/octet-stream', content: peExecutable() },
        ],
      }),
    ]);
    const [summary] = await rt.services.fetch.once({ mailbox: 'checks' });
    expect(summary).toMatchObject({ fetched: 1, created: 1, errored: 0 });
    // taken in, so acknowledged on the server like any other mail
    expect((await listInbox(dovecot, 'checks'))[0]!.flags).toContain('\\Seen');

    const list = await rt.services.requests.list({});
    expect(list.total).toBe(1);
    const req = await rt.services.requests.show(list.items[0]!.id);
    expect(req.attachments.map((a) => a.filename)).toEqual(['report.pdf']);
    expect(await text((await rt.services.requests.attachment(req.attachments[0]!.id)).open())).toBe(
      PDF.toString(),
    );
    expect(req.droppedAttachments.map((d) => [d.filename, d.code, d.message])).toEqual([
      ['Alter.txt', 'CONTENT_TYPE_MISMATCH', 'Attachment files contain invalid content type'],
      ['empty.log', 'EMPTY_FILE', 'Attachment contains empty files'],
      ['setup.exe', 'EXTENSION_RESTRICTED', 'Attachment files contain invalid extensions'],
    ]);
    expect(req.droppedAttachments[0]).toMatchObject({
      size: PNG.length,
      disposition: 'attachment',
      conversationId: null,
      detail: expect.stringContaining('png'),
    });
    expect(req.droppedAttachments[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);

    const log = await rt.services.log.list({ mailbox: 'checks' });
    expect(log.items[0]!.outcome).toBe('created');
    expect(log.items[0]!.reasons).toEqual(
      expect.arrayContaining([
        "dropped attachment 'Alter.txt': Attachment files contain invalid content type",
        "dropped attachment 'empty.log': Attachment contains empty files",
        "dropped attachment 'setup.exe': Attachment files contain invalid extensions",
      ]),
    );

    const sys = await rt.services.systemLog.list({ category: 'attachment-dropped' });
    expect(sys.total).toBe(3);
    expect(sys.items.map((e) => e.details.code).sort()).toEqual(
      ['CONTENT_TYPE_MISMATCH', 'EMPTY_FILE', 'EXTENSION_RESTRICTED'].sort(),
    );
    for (const e of sys.items) {
      expect(e).toMatchObject({ level: 'warn', category: 'attachment-dropped' });
      expect(e.details).toMatchObject({ requestId: req.id, mailbox: 'checks' });
      expect(e.message).toContain(`request #${req.id}`);
    }

    // the CLI shows the same: `requests show` lists the dropped items, `system-log` the entries
    let out = '';
    const cli = (args: string[]) => {
      out = '';
      const write = (t: string) => {
        out += t;
      };
      return main(args, { env, stdout: write, stderr: write });
    };
    expect(await cli(['requests', 'show', String(req.id)])).toBe(0);
    expect(out).toContain('Dropped attachments:');
    expect(out).toContain('Alter.txt');
    expect(out).toContain('CONTENT_TYPE_MISMATCH Attachment files contain invalid content type');
    expect(await cli(['system-log', '--category', 'attachment-dropped'])).toBe(0);
    expect(out).toContain("dropped attachment 'setup.exe': Attachment files contain invalid extensions");

    expect(notified).toHaveLength(1);
    expect(notified[0]).toMatchObject({ mailbox: 'checks', requestId: req.id, conversationId: null });
    expect(notified[0]!.dropped.map((d) => d.code)).toEqual([
      'CONTENT_TYPE_MISMATCH',
      'EMPTY_FILE',
      'EXTENSION_RESTRICTED',
    ]);
  });

  it('lists an inline image over 3 MB dropped on the conversation; one of 2 MB is kept', async () => {
    const pad = (size: number) => Buffer.concat([PNG, Buffer.alloc(size - PNG.length)]);
    await deliverMaildir(dovecot, 'checks', [
      buildMail({
        subject: 'Re: Four files',
        inReplyTo: 'four-files@example.test',
        html: '<p><img src="cid:big@x"> <img src="cid:small@x"></p>',
        attachments: [
          { filename: 'big.png', contentType: 'image/png', content: pad(4 * MB), inlineCid: 'big@x' },
          { filename: 'small.png', contentType: 'image/png', content: pad(2 * MB), inlineCid: 'small@x' },
        ],
      }),
    ]);
    const [summary] = await rt.services.fetch.once({ mailbox: 'checks' });
    expect(summary).toMatchObject({ fetched: 1, appended: 1, errored: 0 });
    const req = await rt.services.requests.show((await rt.services.requests.list({})).items[0]!.id);
    const conv = req.conversations[0]!;
    expect(conv.attachments.map((a) => [a.filename, a.disposition])).toEqual([['small.png', 'inline']]);
    expect(conv.droppedAttachments).toEqual([
      expect.objectContaining({ filename: 'big.png', code: 'INLINE_TOO_LARGE', disposition: 'inline' }),
    ]);
    const log = await rt.services.log.list({ mailbox: 'checks', limit: 1 });
    expect(log.items[0]!.reasons).toContain(
      "dropped inline image 'big.png': Inline image size exceeds the configured limit",
    );
  });

  it('records drops of several mails committed in one batch, each with its own request', async () => {
    const before = (await rt.services.systemLog.list({ category: 'attachment-dropped' })).total;
    await deliverMaildir(
      dovecot,
      'checks',
      [1, 2, 3].map((n) =>
        buildMail({
          subject: `batch ${n}`,
          attachments: [
            { filename: `tool${n}.exe`, contentType: 'application/octet-stream', content: peExecutable() },
          ],
        }),
      ),
    );
    const [summary] = await rt.services.fetch.once({ mailbox: 'checks' });
    expect(summary).toMatchObject({ fetched: 3, created: 3, errored: 0 });
    const items = (await rt.services.requests.list({ limit: 3 })).items;
    for (const r of items) {
      const detail = await rt.services.requests.show(r.id);
      const n = detail.subject.replace('batch ', '');
      expect(detail.droppedAttachments.map((d) => [d.filename, d.code])).toEqual([
        [`tool${n}.exe`, 'EXTENSION_RESTRICTED'],
      ]);
    }
    expect((await rt.services.systemLog.list({ category: 'attachment-dropped' })).total).toBe(before + 3);
  });

  it('a portal policy change (allow-list, max size) changes the outcome of the next mail', async () => {
    await rt.services.portals.add('strict');
    await rt.services.mailboxes.add(box('strict', 'strict', { portal: 'strict' }));
    const bigPdf = Buffer.concat([PDF, Buffer.alloc(2 * MB)]);
    const files = () => [
      { filename: 'small.pdf', contentType: 'application/pdf', content: PDF },
      { filename: 'big.pdf', contentType: 'application/pdf', content: bigPdf },
      { filename: 'logo.png', contentType: 'image/png', content: PNG },
    ];
    await deliverMaildir(dovecot, 'strict', [buildMail({ subject: 'before', attachments: files() })]);
    await rt.services.fetch.once({ mailbox: 'strict' });
    const before = await rt.services.requests.show(
      (await rt.services.requests.list({ portal: 'strict' })).items[0]!.id,
    );
    expect(before.attachments.map((a) => a.filename)).toEqual(['small.pdf', 'big.pdf', 'logo.png']);
    expect(before.droppedAttachments).toEqual([]);

    const invalid = await rt.services.portals
      .update('strict', { attachmentPolicy: { maxSizeMb: 0, allowedExtensions: 'pdf' } })
      .catch((e: unknown) => e);
    expect(invalid).toMatchObject({ code: 'INVALID_SETTINGS' });
    expect(
      (invalid as { details: { fields: { field: string }[] } }).details.fields.map((f) => f.field).sort(),
    ).toEqual(['allowedExtensions', 'maxSizeMb']);

    const updated = await rt.services.portals.update('strict', {
      attachmentPolicy: { allowedExtensions: ['pdf'], maxSizeMb: 1 },
    });
    expect(updated.attachmentPolicy).toMatchObject({
      allowedExtensions: ['pdf'],
      maxSizeMb: 1,
      inlineImageMaxSizeMb: 3,
    });

    await deliverMaildir(dovecot, 'strict', [buildMail({ subject: 'after', attachments: files() })]);
    await rt.services.fetch.once({ mailbox: 'strict' });
    const after = await rt.services.requests.show(
      (await rt.services.requests.list({ portal: 'strict' })).items[0]!.id,
    );
    expect(after.subject).toBe('after');
    expect(after.attachments.map((a) => a.filename)).toEqual(['small.pdf']);
    expect(after.droppedAttachments.map((d) => [d.filename, d.code])).toEqual([
      ['big.pdf', 'TOO_LARGE'],
      ['logo.png', 'EXTENSION_RESTRICTED'],
    ]);
    // the other portal's policy is untouched
    const other = (await rt.services.portals.list()).find((p) => p.name === 'default')!;
    expect(other.attachmentPolicy.allowedExtensions).toEqual([]);

    // null restores a default
    const reset = await rt.services.portals.update('strict', { attachmentPolicy: { maxSizeMb: null } });
    expect(reset.attachmentPolicy).toMatchObject({ maxSizeMb: 25, allowedExtensions: ['pdf'] });
  });
});
