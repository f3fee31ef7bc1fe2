import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import type { OutboxAttempt } from '../src/notify/outbox.js';
import { conditions } from './kit/conditions.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type ReceivedMail, type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The reference's "Email notification for dropped attachment/inline image", end to end: real Dovecot, real
 * SMTP server on loopback, both engines. The email is recorded in the mail's own commit (outbox) and switched
 * per portal: `notifyOnDrop` for attachments, `notifyOnInlineImageDrop` for inline images.
 */

const MB = 1024 * 1024;
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
const EXE = (() => {
  const b = Buffer.alloc(1024);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x80, 0x3c);
  b.write('PE\0\0', 0x80, 'latin1');
  return b;
})();

/** A mail with a kept PDF, a denied .exe and an inline image over the 3 MB limit. */
const mailWithDrops = (subject: string) =>
  buildMail({
    from: 'Customer <customer@example.test>',
    subject,
    html: '<p>See <img src="cid:big@x"></p>',
    attachments: [
      { filename: 'report.pdf', contentType: 'application/pdf', content: PDF },
      { filename: 'setup.exe', contentType: 'application/octet-stream', content: EXE },
      {
        filename: 'big.png',
        contentType: 'image/png',
        content: Buffer.concat([PNG, Buffer.alloc(4 * MB - PNG.length)]),
        inlineCid: 'big@x',
      },
    ],
  });

