import { createReadStream, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusRoot } from '../../test/kit/corpus.js';
import { parsedMail } from '../../test/kit/parsed-mail.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { autoSubmitted, decideThread, subjectRequestId, threadCandidates } from './classify.js';
import { parseMail } from './parse.js';
import type { ParsedMail, ThreadFacts } from './types.js';

const corpus = corpusRoot;
const haveCorpus = existsSync(corpus);
if (!haveCorpus) {
  console.warn(
    `[classify.test] SKIPPING corpus tests: no corpus at ${corpus} (set MAILINTAKE_CORPUS to its folder)`,
  );
}

const mail = parsedMail;

const noFacts = (over: Partial<ThreadFacts> = {}): ThreadFacts => ({
  ownMessageIdRequest: null,
  byMessageId: new Map(),
  subjectRequestExists: false,
  ...over,
});

const on = { headerThreading: true };
const off = { headerThreading: false };

describe('threadCandidates', () => {
  it('In-Reply-To first, then References newest first, de-duplicated', () => {
    const m = mail({ inReplyTo: ['c@x'], references: ['a@x', 'b@x', 'c@x'] });
    expect(threadCandidates(m)).toEqual({ headerIds: ['c@x', 'b@x', 'a@x'], subjectRequestId: null });
  });

  it('reads ##N## and [##N##] subject tokens, the first usable one', () => {
    expect(subjectRequestId('Re: [Request ##123##] Printer')).toBe(123);
    expect(subjectRequestId('[##7##] and ##8##')).toBe(7);
    expect(subjectRequestId('##007##')).toBe(7);
    expect(subjectRequestId('# #12## or ##12# or #12#')).toBeNull();
    expect(subjectRequestId('##abc##')).toBeNull();
  });

  it('ignores absurd numbers beyond Number.MAX_SAFE_INTEGER (and 0)', () => {
    expect(subjectRequestId('##99999999999999999999##')).toBeNull();
    expect(subjectRequestId('##99999999999999999999## ##5##')).toBe(5);
    expect(subjectRequestId(`##${Number.MAX_SAFE_INTEGER}##`)).toBe(Number.MAX_SAFE_INTEGER);
    expect(subjectRequestId('##0##')).toBeNull();
  });
});

