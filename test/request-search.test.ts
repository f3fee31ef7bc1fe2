import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { SEARCH_COUNT_CAP } from '../src/features/requests/work.js';
import { commitBatch } from '../src/intake/commit-mail.js';
import { parseMail } from '../src/mail/parse.js';
import { FileBlobStore } from '../src/store/blobs/blob-store.js';
import { nowIso, openStore, type Store } from '../src/store/db.js';
import { DOCUMENT_CHARS } from '../src/store/migrations/0011-request-search-documents.js';
import { buildMail } from './kit/mails.js';
import { prng } from './kit/prng.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Issue 12 §5, the search at work on both engines: mails committed by the intake's own path (parse, then the
 * batch commit) are found by the words of their conversations and of HTML-only bodies; the requester filter
 * ignores case in any script; hostile queries never error and never match everything; a search's total is
 * exact up to the cap and says so past it. The migration of an existing store: request-search-migration.test.ts.
 */
describe.each(ENGINES)('request search, %s', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let rt: Runtime;
  let store: Store;
  let mailbox: { id: number; name: string; portalId: number; headerThreading: boolean };
  let serial = 0;
  const ids: Record<string, number> = {};

  /** One mail through the product's parse and commit, as a round takes it in. */
  const takeIn = async (raw: Buffer) => {
    const parsed = await parseMail(Readable.from([raw]), {
      blobs: new FileBlobStore(path.join(fresh.config.dataDir, 'blobs')),
    });
    serial++;
    const [result] = await commitBatch(store, mailbox, [
      {
        serverIdentity: `t;1;${serial}`,
        retry: false,
        rawSha256: null,
        rawPacked: null,
        size: raw.length,
        parsed,
        error: null,
      },
    ]);
    if (!result || result.outcome === 'error' || result.outcome === 'ignored') {
      throw new Error(`not taken in: ${JSON.stringify(result)}`);
    }
    return result;
  };
  const found = async (q: string, more: Record<string, string> = {}) =>
    (await rt.services.requests.list({ q, ...more })).items.map((r) => r.id);

  beforeAll(async () => {
    fresh = await freshConfig(engine);
    rt = await openRuntime(fresh.config);
    store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    const portal = await store.db
      .selectFrom('portals')
      .select('id')
      .where('name', '=', 'default')
      .executeTakeFirstOrThrow();
    const box = await store.db
      .insertInto('mailboxes')
      .values({
        name: 'support',
        portal_id: portal.id,
        protocol: 'imap',
        enabled: 0,
        settings: '{}',
        secrets: '{}',
        created_at: nowIso(),
        updated_at: nowIso(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    mailbox = { id: box.id, name: 'support', portalId: portal.id, headerThreading: true };

    ids.first = (
      await takeIn(
        buildMail({
          messageId: 'first@example.test',
          subject: 'Scanner offline',
          body: 'The alpaca scanner on floor two is offline.\r\n',
        }),
      )
    ).requestId;
    const reply = await takeIn(
      buildMail({
        messageId: 'reply@example.test',
        inReplyTo: 'first@example.test',
        subject: 'Re: Scanner offline',
        body: 'Replaced the quokka cable, please try again.\r\n',
      }),
    );
    expect(reply).toMatchObject({ outcome: 'appended', requestId: ids.first });
    // HTML-only with an attachment: mailparser derives no text for an HTML part that is not the root
    const html =
      '<html><head><style>.zebra{color:red}</style></head><body><div class="wobble">' +
      '<p>The <b>fjord</b>&nbsp;printer says caf&eacute;</p><script>var narwhal=1</script></div></body></html>';
    const raw = [
      'From: Html Sender <html@example.test>',
      'To: support@example.test',
      'Subject: Only markup',
      'Message-ID: <html-only@example.test>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/html; charset=utf-8',
      '',
      html,
      '--b1',
      'Content-Type: application/octet-stream; name="a.bin"',
      'Content-Disposition: attachment; filename="a.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      'AAECAw==',
      '--b1--',
      '',
    ].join('\r\n');
    ids.html = (await takeIn(Buffer.from(raw))).requestId;
    // a requester address in another script's upper case (SMTPUTF8 headers are UTF-8 as sent)
    ids.anne = (
      await takeIn(buildMail({ from: 'Änne <ÄNNE@EXÄMPLE.ORG>', subject: 'Umlaut', body: 'hallo\r\n' }))
    ).requestId;
    ids.other = (
      await takeIn(buildMail({ from: 'anne@example.org', subject: 'Plain anne', body: 'hallo\r\n' }))
    ).requestId;
  });

  afterAll(async () => {
    await store?.close();
    await rt?.close();
    await fresh?.cleanup();
  });

  it("a conversation's words find its request, also together with the first mail's words", async () => {
    expect(await found('quokka')).toEqual([ids.first]);
    expect(await found('alpaca quokka')).toEqual([ids.first]);
    expect(await found('quokka', { status: 'closed' })).toEqual([]);
  });

  it("an HTML-only body's text finds it; its tags, attributes, styles and scripts do not", async () => {
    const row = await store.db
      .selectFrom('requests')
      .select(['text_body', 'html_text'])
      .where('id', '=', ids.html!)
      .executeTakeFirstOrThrow();
    expect(row.text_body ?? '').toBe('');
    expect(row.html_text).toContain('fjord printer');
    expect(await found('fjord')).toEqual([ids.html]);
    expect(await found('café')).toEqual([ids.html]);
    for (const q of ['wobble', 'zebra', 'narwhal', 'div', 'nbsp']) expect(await found(q), q).toEqual([]);
  });

  it('the requester filter ignores case in any script, and only that', async () => {
    for (const requester of ['änne@exämple.org', 'ÄNNE@EXÄMPLE.ORG', 'Änne@Exämple.org']) {
      const page = await rt.services.requests.list({ requester });
      expect(
        page.items.map((r) => r.id),
        requester,
      ).toEqual([ids.anne]);
      expect(page.total).toBe(1);
    }
    expect(
      (await rt.services.requests.list({ requester: 'anne@example.org' })).items.map((r) => r.id),
    ).toEqual([ids.other]);
  });

  it('hostile queries never error and never match everything', async () => {
    const all = (await rt.services.requests.list({})).total;
    const rand = prng(20261207);
    const pieces = [
      '"',
      '*',
      'NEAR(',
      '-',
      ':',
      '(',
      ')',
      '^',
      '\u0000',
      'OR',
      'AND',
      'NOT',
      '&',
      '|',
      '!',
      "'",
      '\\',
    ];
    const queries = [
      '"',
      'NEAR(',
      '*',
      '-',
      ':',
      '\u0000',
      'a\u0000b',
      "'",
      '!!',
      'x'.repeat(500),
      Array.from({ length: 20 }, (_, i) => (i === 0 ? 'alpaca' : `nope${i}`)).join(' '),
      `alpaca ${'" '.repeat(200)}`,
    ];
    for (let run = 0; run < 150; run++) {
      let q = '';
      const len = 1 + Math.floor(rand() * 40);
      for (let i = 0; i < len && q.length < 480; i++) {
        q +=
          rand() < 0.7
            ? pieces[Math.floor(rand() * pieces.length)]
            : String.fromCharCode(Math.floor(rand() * 0x3000));
        if (rand() < 0.3) q += ' ';
      }
      queries.push(q);
    }
    for (const q of queries) {
      const page = await rt.services.requests.list({ q: q.slice(0, 500) });
      expect(page.total, JSON.stringify(q)).toBeLessThan(all);
      expect(page.items.length, JSON.stringify(q)).toBe(page.total);
    }
    // 16 words are used: a 17th that would exclude everything is not, and the 16 must all occur
    const sixteen = ['alpaca', ...Array.from({ length: 15 }, () => 'scanner')];
    expect(await found([...sixteen, 'nope'].join(' '))).toEqual([ids.first]);
    expect(await found(['nope', ...sixteen].join(' '))).toEqual([]);
  });

  it('a total is exact up to the cap, says totalCapped past it, and pages stay newest first either way', async () => {
    const before = (await rt.services.requests.list({})).total;
    const many = SEARCH_COUNT_CAP + 5;
    const rows = Array.from({ length: many }, (_, i) => ({
      portal_id: mailbox.portalId,
      mailbox_id: null,
      subject: `bulk ${i}`,
      requester_address: null,
      requester_name: null,
      to_addresses: '[]',
      cc_addresses: '[]',
      message_id: null,
      text_body: i % 2 === 0 ? 'walrus even' : 'walrus odd',
      html_body: null,
      mail_date: null,
      status: i % 2 === 0 ? 'open' : 'closed',
      created_at: nowIso(),
      updated_at: nowIso(),
    }));
    for (let i = 0; i < rows.length; i += 200) {
      await store.db
        .insertInto('requests')
        .values(rows.slice(i, i + 200))
        .execute();
    }
    const ordered = (
      await store.db
        .selectFrom('requests')
        .select('id')
        .where('subject', 'like', 'bulk %')
        .orderBy('id', 'desc')
        .execute()
    ).map((r) => r.id);
    expect(ordered).toHaveLength(many);

    const first = await rt.services.requests.list({ q: 'walrus', limit: 20 });
    expect(first).toMatchObject({ total: SEARCH_COUNT_CAP, totalCapped: true });
    expect(first.items.map((r) => r.id)).toEqual(ordered.slice(0, 20));
    // from offset 1000 the count reaches 2000: every match is counted
    const last = await rt.services.requests.list({ q: 'walrus', offset: SEARCH_COUNT_CAP, limit: 20 });
    expect(last).toMatchObject({ total: many, totalCapped: false });
    expect(last.items.map((r) => r.id)).toEqual(ordered.slice(SEARCH_COUNT_CAP));
    // under the cap: exact, newest first, paged
    const odd = await rt.services.requests.list({ q: 'walrus odd', limit: 10, offset: 10 });
    expect(odd).toMatchObject({ total: Math.floor(many / 2), totalCapped: false });
    // row i has the i-th id: newest first, the odd rows are at the odd places
    expect(odd.items.map((r) => r.id)).toEqual(ordered.filter((_, j) => j % 2 === 1).slice(10, 20));
    const closed = await rt.services.requests.list({ q: 'walrus', status: 'closed', limit: 5 });
    expect(closed.items.map((r) => r.id)).toEqual(ordered.filter((_, j) => j % 2 === 1).slice(0, 5));
    expect(closed.totalCapped).toBe(false);
    // exactly the cap is not "more"
    const exact = await rt.services.requests.list({
      q: 'walrus',
      before: ordered[many - SEARCH_COUNT_CAP - 1],
    });
    expect(exact).toMatchObject({ total: SEARCH_COUNT_CAP, totalCapped: false });
    // a list without a search counts exactly, past the cap too
    expect(await rt.services.requests.list({})).toMatchObject({ total: before + many, totalCapped: false });
  });

  it('a document at its size limit goes in (PostgreSQL refuses a tsvector over 1 MB)', async () => {
    // two-character words of a 3-byte script, all different: about 4.7 bytes of tsvector per character, so
    // the document uncut (50,000 + 20 x 20,000 characters) would be over 2 MB
    const cjk = (k: number) =>
      String.fromCodePoint(0x4e00 + (k % 20_000)) + String.fromCodePoint(0x4e00 + Math.floor(k / 20_000));
    const words = (chars: number, from: number) =>
      Array.from({ length: Math.floor(chars / 3) }, (_, i) => cjk(from + i)).join(' ');
    const request = await store.db
      .insertInto('requests')
      .values({
        portal_id: mailbox.portalId,
        mailbox_id: null,
        subject: 'huge',
        requester_address: null,
        requester_name: null,
        to_addresses: '[]',
        cc_addresses: '[]',
        message_id: null,
        text_body: words(DOCUMENT_CHARS, 0),
        html_body: null,
        mail_date: null,
        status: 'open',
        created_at: nowIso(),
        updated_at: nowIso(),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    for (let c = 0; c < 25; c++) {
      await store.db
        .insertInto('conversations')
        .values({
          request_id: request.id,
          mailbox_id: null,
          from_address: null,
          from_name: null,
          to_addresses: '[]',
          cc_addresses: '[]',
          subject: 'more',
          message_id: null,
          text_body: words(DOCUMENT_CHARS / 2, 100_000 + c * 30_000),
          html_body: null,
          mail_date: null,
          created_at: nowIso(),
        })
        .execute();
    }
    expect(await found(cjk(5))).toEqual([request.id]);
    // the newest conversation's words are in (the oldest ones are past the document's end)
    expect(await found(cjk(100_000 + 24 * 30_000 + 3))).toEqual([request.id]);
    expect(await found(cjk(100_000 + 3))).toEqual([]);
  });
});
