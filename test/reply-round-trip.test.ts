import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ParsedMail, simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { deliveryWords } from '../src/features/requests/request-page.js';
import { createApi } from '../src/http/app.js';
import { OWN_MESSAGE_ID_DOMAIN } from '../src/mail/machine.js';
import type { OutboxAttempt } from '../src/notify/outbox.js';
import { conditions } from './kit/conditions.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { prng } from './kit/prng.js';
import { cliRunner } from './support/cli.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { deliverLmtp, inboxSources } from './support/lmtp.js';
import { checkResponses, type ResponseChecks } from './support/openapi-check.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * The conversation loop with real servers, on both engines: a customer's mail in Dovecot becomes a request; the
 * technician's reply (API) goes through a real SMTP server on loopback and is delivered by LMTP into the
 * customer's Dovecot mailbox; the customer's answer, built from that delivered mail as a mail client builds
 * one, is delivered by LMTP to the help desk and fetched back onto the same request — by its headers, by the
 * subject token with header threading off, and by the per-request reply address with everything else
 * stripped. Also: the help desk's own addresses never receive a reply, and a bounce of a reply marks its
 * delivery failed.
 */

const SUPPORT = 'support@example.test';
const CUSTOMER = 'customer@example.test';
const COLLEAGUE = 'colleague@example.test';
/** An address the SMTP server refuses when a test says so. */
const GONE = 'gone-colleague@example.test';
/** Addresses of the help desk: the support mailbox's address and alias, and another mailbox's. */
const OWN = ['support@example.test', 'helpdesk@example.test', 'sales@example.test'];

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the matchers and the OpenAPI check
type AnyJson = any;