describe('decideThread', () => {
  it('(1) a Message-ID seen before is a duplicate, before anything else', () => {
    const m = mail({ inReplyTo: ['a@x'], subject: '##5##' });
    const d = decideThread(m, on, noFacts({ ownMessageIdRequest: 9, byMessageId: new Map([['a@x', 5]]) }));
    expect(d.kind).toBe('duplicate');
    expect(d.kind === 'duplicate' && d.requestId).toBe(9);
    expect(d.reasons[0]).toContain('<new@example.com>');
    expect(d.reasons[0]).toContain('#9');
  });

  it('(2) In-Reply-To of a known mail makes a conversation, naming the header and the id', () => {
    const m = mail({ inReplyTo: ['a@x'], references: ['r@x'] });
    const d = decideThread(
      m,
      on,
      noFacts({
        byMessageId: new Map([
          ['a@x', 5],
          ['r@x', 6],
        ]),
      }),
    );
    expect(d).toEqual({
      kind: 'conversation',
      requestId: 5,
      reasons: ['In-Reply-To <a@x> matches a mail of request #5'],
    });
  });

  it('(2) the newest known References id wins when In-Reply-To is unknown', () => {
    const m = mail({ inReplyTo: ['unknown@x'], references: ['old@x', 'newer@x', 'unknown@x'] });
    const d = decideThread(
      m,
      on,
      noFacts({
        byMessageId: new Map([
          ['old@x', 1],
          ['newer@x', 2],
        ]),
      }),
    );
    expect(d).toEqual({
      kind: 'conversation',
      requestId: 2,
      reasons: ['References <newer@x> matches a mail of request #2'],
    });
  });

  it('(3) header threading off: headers are ignored, the subject token threads', () => {
    const m = mail({ inReplyTo: ['a@x'], subject: 'Re: [##77##] Printer' });
    const facts = noFacts({ byMessageId: new Map([['a@x', 5]]), subjectRequestExists: true });
    expect(decideThread(m, off, facts)).toEqual({
      kind: 'conversation',
      requestId: 77,
      reasons: [
        'header threading is off for this portal (In-Reply-To/References are not used)',
        'subject token ##77##',
      ],
    });
  });

  it('(3) headers that match nothing fall through to the subject token', () => {
    const m = mail({ inReplyTo: ['gone@x'], subject: 'Re: ##77##' });
    const d = decideThread(m, on, noFacts({ subjectRequestExists: true }));
    expect(d).toEqual({
      kind: 'conversation',
      requestId: 77,
      reasons: ['no In-Reply-To/References matched a known mail', 'subject token ##77##'],
    });
  });

  it('(4) otherwise a new request, with every reason', () => {
    expect(decideThread(mail(), on, noFacts())).toEqual({
      kind: 'new-request',
      reasons: ['the mail has no In-Reply-To/References headers', 'subject has no ##id## token'],
    });
    expect(decideThread(mail({ inReplyTo: ['a@x'], subject: '##12##' }), on, noFacts())).toEqual({
      kind: 'new-request',
      reasons: [
        'no In-Reply-To/References matched a known mail',
        'subject token ##12## names no request of this portal',
      ],
    });
    expect(
      decideThread(mail({ inReplyTo: ['a@x'] }), off, noFacts({ byMessageId: new Map([['a@x', 5]]) })),
    ).toEqual({
      kind: 'new-request',
      reasons: [
        'header threading is off for this portal (In-Reply-To/References are not used)',
        'subject has no ##id## token',
      ],
    });
  });

  it('a valid reply address threads after the headers, before the subject, header threading on or off', () => {
    const reply = { kind: 'valid' as const, requestId: 7, address: 'support+7.abcdefghij@example.com' };
    const stripped = mail({ subject: 'no token here' });
    for (const settings of [on, off]) {
      const d = decideThread(stripped, settings, noFacts({ replyAddress: reply }));
      expect(d).toMatchObject({ kind: 'conversation', requestId: 7 });
      expect(d.reasons.at(-1)).toBe(
        'sent to the reply address <support+7.abcdefghij@example.com> of request #7',
      );
    }
    // the headers name the mail answered: they win
    const both = mail({ inReplyTo: ['a@x'], subject: '##8##' });
    const byHeader = decideThread(
      both,
      on,
      noFacts({ byMessageId: new Map([['a@x', 5]]), replyAddress: reply }),
    );
    expect(byHeader).toMatchObject({ kind: 'conversation', requestId: 5 });
    // the signed address is stronger than a subject token anyone can type
    const bySig = decideThread(both, on, noFacts({ subjectRequestExists: true, replyAddress: reply }));
    expect(bySig).toMatchObject({ kind: 'conversation', requestId: 7 });
  });

  it('an invalid reply address is never used to thread, and says why', () => {
    const forged = { kind: 'invalid' as const, requestId: 7, address: 'support+7.aaaaaaaaaa@example.com' };
    const d = decideThread(mail({ subject: 'hello' }), on, noFacts({ replyAddress: forged }));
    expect(d.kind).toBe('new-request');
    expect(d.reasons).toContain(
      '<support+7.aaaaaaaaaa@example.com> looks like a reply address of request #7 but its signature is not ours: not used for threading',
    );
    const withToken = decideThread(
      mail({ subject: '##3##' }),
      on,
      noFacts({ replyAddress: forged, subjectRequestExists: true }),
    );
    expect(withToken).toMatchObject({ kind: 'conversation', requestId: 3 });
  });

  it('an auto-reply still threads normally (flagged in the trace, never dropped)', () => {
    const m = mail({ inReplyTo: ['a@x'], headers: { 'auto-submitted': 'auto-replied' } });
    expect(decideThread(m, on, noFacts({ byMessageId: new Map([['a@x', 5]]) })).kind).toBe('conversation');
    expect(autoSubmitted(m)?.kind).toBe('auto-reply');
  });
});

describe('autoSubmitted (synthetic headers)', () => {
  const kind = (headers: Record<string, string>, over: Partial<ParsedMail> = {}) =>
    autoSubmitted(mail({ headers, ...over }))?.kind ?? null;

  it('RFC 3834 Auto-Submitted: anything but "no"', () => {
    expect(kind({ 'auto-submitted': 'auto-replied' })).toBe('auto-reply');
    expect(kind({ 'auto-submitted': 'Auto-Generated (postmaster)' })).toBe('bulk');
    expect(kind({ 'auto-submitted': 'auto-notified' })).toBe('bulk');
    expect(kind({ 'auto-submitted': 'no' })).toBeNull();
    expect(kind({ 'auto-submitted': 'No (a person wrote this)' })).toBeNull();
  });

  it('bounces: DSN content type and X-Failed-Recipients', () => {
    expect(kind({ 'content-type': 'multipart/report; report-type="delivery-status"; boundary="b"' })).toBe(
      'bounce',
    );
    expect(kind({ 'content-type': 'Multipart/Report; Report-Type=delivery-status' })).toBe('bounce');
    expect(kind({ 'x-failed-recipients': 'gone@example.com' })).toBe('bounce');
    expect(kind({ 'content-type': 'multipart/report; report-type=disposition-notification' })).toBe(
      'auto-reply',
    );
    expect(kind({ 'content-type': 'multipart/mixed; boundary="delivery-status"' })).toBeNull();
  });

  it('Precedence, X-Autoreply, X-Autorespond, X-Auto-Response-Suppress, X-Loop', () => {
    expect(kind({ precedence: 'bulk' })).toBe('bulk');
    expect(kind({ precedence: 'Junk' })).toBe('bulk');
    expect(kind({ precedence: 'list' })).toBe('bulk');
    expect(kind({ precedence: 'auto_reply' })).toBe('auto-reply');
    expect(kind({ precedence: 'first-class' })).toBeNull();
    expect(kind({ 'x-autoreply': 'yes' })).toBe('auto-reply');
    expect(kind({ 'x-autorespond': 'Vacation' })).toBe('auto-reply');
    expect(kind({ 'x-auto-response-suppress': 'All' })).toBe('auto-reply');
    expect(kind({ 'x-auto-response-suppress': 'None' })).toBeNull();
    expect(kind({ 'x-loop': 'help@example.com' })).toBe('loop-suspect');
  });

  it('null Return-Path: a bounce from MAILER-DAEMON, else an automatic reply', () => {
    expect(kind({ 'return-path': '<>' })).toBe('auto-reply');
    expect(
      kind({ 'return-path': '<>' }, { from: { address: 'mailer-daemon@mx.example.com', name: '' } }),
    ).toBe('bounce');
    expect(kind({ 'return-path': '<ann@example.com>' })).toBeNull();
    expect(autoSubmitted(mail({ headers: { 'return-path': '<>' } }))?.reason).toContain('Return-Path <>');
  });

  it('plain-text bounces: a bounce subject from postmaster or an unnamed sender, not from a customer', () => {
    expect(kind({}, { from: null, subject: 'Mail delivery failed' })).toBe('bounce');
    expect(
      kind({}, { from: { address: 'postmaster@example.org', name: '' }, subject: 'Undeliverable Mail' }),
    ).toBe('bounce');
    // A customer forwarding a bounce to ask what went wrong is a customer.
    expect(kind({}, { subject: 'Undeliverable: my order' })).toBeNull();
  });

  it('an ordinary mail, including one from a mailing list, is not flagged', () => {
    expect(kind({})).toBeNull();
    // List-Id alone does not flag: a support address that is a mailing list carries it on every customer mail.
    expect(kind({ 'list-id': '<support.example.com>' })).toBeNull();
  });
});

