import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatedOutOfOffice } from '../../test/kit/out-of-office.js';
import { parsedMail } from '../../test/kit/parsed-mail.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { machineKind, OWN_LOOP_HEADER, OWN_MESSAGE_ID_DOMAIN } from './machine.js';
import { parseMail } from './parse.js';
import type { ParsedMail } from './types.js';

const mail = parsedMail;

const DSN = 'multipart/report; report-type=delivery-status; boundary="b"';
const ours = { messageId: `mailintake-outbox-7-1700000000000@${OWN_MESSAGE_ID_DOMAIN}` };

describe('machineKind precedence: own-loop > bounce > auto-reply > a person', () => {
  it('our own mail is own-loop even when it also looks like a bounce and an auto-reply', () => {
    const v = machineKind(
      mail({
        ...ours,
        headers: { 'x-mailintake-loop': 'outbox', 'content-type': DSN, 'auto-submitted': 'auto-generated' },
      }),
    );
    expect(v.kind).toBe('own-loop');
    expect(v.reasons[0]).toContain(OWN_LOOP_HEADER);
  });

  it('own-loop needs both our Message-ID domain and our loop header', () => {
    expect(machineKind(mail(ours)).kind).toBeNull();
    expect(machineKind(mail({ headers: { 'x-mailintake-loop': 'outbox' } })).kind).toBeNull();
  });

  it('a DSN that also says Auto-Submitted is a bounce (the more precise answer)', () => {
    const v = machineKind(mail({ headers: { 'content-type': DSN, 'auto-submitted': 'auto-replied' } }));
    expect(v).toEqual({
      kind: 'bounce',
      reasons: ['multipart/report; report-type=delivery-status (a DSN, RFC 3464)'],
    });
  });

  it('an Exim bounce (auto-replied, MAILER-DAEMON, its subject) is a bounce, and names the mail it reports', () => {
    const v = machineKind(
      mail({
        from: { address: 'mailer-daemon@mx.example.net', name: 'Mail Delivery System' },
        subject: 'Mail delivery failed: returning message to sender',
        headers: { 'auto-submitted': 'auto-replied' },
        text: 'This message was created automatically by mail delivery software.\n\nMessage-ID: <orig@mailintake.invalid>\n',
      }),
    );
    expect(v.kind).toBe('bounce');
    expect(v.bouncedMessageId).toBe('orig@mailintake.invalid');
  });

  it('auto-replied with only bounce-like text (no MTA subject) stays the auto-reply its sender says it is', () => {
    const v = machineKind(
      mail({
        from: { address: 'postmaster@example.de', name: '' },
        subject: 'email bounce notification',
        headers: { 'auto-submitted': 'auto-replied', 'return-path': '<>' },
        text: 'reject reason: Mailbox full',
      }),
    );
    expect(v.kind).toBe('auto-reply');
  });

  it('a hostile 30 KB reported Message-ID is kept whole in the verdict but cut in the trace', () => {
    const huge = `${'x'.repeat(30_000)}@evil.example`;
    const v = machineKind(mail({ headers: { 'content-type': DSN }, returnedMessageId: huge }));
    expect(v.bouncedMessageId).toBe(huge);
    const line = v.reasons.find((r) => r.startsWith('it reports on'));
    expect(line).toBe(`it reports on <${'x'.repeat(256)}…>`);
  });

  it('a person is null with no reasons', () => {
    expect(machineKind(mail())).toEqual({ kind: null, reasons: [] });
  });
});