describe.each(ENGINES)('drop notification emails on %s', (engine) => {
  let dovecot: DovecotServer;
  let smtpServer: SmtpTestServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  const attempts: OutboxAttempt[] = [];
  const outbox = conditions();

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'drops', password: 'drops-pw' }] });
    smtpServer = await startSmtpServer({ tls: 'starttls' });
    // behind a proxy: the links in the mails are the public address's
    const fresh = await freshConfig(engine, { MAILINTAKE_PUBLIC_URL: 'https://helpdesk.example.test' });
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config, {
      onOutboxAttempt: (a) => {
        attempts.push(a);
        outbox.recheck();
      },
    });
    await rt.services.smtp.set({
      host: '127.0.0.1',
      port: smtpServer.port,
      from: 'helpdesk@example.test',
      caFile: smtpServer.caFile,
    });
    await rt.services.notificationRules.set({
      event: 'attachment-dropped',
      recipients: ['admins@example.test'],
    });
    await rt.services.notificationRules.set({
      event: 'inline-image-dropped',
      portal: 'default',
      recipients: ['designers@example.test'],
    });
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'drops', 'drops'));
  });
  afterAll(async () => {
    await rt?.close();
    await smtpServer?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  /** Takes one mail in; resolves with its request id and the notification mails it caused. */
  const takeIn = async (subject: string): Promise<{ requestId: number; mails: ReceivedMail[] }> => {
    const rows = (s: { sent: number; pending: number; retrying: number; failed: number }) =>
      s.sent + s.pending + s.retrying + s.failed;
    const mailsBefore = smtpServer.mails.length;
    const rowsBefore = rows(await rt.services.outbox.status());
    await deliverMaildir(dovecot, 'drops', [mailWithDrops(subject)]);
    expect((await rt.services.fetch.once({ mailbox: 'drops' }))[0]).toMatchObject({ created: 1, errored: 0 });
    const requestId = (await rt.services.requests.list({ limit: 1 })).items[0]!.id;
    // the commit recorded the notification mails; wait until the outbox has sent every one of them
    const total = rows(await rt.services.outbox.status());
    await outbox.until(() => attempts.filter((a) => a.ok).length >= total);
    expect(await rt.services.outbox.status()).toMatchObject({
      sent: total,
      pending: 0,
      retrying: 0,
      failed: 0,
    });
    await smtpServer.waitFor(mailsBefore + (total - rowsBefore));
    expect(smtpServer.mails).toHaveLength(mailsBefore + (total - rowsBefore));
    return { requestId, mails: smtpServer.mails.slice(mailsBefore) };
  };

  it('mails each kind of drop to its event’s recipients, listing the items and the request', async () => {
    const { requestId, mails } = await takeIn('Invoice with extras');
    const request = await rt.services.requests.show(requestId);
    expect(request.attachments.map((a) => a.filename)).toEqual(['report.pdf']);
    expect(request.droppedAttachments.map((d) => d.code).sort()).toEqual([
      'EXTENSION_RESTRICTED',
      'INLINE_TOO_LARGE',
    ]);

    const byEvent = new Map(mails.map((m) => [m.parsed.headers.get('x-mailintake-event'), m]));
    expect([...byEvent.keys()].sort()).toEqual(['attachment-dropped', 'inline-image-dropped']);
    const attachmentMail = byEvent.get('attachment-dropped')!;
    expect(attachmentMail.to).toEqual(['admins@example.test']);
    expect(attachmentMail.from).toBe('helpdesk@example.test');
    expect(attachmentMail.parsed.subject).toBe(
      `An attachment was dropped from request #${requestId}: Invoice with extras`,
    );
    expect(attachmentMail.parsed.text).toContain(
      "- dropped attachment 'setup.exe': Attachment files contain invalid extensions (EXTENSION_RESTRICTED:",
    );
    expect(attachmentMail.parsed.text).toContain('From: customer@example.test');
    expect(attachmentMail.parsed.text).toContain('mailbox "drops"');
    // the stable address of the request the mail went to, on the public URL
    expect(attachmentMail.parsed.text).toContain(`https://helpdesk.example.test/requests/${requestId}`);
    expect(attachmentMail.parsed.text).not.toContain('big.png');

    const imageMail = byEvent.get('inline-image-dropped')!;
    expect(imageMail.to).toEqual(['designers@example.test']);
    expect(imageMail.parsed.subject).toBe(
      `An inline image was dropped from request #${requestId}: Invoice with extras`,
    );
    expect(imageMail.parsed.text).toContain(
      "- dropped inline image 'big.png': Inline image size exceeds the configured limit (INLINE_TOO_LARGE:",
    );
    expect(imageMail.parsed.text).not.toContain('setup.exe');
    // drop emails are not bell notifications
    expect((await rt.services.notifications.list({})).total).toBe(0);
  });

  it('notifyOnDrop off: no attachment email; the inline-image email still goes out', async () => {
    await rt.services.portals.update('default', { attachmentPolicy: { notifyOnDrop: false } });
    const dropsBefore = (await rt.services.systemLog.list({ category: 'attachment-dropped' })).total;
    const { requestId, mails } = await takeIn('Attachment switch off');
    expect(mails.map((m) => [m.parsed.headers.get('x-mailintake-event'), m.to])).toEqual([
      ['inline-image-dropped', ['designers@example.test']],
    ]);
    expect(mails[0]!.parsed.subject).toBe(
      `An inline image was dropped from request #${requestId}: Attachment switch off`,
    );
    // the drops themselves are recorded as always
    expect((await rt.services.systemLog.list({ category: 'attachment-dropped' })).total).toBe(
      dropsBefore + 2,
    );
  });

  it('notifyOnInlineImageDrop off (the separate switch): only the attachment email', async () => {
    await rt.services.portals.update('default', {
      attachmentPolicy: { notifyOnDrop: true, notifyOnInlineImageDrop: false },
    });
    const { mails } = await takeIn('Inline switch off');
    expect(mails.map((m) => [m.parsed.headers.get('x-mailintake-event'), m.to])).toEqual([
      ['attachment-dropped', ['admins@example.test']],
    ]);
  });

  it('both switches off: no email at all, while the request still lists the dropped items', async () => {
    await rt.services.portals.update('default', { attachmentPolicy: { notifyOnDrop: false } });
    const sentBefore = (await rt.services.outbox.status()).sent;
    const { requestId, mails } = await takeIn('Both switches off');
    expect(mails).toEqual([]);
    expect(await rt.services.outbox.status()).toMatchObject({ sent: sentBefore, pending: 0, retrying: 0 });
    expect(
      (await rt.services.requests.show(requestId)).droppedAttachments.map((d) => d.filename).sort(),
    ).toEqual(['big.png', 'setup.exe']);
    // null restores the defaults: notifications on again
    const restored = await rt.services.portals.update('default', {
      attachmentPolicy: { notifyOnDrop: null, notifyOnInlineImageDrop: null },
    });
    expect(restored.attachmentPolicy).toMatchObject({ notifyOnDrop: true, notifyOnInlineImageDrop: true });
  });
});