describe.skipIf(!haveCorpus)('autoSubmitted and threadCandidates on real mails (corpus)', () => {
  let dir: string;
  let blobs: FileBlobStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailintake-classify-'));
    blobs = new FileBlobStore(dir);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const parse = (rel: string) => parseMail(createReadStream(join(corpus, rel)), { blobs });

  it('RFC 3834 auto-replies from sisimai are flagged auto-reply', async () => {
    const expected: Record<string, string> = {
      'rfc3834-01.eml': 'Auto-Submitted: auto-replied (RFC 3834)',
      'rfc3834-02.eml': 'X-Auto-Response-Suppress: All',
      'rfc3834-04.eml': 'X-Auto-Response-Suppress: All',
      'rfc3834-05.eml': 'Auto-Submitted: auto-replied (RFC 3834)',
      'rfc3834-06.eml': 'Auto-Submitted: auto-replied (RFC 3834)',
    };
    for (const [file, reason] of Object.entries(expected)) {
      expect(autoSubmitted(await parse(`sisimai-set-of-emails/maildir/bsd/${file}`)), file).toEqual({
        kind: 'auto-reply',
        reason,
      });
    }
  });

  it('DSN bounces are flagged bounce', async () => {
    for (const file of [
      'sisimai-set-of-emails/maildir/bsd/lhost-sendmail-18.eml',
      'sisimai-set-of-emails/maildir/err/make-test-31.eml',
      'postal-mime/test/fixtures/bounce.eml',
      'mailparser/test/fixtures/delivery-status.eml',
    ]) {
      expect(autoSubmitted(await parse(file))?.kind, file).toBe('bounce');
    }
  });

  it('ordinary customer mails are not flagged', async () => {
    for (const file of [
      'otobo/scripts/test/sample/PostMaster/PostMaster-Test12.box',
      'otobo/scripts/test/sample/PostMaster/InlineImage.box',
      'otobo/scripts/test/sample/EmailParser/NestedMessage-Test1.box',
    ]) {
      expect(autoSubmitted(await parse(file)), file).toBeNull();
    }
  });

  it('flags nearly every sisimai bounce (maildir/bsd lhost-*, rhost-*) as machine-sent', async () => {
    const folder = join(corpus, 'sisimai-set-of-emails/maildir/bsd');
    const files = readdirSync(folder).filter((f) => /^[lr]host-/.test(f));
    const missed: string[] = [];
    const kinds = new Map<string, number>();
    for (const f of files) {
      const result = autoSubmitted(await parse(`sisimai-set-of-emails/maildir/bsd/${f}`));
      kinds.set(result?.kind ?? 'none', (kinds.get(result?.kind ?? 'none') ?? 0) + 1);
      if (!result) missed.push(f);
    }
    console.log(
      `[classify.test] sisimai bounces: ${files.length} files, ${[...kinds].map(([k, n]) => `${k}: ${n}`).join(', ')}` +
        (missed.length ? `\n  not flagged: ${missed.join(' ')}` : ''),
    );
    expect(missed.length / files.length).toBeLessThan(0.05);
  }, 120_000);

  it('threadCandidates of a real reply', async () => {
    const m = await parse('james-mime4j/mbox/src/test/resources/test-1/mbox.rlug-1');
    const c = threadCandidates(m);
    expect(c.headerIds.slice(0, m.inReplyTo.length)).toEqual(m.inReplyTo);
    expect(new Set(c.headerIds)).toEqual(new Set([...m.inReplyTo, ...m.references]));
  });
});