describe('what is not enough on its own', () => {
  it.each([
    ['a null Return-Path (spam has one)', { headers: { 'return-path': '<>' } }],
    [
      'X-Auto-Response-Suppress (Outlook sets it on ordinary mail)',
      { headers: { 'x-auto-response-suppress': 'All' } },
    ],
    ['Precedence: bulk', { headers: { precedence: 'bulk' } }],
    ['Precedence: list (customers write through lists)', { headers: { precedence: 'list' } }],
    ['Auto-Submitted: no', { headers: { 'auto-submitted': 'no' } }],
    [
      'Auto-Submitted: auto-generated on a mail that answers nothing (Jira, monitoring, cron)',
      { subject: '[JIRA] (OPS-12) Disk full on db1', headers: { 'auto-submitted': 'auto-generated' } },
    ],
    [
      'Auto-Submitted: auto-notified on a mail that answers nothing',
      { headers: { 'auto-submitted': 'auto-notified' } },
    ],
    ['X-Autoreply: no', { headers: { 'x-autoreply': 'no' } }],
    [
      'a customer forwarding a bounce',
      { subject: 'Fwd: Undelivered Mail Returned to Sender', text: 'why? --- user unknown' },
    ],
    ['a bounce-like subject from a person', { subject: 'Undeliverable: invoice 4711' }],
    ['"out of office" later in a subject', { subject: 'Re: Out of office printer is broken' }],
    ['a person asking for leave', { subject: 'Vacation request for March' }],
    ['a person reporting an absence', { subject: 'Abwesenheit melden: Herr Maier' }],
  ] as const)('%s', (_what, over) => {
    expect(machineKind(mail(over as Partial<ParsedMail>)).kind).toBeNull();
  });

  it('auto-generated is an auto-reply when it answers something, or when its subject is out-of-office', () => {
    const generated = { 'auto-submitted': 'auto-generated' };
    expect(machineKind(mail({ headers: generated, inReplyTo: ['a@customer.example'] }))).toEqual({
      kind: 'auto-reply',
      reasons: ['Auto-Submitted: auto-generated (RFC 3834) on an answer (In-Reply-To)'],
    });
    expect(machineKind(mail({ headers: generated, references: ['a@customer.example'] })).kind).toBe(
      'auto-reply',
    );
    // Exchange's out-of-office reply: auto-generated with X-Auto-Response-Suppress
    expect(
      machineKind(mail({ headers: { ...generated, 'x-auto-response-suppress': 'All' } })).reasons,
    ).toEqual(['Auto-Submitted: auto-generated (RFC 3834) on an answer (X-Auto-Response-Suppress)']);
    expect(machineKind(mail({ headers: generated, subject: 'Automatic reply: your order' })).kind).toBe(
      'auto-reply',
    );
    // auto-replied is an answer by its own word
    expect(machineKind(mail({ headers: { 'auto-submitted': 'auto-replied' } })).kind).toBe('auto-reply');
  });

  it('a null Return-Path does back up a bulk precedence or a bounce subject with MTA text', () => {
    expect(machineKind(mail({ headers: { 'return-path': '<>', precedence: 'junk' } })).kind).toBe(
      'auto-reply',
    );
    expect(
      machineKind(
        mail({
          headers: { 'return-path': '<>' },
          subject: 'Delivery Status Notification (Failure)',
          text: 'Delivery to the following recipient failed permanently',
        }),
      ).kind,
    ).toBe('bounce');
  });
});

describe('bounce forms', () => {
  it.each([
    ['X-Failed-Recipients', { headers: { 'x-failed-recipients': 'bob@example.org' } }],
    [
      'a message/delivery-status part in a multipart/mixed',
      {
        attachments: [
          {
            filename: 'status.txt',
            contentType: 'message/delivery-status',
            size: 1,
            sha256: '0',
            contentId: null,
            disposition: 'attachment' as const,
          },
        ],
      },
    ],
    [
      'MAILER-DAEMON without an address',
      { from: null, headers: { from: 'MAILER-DAEMON <>' }, subject: 'Mail delivery failed' },
    ],
    [
      'Exchange postmaster text',
      {
        from: { address: 'postmaster@example.net', name: 'System Administrator' },
        subject: 'E',
        text: 'Your message did not reach the following recipient(s):',
      },
    ],
    ['ARF', { headers: { 'content-type': 'multipart/report; report-type=feedback-report' } }],
  ] as const)('%s', (_what, over) => {
    expect(machineKind(mail(over as Partial<ParsedMail>)).kind).toBe('bounce');
  });
});

describe('out-of-office replies, generated (vendor forms and languages)', () => {
  let dir: string;
  let blobs: FileBlobStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailintake-machine-'));
    blobs = new FileBlobStore(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('recognises at least 95 % of them as auto-replies, and none as a bounce', async () => {
    const seed = 13;
    const set = generatedOutOfOffice(seed, 400);
    const missed: string[] = [];
    for (const { vendor, raw } of set) {
      const v = machineKind(await parseMail(Readable.from([Buffer.from(raw)]), { blobs }));
      if (v.kind !== 'auto-reply') missed.push(`${vendor} (${v.kind ?? 'none'})`);
    }
    const found = set.length - missed.length;
    console.log(
      `[machine.test] generated out-of-office (seed ${seed}): ${found}/${set.length} recognised` +
        (missed.length ? `; missed: ${missed.join(', ')}` : ''),
    );
    expect(found / set.length).toBeGreaterThanOrEqual(0.95);
    expect(missed.filter((m) => m.includes('(bounce)'))).toEqual([]);
  });
});
