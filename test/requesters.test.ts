import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import type { IntakeLogEntry } from '../src/intake/outcome.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { cli } from './support/console.js';
import { deliverMaildir, folderMessages } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Who a request is for, through a real Dovecot into a real store on both engines: a web form's mail is the
 * Reply-To's, a technician's forward (attached, Gmail inline, Outlook inline and Outlook's marker-less block) the
 * original sender's, CC'd people are participants (and are not with the switch off), and a broken From falls
 * back to Sender, Reply-To, Return-Path. Every decision is read back from the intake log.
 */
describe.each(ENGINES)('requesters and participants on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'support', password: 'support-pw' }] });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    env = { ...process.env, ...fresh.env };
    rt = await openRuntime(fresh.config);
    await rt.services.mailboxes.add(
      imapsMailbox(dovecot, 'support', 'support', {
        emailAddress: 'support@example.test, help@example.test',
      }),
    );
    await rt.services.users.create({
      email: 'tech@example.test',
      role: 'admin',
      password: 'a long password 1',
    });
    await rt.services.portals.update('default', {
      mailSettings: { formSenders: ['no-reply@forms.example', '*@typeform.example'] },
    });
  }, 120_000);
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  /** Delivers the mails, fetches once, and returns each mail's log entry and request by Message-ID. */
  async function takeIn(mails: Record<string, Buffer>) {
    await deliverMaildir(dovecot, 'support', Object.values(mails));
    const [summary] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(summary).toMatchObject({ fetched: Object.keys(mails).length, errored: 0 });
    const log = (await rt.services.log.list({ mailbox: 'support', limit: 1000 })).items;
    const out: Record<string, { entry: IntakeLogEntry; request: Awaited<ReturnType<typeof show>> | null }> =
      {};
    for (const id of Object.keys(mails)) {
      const entry = log.find((l) => l.messageId === id);
      expect(entry, id).toBeDefined();
      out[id] = { entry: entry!, request: entry!.requestId === null ? null : await show(entry!.requestId) };
    }
    return out;
  }
  const show = (id: number) => rt.services.requests.show(id);

  it('a form mail is the Reply-To requester’s; a form sender by domain pattern too; others keep From', async () => {
    const got = await takeIn({
      'form-1@forms.example': buildMail({
        messageId: 'form-1@forms.example',
        from: 'Contact form <no-reply@forms.example>',
        headers: ['Reply-To: Carla Customer <carla@customer.example>'],
      }),
      'form-2@typeform.example': buildMail({
        messageId: 'form-2@typeform.example',
        from: 'Typeform <notifications@typeform.example>',
        headers: ['Reply-To: dan@customer.example'],
      }),
      'plain-1@customer.example': buildMail({
        messageId: 'plain-1@customer.example',
        from: 'Erin <erin@customer.example>',
        headers: ['Reply-To: erin-private@customer.example'],
      }),
    });
    expect(got['form-1@forms.example']!.request!.requester).toEqual({
      address: 'carla@customer.example',
      name: 'Carla Customer',
    });
    expect(got['form-1@forms.example']!.entry.reasons).toContain(
      'requester carla@customer.example from Reply-To: no-reply@forms.example is a form sender of this portal',
    );
    expect(got['form-2@typeform.example']!.request!.requester?.address).toBe('dan@customer.example');
    expect(got['plain-1@customer.example']!.request!.requester?.address).toBe('erin@customer.example');
    expect(got['plain-1@customer.example']!.entry.reasons.join('\n')).not.toMatch(/requester/);
  }, 120_000);

  it('a technician’s forward opens the request for the original sender, in each form', async () => {
    const original = [
      'From: "Fritz Kunde" <fritz@customer.example>',
      'To: tech@example.test',
      'Subject: Drucker brennt',
      'Date: Mon, 01 Jan 2024 09:00:00 +0000',
      'Message-ID: <orig-1@customer.example>',
      '',
      'Der Drucker brennt.',
      '',
    ].join('\r\n');
    const tech = 'Tech <tech@example.test>';
    const got = await takeIn({
      'fwd-attached@example.test': buildMail({
        messageId: 'fwd-attached@example.test',
        from: tech,
        subject: 'Printer (see attached)',
        attachments: [
          { filename: 'original.eml', contentType: 'message/rfc822', content: Buffer.from(original) },
        ],
      }),
      'fwd-gmail@example.test': buildMail({
        messageId: 'fwd-gmail@example.test',
        from: tech,
        subject: 'Fwd: Printer',
        body: 'please look\r\n\r\n---------- Forwarded message ---------\r\nFrom: Gina Guest <gina@customer.example>\r\nDate: Mon, Jan 1, 2024 at 9:00 AM\r\nSubject: Printer\r\nTo: <tech@example.test>\r\n\r\nIt burns.\r\n',
      }),
      'fwd-outlook@example.test': buildMail({
        messageId: 'fwd-outlook@example.test',
        from: tech,
        subject: 'WG: Printer',
        body: 'FYI\r\n\r\n-----Original Message-----\r\nFrom: Hans Huber [mailto:hans@customer.example]\r\nSent: Monday, January 1, 2024 9:00 AM\r\nTo: Tech\r\nSubject: Printer\r\n\r\nIt burns.\r\n',
      }),
      'fwd-outlook-block@example.test': buildMail({
        messageId: 'fwd-outlook-block@example.test',
        from: tech,
        subject: 'FW: Printer',
        body: 'FYI\r\n\r\n________________________________\r\nFrom: Ida Inker <ida@customer.example>\r\nSent: Monday, January 1, 2024 9:00 AM\r\nTo: Tech <tech@example.test>\r\nSubject: Printer\r\n\r\nIt burns.\r\n',
      }),
      // a NUL in the forwarded sender's name, encoded: PostgreSQL refuses NUL in text, so it must not reach
      // the store (the mail would fail to store every round)
      'fwd-nul@example.test': buildMail({
        messageId: 'fwd-nul@example.test',
        from: tech,
        subject: 'Fwd: Printer',
        body: 'see below\r\n\r\n---------- Forwarded message ---------\r\nFrom: =?utf-8?q?Nina=00Nul?= <nina@customer.example>\r\nSubject: Printer\r\n\r\nIt burns.\r\n',
      }),
      'fwd-nobody@example.test': buildMail({
        messageId: 'fwd-nobody@example.test',
        from: tech,
        subject: 'Fwd: a note to myself',
        body: 'nothing quoted here\r\n',
      }),
      'fwd-stranger@example.test': buildMail({
        messageId: 'fwd-stranger@example.test',
        from: 'Jo Stranger <jo@elsewhere.example>',
        subject: 'Fwd: Printer',
        body: '---------- Forwarded message ---------\r\nFrom: Kim <kim@customer.example>\r\n\r\nhi\r\n',
      }),
    });
    const requester = (id: string) => got[id]!.request!.requester?.address;
    expect(requester('fwd-attached@example.test')).toBe('fritz@customer.example');
    expect(got['fwd-attached@example.test']!.request!.requester?.name).toBe('Fritz Kunde');
    expect(requester('fwd-gmail@example.test')).toBe('gina@customer.example');
    expect(requester('fwd-outlook@example.test')).toBe('hans@customer.example');
    expect(requester('fwd-outlook-block@example.test')).toBe('ida@customer.example');
    expect(got['fwd-nul@example.test']!.entry.outcome).toBe('created');
    expect(requester('fwd-nul@example.test')).toBe('nina@customer.example');
    expect(got['fwd-nul@example.test']!.request!.requester?.name).not.toContain('\u0000');
    for (const [id, where] of [
      ['fwd-attached@example.test', 'the attached message/rfc822 part’s From'],
      ['fwd-gmail@example.test', 'the From: line after "---------- Forwarded message ---------"'],
      ['fwd-outlook@example.test', 'the From: line after "-----Original Message-----"'],
      ['fwd-outlook-block@example.test', 'the From: line of the Outlook "From: … Sent: …" block'],
    ] as const) {
      const line = got[id]!.entry.reasons.find((r) => r.startsWith('requester '));
      expect(line, id).toMatch(/forwarded by the technician tech@example\.test/);
      expect(line, id).toContain(where);
    }
    expect(requester('fwd-nobody@example.test')).toBe('tech@example.test');
    expect(got['fwd-nobody@example.test']!.entry.reasons).toContain(
      'requester tech@example.test: the technician\'s own forward (its subject "Fwd: a note to myself") names no usable original sender',
    );
    // not a user: a forward of theirs is their own request
    expect(requester('fwd-stranger@example.test')).toBe('jo@elsewhere.example');
  }, 120_000);

  it('CC’d people are participants, without our addresses and aliases or the requester; a reply adds new ones', async () => {
    const first = await takeIn({
      'cc-1@customer.example': buildMail({
        messageId: 'cc-1@customer.example',
        from: 'Lena <lena@customer.example>',
        cc: 'Max <max@customer.example>, help@example.test, Support <SUPPORT@example.test>, lena@customer.example, nora@partner.example',
      }),
    });
    const request = first['cc-1@customer.example']!.request!;
    expect(request.participants.map((p) => [p.address, p.name, p.source, p.conversationId])).toEqual([
      ['max@customer.example', 'Max', 'cc', null],
      ['nora@partner.example', null, 'cc', null],
    ]);
    expect(first['cc-1@customer.example']!.entry.reasons).toEqual(
      expect.arrayContaining([
        'participants from CC: max@customer.example, nora@partner.example',
        '2 CC addresses are our own, not participants',
      ]),
    );
    const second = await takeIn({
      'cc-2@customer.example': buildMail({
        messageId: 'cc-2@customer.example',
        inReplyTo: 'cc-1@customer.example',
        subject: 'Re: more',
        from: 'Max <max@customer.example>',
        cc: 'lena@customer.example, nora@partner.example, Olga <olga@customer.example>',
      }),
    });
    expect(second['cc-2@customer.example']!.entry.outcome).toBe('appended');
    const after = await show(request.id);
    expect(after.participants.map((p) => p.address)).toEqual([
      'max@customer.example',
      'nora@partner.example',
      'olga@customer.example',
    ]);
    expect(after.participants[2]!.conversationId).toBe(second['cc-2@customer.example']!.entry.conversationId);
    // the CLI shows them too
    const shown = await cli(env, ['requests', 'show', String(request.id)]);
    expect(shown.code, shown.err).toBe(0);
    expect(shown.out).toMatch(
      /participants:\s+Max <max@customer\.example>, nora@partner\.example, Olga <olga@customer\.example>/,
    );

    // switched off: nobody joins, and the log says why
    await rt.services.portals.update('default', { mailSettings: { ccParticipants: false } });
    try {
      const off = await takeIn({
        'cc-3@customer.example': buildMail({
          messageId: 'cc-3@customer.example',
          from: 'Paul <paul@customer.example>',
          cc: 'quinn@customer.example',
        }),
      });
      expect(off['cc-3@customer.example']!.request!.participants).toEqual([]);
      expect(off['cc-3@customer.example']!.entry.reasons).toContain(
        'CC not made participants: off in this portal',
      );
    } finally {
      await rt.services.portals.update('default', { mailSettings: { ccParticipants: null } });
    }
  }, 120_000);

  it('a broken From falls back to Sender, Reply-To, Return-Path, with the trace; nothing usable is said so', async () => {
    const raw = (id: string, head: string[]) =>
      Buffer.from(
        [
          ...head,
          'To: support@example.test',
          `Subject: broken sender ${id}`,
          'Date: Mon, 01 Jan 2024 10:00:00 +0000',
          `Message-ID: <${id}>`,
          'MIME-Version: 1.0',
          'Content-Type: text/plain; charset=utf-8',
          '',
          'Hello',
          '',
        ].join('\r\n'),
      );
    const got = await takeIn({
      'garbage@x': raw('garbage@x', ['From: garbage', 'Sender: Robin <robin@customer.example>']),
      'missing@x': raw('missing@x', ['Reply-To: sam@customer.example']),
      'group@x': raw('group@x', ['From: undisclosed-recipients:;', 'Return-Path: <tess@customer.example>']),
      'empty@x': raw('empty@x', ['From: ', 'Sender: nonsense', 'Reply-To: uma@customer.example']),
      'nothing@x': raw('nothing@x', ['From: <>', 'Return-Path: <>']),
    });
    const expected: Record<string, [string | null, RegExp]> = {
      'garbage@x': [
        'robin@customer.example',
        /^requester robin@customer\.example from Sender: From "garbage" holds no usable address$/,
      ],
      'missing@x': [
        'sam@customer.example',
        /^requester sam@customer\.example from Reply-To: the mail has no From, no Sender$/,
      ],
      'group@x': [
        'tess@customer.example',
        /^requester tess@customer\.example from Return-Path: From "undisclosed-recipients:;" holds no usable address, no Sender, no Reply-To$/,
      ],
      'empty@x': [
        'uma@customer.example',
        /^requester uma@customer\.example from Reply-To: From is empty, Sender holds no usable address$/,
      ],
      'nothing@x': [
        null,
        /^no usable sender address: From "<>" holds no usable address, no Sender, no Reply-To, Return-Path "<>" holds no usable address$/,
      ],
    };
    for (const [id, [address, reason]] of Object.entries(expected)) {
      const { entry, request } = got[id]!;
      expect(entry.outcome, id).toBe('created');
      expect(request!.requester?.address ?? null, id).toBe(address);
      expect(
        entry.reasons.filter((r) => /^(requester|no usable)/.test(r)),
        id,
      ).toEqual([expect.stringMatching(reason)]);
    }
  }, 120_000);

  it('the raw source of every decided mail is kept', async () => {
    const log = (await rt.services.log.list({ mailbox: 'support', limit: 1000 })).items;
    expect(log.length).toBeGreaterThan(15);
    for (const entry of log) {
      expect(entry.rawAvailable).toBe(true);
      const { open } = await rt.services.log.raw(entry.id);
      expect((await buffer(open())).length).toBeGreaterThan(0);
    }
    expect(await folderMessages(dovecot, 'support', 'INBOX')).toHaveLength(log.length);
  });
});