describe.each(ENGINES)('replies round trip on %s', (engine) => {
  let dovecot: DovecotServer;
  let smtp: SmtpTestServer;
  let rt: Runtime;
  let app: ReturnType<typeof createApi>;
  let checks: ResponseChecks;
  let key: string;
  let cleanup: () => Promise<void>;
  let env: Record<string, string>;
  const attempts: OutboxAttempt[] = [];
  const attempted = conditions();
  /** How many of smtp.mails were relayed into Dovecot already. */
  let relayed = 0;

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: [SUPPORT, CUSTOMER, COLLEAGUE].map((name) => ({ name, password: `${name}-pw` })),
    });
    smtp = await startSmtpServer({ tls: 'none' });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    env = fresh.env;
    rt = await openRuntime(fresh.config, {
      onOutboxAttempt: (a) => {
        attempts.push(a);
        attempted.recheck();
      },
    });
    app = createApi(rt.services);
    checks = checkResponses(app);
    key = (await rt.services.apiKeys.create('replies-test')).key;
    await rt.services.smtp.set({
      host: smtp.host,
      port: smtp.port,
      starttls: false,
      from: 'Mailintake <alerts@example.test>',
    });
    await rt.services.mailboxes.add(
      imapsMailbox(dovecot, 'support', SUPPORT, {
        password: `${SUPPORT}-pw`,
        emailAddress: 'support@example.test, HelpDesk@example.test',
        replyAddress: true,
      }),
    );
    // another mailbox of the instance, never fetched here: its address is the help desk's all the same
    await rt.services.mailboxes.add(
      imapsMailbox(dovecot, 'sales', CUSTOMER, {
        password: `${CUSTOMER}-pw`,
        emailAddress: 'sales@example.test',
        enabled: false,
      }),
    );
  }, 180_000);
  afterAll(async () => {
    await rt?.close();
    await smtp?.close();
    await dovecot?.stop();
    await cleanup?.();
    // every answer above was checked against its route's declaration as it came
    expect(checks?.violations ?? []).toEqual([]);
  });

  async function call(
    method: string,
    url: string,
    body?: unknown,
  ): Promise<{ status: number; json: AnyJson }> {
    const res = await app.request(url, {
      method,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, json: text === '' ? null : JSON.parse(text) };
  }

  /** Waits until the outbox tried `count` mails in all, then relays what the SMTP server got into Dovecot by LMTP. */
  async function relay(count: number): Promise<void> {
    await attempted.until(() => attempts.length >= count);
    const mails = await smtp.waitFor(count);
    for (const m of mails.slice(relayed)) {
      const local = m.to.filter((r) => dovecot.users.some((u) => u.name === r));
      if (local.length > 0) await deliverLmtp(dovecot, m.raw, { from: m.from, to: local });
    }
    relayed = mails.length;
  }

  /** The newest mail in a user's Dovecot INBOX, parsed. */
  async function newest(user: string): Promise<{ raw: Buffer; parsed: ParsedMail }> {
    const all = await inboxSources(dovecot, user);
    const raw = all.at(-1)!;
    return { raw, parsed: await simpleParser(raw) };
  }

  /** The customer's answer as a mail client builds it from the delivered reply. */
  function answerTo(
    reply: ParsedMail,
    opts: { body: string; to?: string; headers?: boolean; subject?: string },
  ): Buffer {
    const refs = [
      ...(Array.isArray(reply.references) ? reply.references : reply.references ? [reply.references] : []),
      reply.messageId!,
    ];
    const to = opts.to ?? reply.replyTo?.value[0]?.address ?? reply.from!.value[0]!.address!;
    return buildMail({
      from: `Customer <${CUSTOMER}>`,
      to,
      subject: opts.subject ?? `Re: ${reply.subject}`,
      messageId: `answer-${Math.random().toString(36).slice(2)}@customer.example`,
      ...(opts.headers === false
        ? {}
        : { inReplyTo: reply.messageId!.replace(/^<|>$/g, ''), references: refs.join(' ') }),
      body: opts.body,
    });
  }

  let requestId: number;

  it('a customer mail becomes a request; the reply reaches the customer from the mailbox with the thread headers', async () => {
    const first = buildMail({
      from: `Customer <${CUSTOMER}>`,
      to: SUPPORT,
      cc: `Colleague <${COLLEAGUE}>`,
      subject: 'Printer on fire',
      messageId: 'first@customer.example',
    });
    await deliverLmtp(dovecot, first, { from: CUSTOMER, to: [SUPPORT] });
    const [round] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(round).toMatchObject({ fetched: 1, created: 1 });
    requestId = (await rt.services.requests.list({})).items[0]!.id;

    // the colleague in Cc of the first mail is a participant; a reply that names no Cc goes to the participants
    const detail = await call('GET', `/api/v1/requests/${requestId}`);
    expect(detail.json.participants.map((p: AnyJson) => p.address)).toEqual([COLLEAGUE]);
    const res = await call('POST', `/api/v1/requests/${requestId}/replies`, {
      text: 'Please unplug it.',
      attachments: [
        {
          filename: 'steps.txt',
          contentType: 'text/plain',
          contentBase64: Buffer.from('1. unplug').toString('base64'),
        },
      ],
    });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json).toMatchObject({
      direction: 'out',
      actor: 'api-key:replies-test',
      to: [{ address: CUSTOMER }],
      cc: [{ address: COLLEAGUE }],
      subject: `Re: Printer on fire ##${requestId}##`,
    });
    // a snapshot taken right after the commit: the outbox, woken by it, may have sent it meanwhile
    expect(['pending', 'sent']).toContain(res.json.delivery.state);
    expect(res.json.attachments).toHaveLength(1);
    await relay(1);
    expect(attempts[0]).toMatchObject({ ok: true });

    const sent = smtp.mails[0]!;
    expect(sent.from).toBe(SUPPORT);
    expect(sent.to.sort()).toEqual([COLLEAGUE, CUSTOMER].sort());
    const delivered = await newest(CUSTOMER);
    const reply = delivered.parsed;
    expect(reply.subject).toBe(`Re: Printer on fire ##${requestId}##`);
    expect(reply.messageId).toMatch(new RegExp(`@${OWN_MESSAGE_ID_DOMAIN.replace('.', '\\.')}>$`));
    expect(reply.inReplyTo).toBe('<first@customer.example>');
    expect(reply.references).toBe('<first@customer.example>');
    expect(reply.replyTo?.value[0]?.address).toMatch(
      new RegExp(`^support\\+${requestId}\\.[a-z2-7]{10}@example\\.test$`),
    );
    expect(reply.headers.get('auto-submitted')).toBeUndefined();
    expect(reply.headers.get('x-mailintake-loop')).toBe('mailintake');
    expect(reply.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([
      ['steps.txt', '1. unplug'],
    ]);
    // the colleague in Cc got it too
    expect((await newest(COLLEAGUE)).parsed.messageId).toBe(reply.messageId);

    const shown = await call('GET', `/api/v1/requests/${requestId}`);
    const out = shown.json.conversations.find((c: AnyJson) => c.direction === 'out');
    expect(out.delivery).toMatchObject({ state: 'sent', attempts: 1, bounced: false });
    expect(out.messageId).toBe(reply.messageId!.replace(/^<|>$/g, ''));
  }, 120_000);

  it('(a) the answer threads back by its headers', async () => {
    const reply = (await newest(CUSTOMER)).parsed;
    const answer = answerTo(reply, { body: 'Unplugged, still smoking.' });
    await deliverLmtp(dovecot, answer, { from: CUSTOMER, to: [reply.replyTo!.value[0]!.address!] });
    const [round] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(round).toMatchObject({ fetched: 1, appended: 1, created: 0 });
    const log = (await rt.services.log.list({ mailbox: 'support', limit: 1 })).items[0]!;
    expect(log).toMatchObject({ outcome: 'appended', requestId });
    expect(log.reasons).toContain(
      `In-Reply-To <${reply.messageId!.replace(/^<|>$/g, '')}> matches a mail of request #${requestId}`,
    );
  }, 60_000);

  it('(b) with header threading off, the answer threads by the subject token', async () => {
    await rt.services.portals.update('default', { headerThreading: false });
    try {
      await call('POST', `/api/v1/requests/${requestId}/replies`, { text: 'Call the fire brigade.' });
      await relay(2);
      const reply = (await newest(CUSTOMER)).parsed;
      // written to the help desk's plain address: only the subject is left to thread by
      const answer = answerTo(reply, { body: 'Done.', to: SUPPORT });
      await deliverLmtp(dovecot, answer, { from: CUSTOMER, to: [SUPPORT] });
      const [round] = await rt.services.fetch.once({ mailbox: 'support' });
      expect(round).toMatchObject({ fetched: 1, appended: 1, created: 0 });
      const log = (await rt.services.log.list({ mailbox: 'support', limit: 1 })).items[0]!;
      expect(log).toMatchObject({ outcome: 'appended', requestId });
      expect(log.reasons).toContain(
        'header threading is off for this portal (In-Reply-To/References are not used)',
      );
      expect(log.reasons).toContain(`subject token ##${requestId}##`);
    } finally {
      await rt.services.portals.update('default', { headerThreading: true });
    }
  }, 60_000);

  it('(c) with every threading header and the subject token stripped, it threads by the reply address', async () => {
    const reply = (await newest(CUSTOMER)).parsed;
    const replyAddress = reply.replyTo!.value[0]!.address!;
    const answer = answerTo(reply, { body: 'One more thing.', headers: false, subject: 'One more thing' });
    expect(answer.toString()).not.toMatch(/In-Reply-To|References|##/);
    await deliverLmtp(dovecot, answer, { from: CUSTOMER, to: [replyAddress] });
    // a forged address: a signature we never made opens a new request, with the reason
    const forged = buildMail({
      from: 'Stranger <stranger@example.org>',
      to: replyAddress.replace(/\.[a-z2-7]{10}@/, '.aaaaaaaaaa@'),
      subject: 'Let me in',
      messageId: 'forged@example.org',
    });
    await deliverLmtp(dovecot, forged, { from: 'stranger@example.org', to: [SUPPORT] });
    // a list server rewrote To; the address it was delivered to is left in X-Original-To (as Postfix writes it)
    const rewritten = buildMail({
      from: `Customer <${CUSTOMER}>`,
      to: 'undisclosed-recipients:;',
      subject: 'Through a list',
      messageId: 'via-list@customer.example',
      headers: [`X-Original-To: ${replyAddress.toUpperCase()}`],
    });
    await deliverLmtp(dovecot, rewritten, { from: CUSTOMER, to: [replyAddress] });
    // forwarded on by an earlier server that delivered it to the reply address: that hop's Delivered-To is below
    // the one our server writes for the support address
    const forwarded = buildMail({
      from: `Customer <${CUSTOMER}>`,
      to: 'undisclosed-recipients:;',
      subject: 'Through a forwarder',
      messageId: 'via-forwarder@customer.example',
      headers: [`Delivered-To: ${replyAddress}`],
    });
    await deliverLmtp(dovecot, forwarded, { from: CUSTOMER, to: [SUPPORT] });
    const [round] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(round).toMatchObject({ fetched: 4, appended: 3, created: 1 });
    const log = (await rt.services.log.list({ mailbox: 'support', limit: 4 })).items;
    const viaForwarder = log.find((l) => l.messageId === 'via-forwarder@customer.example')!;
    expect(viaForwarder).toMatchObject({ outcome: 'appended', requestId });
    const appended = log.find(
      (l) =>
        l.outcome === 'appended' &&
        l.messageId !== 'via-list@customer.example' &&
        l.messageId !== 'via-forwarder@customer.example',
    )!;
    expect(appended.requestId).toBe(requestId);
    expect(appended.reasons).toContain(
      `sent to the reply address <${replyAddress}> of request #${requestId}`,
    );
    const viaList = log.find((l) => l.messageId === 'via-list@customer.example')!;
    expect(viaList).toMatchObject({ outcome: 'appended', requestId });
    expect(viaList.reasons.at(-1)).toMatch(
      new RegExp(`^sent to the reply address <.+> of request #${requestId}$`),
    );
    const created = log.find((l) => l.outcome === 'created')!;
    expect(created.requestId).not.toBe(requestId);
    expect(created.reasons.join('\n')).toMatch(
      /looks like a reply address of request #\d+ but its signature is not ours/,
    );
  }, 60_000);

  it('replies to a requester by the address alone, whatever their display name holds; a garbage address is refused naming To', async () => {
    const odd = buildMail({
      from: '"Lee, Ann <boss@example.org>; x" <ann.lee@example.org>',
      to: SUPPORT,
      subject: 'Odd name',
      messageId: 'odd-name@example.org',
    });
    // an unterminated quoted name: the sender's address cannot be told from the rest
    const garbage = buildMail({
      from: '"Lee, Ann <boss@example.org>; \\" <ann.lee@example.org>',
      to: SUPPORT,
      subject: 'Garbage sender',
      messageId: 'garbage-sender@example.org',
    });
    await deliverLmtp(dovecot, odd, { from: 'ann.lee@example.org', to: [SUPPORT] });
    // with a null envelope sender: a usable Return-Path would become the requester (README "Requesters")
    await deliverLmtp(dovecot, garbage, { from: '', to: [SUPPORT] });
    const [round] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(round).toMatchObject({ fetched: 2, created: 2 });
    const ids = new Map((await rt.services.requests.list({})).items.map((r) => [r.subject, r.id]));
    const requester = (await rt.services.requests.show(ids.get('Odd name')!)).requester!;
    expect(requester).toEqual({ address: 'ann.lee@example.org', name: 'Lee, Ann <boss@example.org>; x' });
    const before = smtp.mails.length;
    const res = await call('POST', `/api/v1/requests/${ids.get('Odd name')}/replies`, { text: 'Hello Ann.' });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json.to).toEqual([requester]);
    const [mail] = (await smtp.waitFor(before + 1)).slice(before);
    expect(mail!.to).toEqual(['ann.lee@example.org']);
    await attempted.until(() => attempts.length >= smtp.mails.length);
    relayed = smtp.mails.length;

    const refused = await call('POST', `/api/v1/requests/${ids.get('Garbage sender')}/replies`, {
      text: 'Hello?',
    });
    expect(refused.status).toBe(400);
    expect(refused.json.details.fields[0]).toMatchObject({ field: 'to' });
    // a From without a usable address (and nothing to fall back on) leaves the request without a requester,
    // with the reason in the intake log, instead of storing the garbage as one
    expect((await rt.services.requests.show(ids.get('Garbage sender')!)).requester).toBeNull();
    expect(refused.json.details.fields[0].message).toBe(
      'the request has no requester to reply to: type an address',
    );
  }, 60_000);

  it('never sends to the help desk’s own addresses and aliases, however they are typed', async () => {
    const random = prng(engine === 'sqlite' ? 1 : 2);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const variant = (address: string) => {
      const [local, domain] = address.split('@') as [string, string];
      const cased = (s: string) => [...s].map((ch) => (random() < 0.5 ? ch.toUpperCase() : ch)).join('');
      const tagged = random() < 0.5 ? `${local}+${pick(['x', 'tag', '42.abc', 'reply'])}` : local;
      const plain = `${cased(tagged)}@${cased(domain)}`;
      return pick([plain, `<${plain}>`, `"Help Desk" <${plain}>`, `Support Team <${plain}>`]);
    };
    const before = smtp.mails.length;
    const rounds = 12;
    for (let i = 0; i < rounds; i++) {
      const own = () => Array.from({ length: 1 + Math.floor(random() * 3) }, () => variant(pick(OWN)));
      const typedOwn = [own(), own(), own(), own()];
      const res = await call('POST', `/api/v1/requests/${requestId}/replies`, {
        to: [...typedOwn[0]!, CUSTOMER, ...typedOwn[1]!],
        cc: typedOwn[2],
        bcc: [...typedOwn[3]!, COLLEAGUE],
        text: `Round ${i}`,
      });
      expect(res.status, JSON.stringify(res.json)).toBe(201);
      // the answer says which typed addresses were left out (each typed one, as the service parsed it)
      expect(res.json.leftOut).toHaveLength(typedOwn.flat().length);
      for (const a of res.json.leftOut) expect(OWN).toContain(a.toLowerCase().replace(/\+[^@]*@/, '@'));
      expect(res.json.to.map((a: AnyJson) => a.address)).toEqual([CUSTOMER]);
      expect(res.json.cc).toEqual([]);
      expect(res.json.delivery.bcc).toEqual([COLLEAGUE]);
    }
    await relay(before + rounds);
    const envelopes = smtp.mails.slice(before).flatMap((m) => m.to);
    expect(envelopes).toHaveLength(rounds * 2);
    for (const rcpt of envelopes) expect([CUSTOMER, COLLEAGUE]).toContain(rcpt);
    for (const m of smtp.mails.slice(before)) {
      expect(m.parsed.headers.get('bcc')).toBeUndefined();
      const shown = [m.parsed.to, m.parsed.cc]
        .flatMap((a) => (a === undefined ? [] : Array.isArray(a) ? a : [a]))
        .flatMap((a) => a.value.map((v) => v.address));
      expect(shown).toEqual([CUSTOMER]);
    }

    // nobody left in To: refused, naming the field, nothing queued
    const refused = await call('POST', `/api/v1/requests/${requestId}/replies`, {
      to: [variant('support@example.test'), variant('sales@example.test')],
      text: 'to ourselves',
    });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toBe('INVALID_SETTINGS');
    expect(refused.json.details.fields[0].field).toBe('to');
    const bad = await call('POST', `/api/v1/requests/${requestId}/replies`, {
      cc: ['not an address'],
      text: 'x',
    });
    expect(bad.status).toBe(400);
    expect(bad.json.details.fields[0].field).toBe('cc');
    const forward = await call('POST', `/api/v1/requests/${requestId}/replies`, { forward: true, text: 'x' });
    expect(forward.status).toBe(400);
    expect(forward.json.details.fields[0].field).toBe('to');
  }, 120_000);

  it('a bounce of a reply marks that delivery failed with the DSN status and reason, on the request and in the log', async () => {
    const before = smtp.mails.length;
    const res = await call('POST', `/api/v1/requests/${requestId}/replies`, {
      to: ['gone@example.test'],
      text: 'This one will bounce.',
    });
    expect(res.status).toBe(201);
    await relay(before + 1);
    const messageId = res.json.messageId as string;
    // what Postfix sends back to the envelope sender (the mailbox) for an unknown recipient
    const dsn = Buffer.from(
      [
        'From: MAILER-DAEMON@mx.example.test (Mail Delivery System)',
        `To: ${SUPPORT}`,
        'Subject: Undelivered Mail Returned to Sender',
        'Date: Mon, 07 Dec 2026 10:00:00 +0000',
        'Message-ID: <bounce-1@mx.example.test>',
        'Auto-Submitted: auto-replied',
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
        '',
        '--B',
        'Content-Description: Notification',
        'Content-Type: text/plain; charset=us-ascii',
        '',
        'This is the mail system at host mx.example.test.',
        '',
        "I'm sorry to have to inform you that your message could not",
        'be delivered to one or more recipients.',
        '',
        '<gone@example.test>: host mx.example.test said: 550 5.1.1 <gone@example.test>: Recipient address rejected: User unknown',
        '',
        '--B',
        'Content-Description: Delivery report',
        'Content-Type: message/delivery-status',
        '',
        'Reporting-MTA: dns; mx.example.test',
        'Arrival-Date: Mon,  7 Dec 2026 09:59:59 +0000 (UTC)',
        '',
        'Final-Recipient: rfc822; gone@example.test',
        'Original-Recipient: rfc822;gone@example.test',
        'Action: failed',
        'Status: 5.1.1',
        'Remote-MTA: dns; mx.example.test',
        'Diagnostic-Code: smtp; 550 5.1.1 <gone@example.test>: Recipient address rejected:',
        '    User unknown in virtual mailbox table',
        '',
        '--B',
        'Content-Description: Undelivered Message Headers',
        'Content-Type: text/rfc822-headers',
        '',
        `From: ${SUPPORT}`,
        'To: gone@example.test',
        `Subject: Re: Printer on fire ##${requestId}##`,
        `Message-ID: <${messageId}>`,
        '',
        '--B--',
        '',
      ].join('\r\n'),
    );
    await deliverLmtp(dovecot, dsn, { from: '', to: [SUPPORT] });
    const [round] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(round).toMatchObject({ fetched: 1, created: 0, appended: 0 });
    const log = (await rt.services.log.list({ mailbox: 'support', limit: 1 })).items[0]!;
    expect(log).toMatchObject({ outcome: 'ignored', requestId, messageId: 'bounce-1@mx.example.test' });
    expect(log.reasons.join('\n')).toMatch(
      new RegExp(
        `bounce of our reply on request #${requestId} \\(outbox \\d+\\): 5\\.1\\.1 smtp; 550 5\\.1\\.1`,
      ),
    );
    const shown = await call('GET', `/api/v1/requests/${requestId}`);
    const out = shown.json.conversations.find((c: AnyJson) => c.messageId === messageId);
    expect(out.delivery).toMatchObject({
      state: 'failed',
      bounced: true,
      status: '5.1.1',
      reason:
        'smtp; 550 5.1.1 <gone@example.test>: Recipient address rejected: User unknown in virtual mailbox table',
    });
    // nothing was sent in answer to the bounce
    expect(smtp.mails).toHaveLength(before + 1);
  }, 60_000);

  it('our own reply coming back to the help desk (a customer’s forwarding rule) is ignored with a trace, never answered', async () => {
    const sent = (await newest(CUSTOMER)).raw;
    const messageId = (await simpleParser(sent)).messageId!.replace(/^<|>$/g, '');
    const before = (await rt.services.requests.show(requestId)).conversations.length;
    const mailsBefore = smtp.mails.length;
    await deliverLmtp(dovecot, sent, { from: SUPPORT, to: [SUPPORT] });
    const [round] = await rt.services.fetch.once({ mailbox: 'support' });
    expect(round).toMatchObject({ fetched: 1, created: 0, appended: 0 });
    const log = (await rt.services.log.list({ mailbox: 'support', limit: 1 })).items[0]!;
    expect(log).toMatchObject({ outcome: 'ignored', messageId, rawAvailable: true });
    expect(log.reasons[0]).toBe(
      `own mail came back: Message-ID <${messageId}> is ours (@${OWN_MESSAGE_ID_DOMAIN}) and it carries X-Mailintake-Loop: mailintake`,
    );
    expect((await rt.services.requests.show(requestId)).conversations).toHaveLength(before);
    expect(smtp.mails).toHaveLength(mailsBefore);
  }, 60_000);

  it('the API takes a reply with attachments above the 1 MiB that bounds every other body', async () => {
    const before = smtp.mails.length;
    const big = Buffer.alloc(2 * 1024 * 1024, 7);
    const res = await call('POST', `/api/v1/requests/${requestId}/replies`, {
      text: 'The full log.',
      attachments: [{ filename: 'log.bin', contentBase64: big.toString('base64') }],
    });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json.attachments).toMatchObject([
      { filename: 'log.bin', contentType: 'application/octet-stream', size: big.length },
    ]);
    const [mail] = (await smtp.waitFor(before + 1)).slice(before);
    expect(mail!.parsed.attachments[0]!.content.equals(big)).toBe(true);
    // the other routes keep the small limit
    const other = await call('PUT', `/api/v1/requests/${requestId}/assignee`, {
      assignee: 'x'.repeat(1_100_000),
    });
    expect(other.status).toBe(400);
    expect(other.json.details.fields[0].field).toBe('(body)');
    relayed = smtp.mails.length;
  }, 60_000);

  it('the CLI replies with an attachment and forwards with the request’s attachment, through the outbox', async () => {
    const run = cliRunner(() => env, []);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-reply-'));
    try {
      const file = path.join(dir, 'invoice.pdf');
      await writeFile(file, '%PDF-1.4 fake');
      const before = smtp.mails.length;
      const reply = await run([
        'requests',
        'reply',
        String(requestId),
        '--text',
        'See the invoice.',
        '--cc',
        'SALES@example.test',
        COLLEAGUE,
        '--attach',
        file,
      ]);
      expect(reply.code, reply.stderr).toBe(0);
      expect(reply.stdout).toMatch(
        new RegExp(
          `^Reply queued as conversation \\d+ \\(outbox \\d+\\) to Customer <${CUSTOMER}>, cc ${COLLEAGUE}: `,
        ),
      );
      // the help desk's own address typed in --cc is left out, and the technician is told
      expect(reply.stdout, reply.stdout).toContain("Left out, the help desk's own: sales@example.test");
      const [mail] = (await smtp.waitFor(before + 1)).slice(before);
      expect(mail!.to.sort()).toEqual([COLLEAGUE, CUSTOMER].sort());
      expect(mail!.parsed.attachments.map((a) => [a.filename, a.contentType, a.content.toString()])).toEqual([
        ['invoice.pdf', 'application/pdf', '%PDF-1.4 fake'],
      ]);
      const attachmentId = (await rt.services.requests.show(requestId)).conversations.find(
        (c) => c.messageId === mail!.parsed.messageId!.replace(/^<|>$/g, ''),
      )!.attachments[0]!.id;

      const forward = await run([
        'requests',
        'forward',
        String(requestId),
        '--to',
        'vendor@example.org',
        '--text',
        'FYI',
        '--include',
        String(attachmentId),
      ]);
      expect(forward.code, forward.stderr).toBe(0);
      expect(forward.stdout).toMatch(/^Forward queued as conversation \d+/);
      const [fwd] = (await smtp.waitFor(before + 2)).slice(before + 1);
      expect(fwd!.to).toEqual(['vendor@example.org']);
      expect(fwd!.parsed.subject).toBe(`Fwd: Printer on fire ##${requestId}##`);
      expect(fwd!.parsed.attachments.map((a) => a.filename)).toEqual(['invoice.pdf']);
      // the forwarded mail below the technician's words, as mail clients write a forward
      expect(fwd!.parsed.text).toMatch(
        /^FYI\n\n---------- Forwarded message ----------\nFrom: Customer <customer@example\.test>\nDate: \S+\nSubject: Printer on fire\n\n\S/,
      );

      const refused = await run([
        'requests',
        'forward',
        String(requestId),
        '--to',
        'HelpDesk+x@Example.test',
        '--text',
        'x',
      ]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/INVALID_SETTINGS/);
      const shown = await run(['requests', 'show', String(requestId)]);
      expect(shown.stdout).toMatch(/\(sent by the help desk\)/);
      expect(shown.stdout).toMatch(/delivery: +failed \(bounced\): 5\.1\.1 smtp; 550/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    relayed = smtp.mails.length;
  }, 60_000);

  it('a crash after the SMTP server took a reply, before it was marked sent: sent again with the same Message-ID, never lost', async () => {
    const before = smtp.mails.length;
    const killed = await spawnCli(['requests', 'reply', String(requestId), '--text', 'Crash test'], {
      ...env,
      MAILINTAKE_FAILPOINTS: 'after-smtp-accept=kill',
    });
    expect(killed.signal).toBe('SIGKILL');
    expect(killed.stderr).toContain('mailintake failpoint after-smtp-accept: kill');
    const [first] = (await smtp.waitFor(before + 1)).slice(before);
    const messageId = first!.parsed.messageId!.replace(/^<|>$/g, '');
    const shown = await rt.services.requests.show(requestId);
    const conv = shown.conversations.find((c) => c.messageId === messageId)!;
    expect(conv.delivery).toMatchObject({ state: 'pending', attempts: 1, sentAt: null });

    // the dead process's claim runs out (played by moving the due time back); the outbox sends it once more
    const db = (await import('../src/store/db.js')).openStore;
    const store = await db({ databaseUrl: rt.config.databaseUrl, dataDir: rt.config.dataDir });
    try {
      await store.db
        .updateTable('mail_outbox')
        .set({ next_attempt_at: new Date(Date.now() - 1000).toISOString() })
        .where('id', '=', conv.delivery!.outboxId)
        .execute();
    } finally {
      await store.close();
    }
    const seen = attempts.length;
    await rt.services.smtp.set({
      host: smtp.host,
      port: smtp.port,
      starttls: false,
      from: 'Mailintake <alerts@example.test>',
    });
    await attempted.until(() => attempts.slice(seen).some((a) => a.id === conv.delivery!.outboxId && a.ok));
    const again = smtp.mails.slice(before);
    expect(again).toHaveLength(2);
    expect(again.map((m) => m.parsed.messageId)).toEqual([first!.parsed.messageId, first!.parsed.messageId]);
    const after = (await rt.services.requests.show(requestId)).conversations.find((c) => c.id === conv.id)!;
    expect(after.delivery).toMatchObject({ state: 'sent', attempts: 2 });
    relayed = smtp.mails.length;
  }, 60_000);

  // last: the retrying reply stays in the outbox, to be tried again after the test file is done with the server
  it('a reply the SMTP server refuses for good is Failed with the server’s code and words; a temporary refusal is Retrying', async () => {
    const seen = attempts.length;
    smtp.refuseRecipients({ code: 550, message: '5.1.1 No such user here' });
    try {
      const res = await call('POST', `/api/v1/requests/${requestId}/replies`, { text: 'Refused.' });
      expect(res.status).toBe(201);
      const outboxId = res.json.delivery.outboxId as number;
      await attempted.until(() => attempts.slice(seen).some((a) => a.id === outboxId));
      expect(attempts.slice(seen).find((a) => a.id === outboxId)).toMatchObject({ ok: false, gaveUp: true });
      const shown = await call('GET', `/api/v1/requests/${requestId}`);
      const out = shown.json.conversations.find((c: AnyJson) => c.id === res.json.id);
      expect(out.delivery).toMatchObject({ state: 'failed', status: '550', bounced: false, sentAt: null });
      expect(out.delivery.reason).toMatch(/refused the mail: .*550 5\.1\.1 No such user here/);

      smtp.refuseRecipients({ code: 451, message: '4.3.0 Try again later' });
      const later = await call('POST', `/api/v1/requests/${requestId}/replies`, { text: 'Later.' });
      const laterId = later.json.delivery.outboxId as number;
      await attempted.until(() => attempts.slice(seen).some((a) => a.id === laterId));
      const again = await call('GET', `/api/v1/requests/${requestId}`);
      const retrying = again.json.conversations.find((c: AnyJson) => c.id === later.json.id);
      expect(retrying.delivery).toMatchObject({ state: 'retrying', status: '451', attempts: 1 });
    } finally {
      smtp.refuseRecipients(null);
    }
  }, 60_000);

  it('a reply the server takes for some recipients and refuses for others is Sent, saying for whom it was refused (API, page words, CLI)', async () => {
    const seen = attempts.length;
    smtp.refuseRecipients({ code: 550, message: '5.1.1 No such user here' }, [GONE]);
    try {
      const res = await call('POST', `/api/v1/requests/${requestId}/replies`, {
        text: 'Partly refused.',
        cc: [GONE],
      });
      expect(res.status, JSON.stringify(res.json)).toBe(201);
      const outboxId = res.json.delivery.outboxId as number;
      await attempted.until(() => attempts.slice(seen).some((a) => a.id === outboxId));
      expect(attempts.slice(seen).find((a) => a.id === outboxId)).toMatchObject({ ok: true });
      const mail = smtp.mails.at(-1)!;
      expect(mail.to).toEqual([CUSTOMER]);
      const shown = await call('GET', `/api/v1/requests/${requestId}`);
      const out = shown.json.conversations.find((c: AnyJson) => c.id === res.json.id);
      expect(out.delivery).toMatchObject({ state: 'sent', reason: `refused by the server for ${GONE}` });
      expect(deliveryWords(out.delivery)).toBe(`Sent, but refused by the server for ${GONE}`);
      const cli = await spawnCli(['requests', 'show', String(requestId)], env);
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toContain(`but refused by the server for ${GONE}`);
    } finally {
      smtp.refuseRecipients(null);
    }
  }, 60_000);
});

function spawnCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'mailintake.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
