import type { Element } from 'domhandler';
import { Hono } from 'hono';
import { parseDocument } from 'htmlparser2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import {
  BODY_CSP,
  BODY_CSP_WITH_IMAGES,
  bodyPath,
  mountRequestBodyRoutes,
} from '../src/features/requests/body-routes.js';
import { isMailintakeError } from '../src/kernel/errors.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { hostileMailHtml, htmlSafetyProblems } from './kit/xss-vectors.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * The mail body frame end to end: a hostile mail taken in through a real Dovecot on each engine, then its body
 * fetched from the frame routes mounted in a test app (the console mounts them behind its session check):
 * the frame's own headers, nothing active left in the parsed document, the cid image served from our store.
 */
describe.each(ENGINES)('the mail body frame on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  let app: Hono;
  let requestId: number;
  let conversationId: number;
  let secondReplyId: number;
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    'base64',
  );

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'hostile', password: 'hostile-pw' }] });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
    app = new Hono();
    app.onError((err) =>
      isMailintakeError(err) && err.code === 'NOT_FOUND'
        ? new Response(err.message, { status: 404 })
        : new Response(String(err), { status: 500 }),
    );
    mountRequestBodyRoutes(app, rt.services);

    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'hostile', 'hostile'));
    await deliverMaildir(dovecot, 'hostile', [
      buildMail({
        messageId: 'xss@example.test',
        subject: 'Hostile HTML',
        body: 'plain part',
        html: `${hostileMailHtml('logo@x')}\n<p><img src="cid:page@x" alt="not an image"></p>`,
        attachments: [
          { filename: 'logo.png', contentType: 'image/png', content: png, inlineCid: 'logo@x' },
          {
            filename: 'doc.pdf',
            contentType: 'application/pdf',
            content: Buffer.from('%PDF-1.4 <script>alert(1)</script>'),
            inlineCid: 'page@x',
          },
        ],
      }),
    ]);
    expect((await rt.services.fetch.once({ mailbox: 'hostile' }))[0]).toMatchObject({ created: 1 });
    await deliverMaildir(dovecot, 'hostile', [
      buildMail({
        messageId: 'reply@example.test',
        inReplyTo: 'xss@example.test',
        subject: 'Re: Hostile HTML',
        body: 'See <script>alert(1)</script> & https://example.test/a?b=1&c=2. Or mail me@example.test.',
      }),
    ]);
    expect((await rt.services.fetch.once({ mailbox: 'hostile' }))[0]).toMatchObject({ appended: 1 });
    // A second reply whose HTML names the first mail's Content-ID without carrying the part: cids are per mail.
    await deliverMaildir(dovecot, 'hostile', [
      buildMail({
        messageId: 'reply2@example.test',
        inReplyTo: 'xss@example.test',
        subject: 'Re: Hostile HTML',
        body: 'second reply',
        html: '<p>Second reply <img src="cid:logo@x" alt="borrowed"></p>',
      }),
    ]);
    expect((await rt.services.fetch.once({ mailbox: 'hostile' }))[0]).toMatchObject({ appended: 1 });
    const list = await rt.services.requests.list({});
    requestId = list.items[0]!.id;
    const req = await rt.services.requests.show(requestId);
    conversationId = req.conversations[0]!.id;
    secondReplyId = req.conversations[1]!.id;
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  const elements = (html: string): Element[] => {
    const out: Element[] = [];
    const walk = (nodes: unknown[]) => {
      for (const n of nodes as Element[]) {
        if (n.type === 'tag' || n.type === 'script' || n.type === 'style') out.push(n);
        if ('children' in n && n.children) walk(n.children);
      }
    };
    walk(parseDocument(html).children);
    return out;
  };

  it('serves the HTML body sanitised, as a document with its own CSP, nosniff and no referrer', async () => {
    const res = await app.request(bodyPath(requestId, null));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toBe(BODY_CSP);
    expect(res.headers.get('content-security-policy')).toBe(
      "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
    );
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-blocked-remote-images')).toBe('1');
    const doc = await res.text();
    expect(doc.startsWith('<!doctype html>')).toBe(true);

    const body = /<body>([\s\S]*)<\/body>/.exec(doc)?.[1] ?? '';
    const inline = `/requests/${requestId}/inline/`;
    expect(htmlSafetyProblems(body, { remoteImages: false, inlinePrefix: inline })).toEqual([]);
    // The whole document: our own head has one style element and nothing else active.
    const all = elements(doc);
    expect(
      all.filter((e) =>
        ['script', 'iframe', 'object', 'embed', 'base', 'form', 'svg', 'math'].includes(e.name),
      ),
    ).toEqual([]);
    expect(all.filter((e) => e.name === 'style')).toHaveLength(1);
    expect(all.filter((e) => e.name === 'meta').map((e) => e.attribs)).toEqual([{ charset: 'utf-8' }]);
    expect(
      all.flatMap((e) => Object.keys(e.attribs)).filter((a) => a.toLowerCase().startsWith('on')),
    ).toEqual([]);
    expect(doc).toContain(
      '<a href="https://example.test/page" target="_blank" rel="noopener noreferrer">our page</a>',
    );

    // Both cid images rewritten to our inline route; the remote pixel gone.
    const imgs = all.filter((e) => e.name === 'img').map((e) => e.attribs.src ?? '');
    expect(imgs).toHaveLength(2);
    expect(imgs.every((s) => s.startsWith(inline))).toBe(true);
    expect(doc).not.toContain('tracker.example');
  });

  it('serves the cid image from the store with its image type, and a non-image part as an attachment', async () => {
    const doc = await (await app.request(bodyPath(requestId, null))).text();
    const [logoSrc, pageSrc] = elements(doc)
      .filter((e) => e.name === 'img')
      .map((e) => e.attribs.src ?? '');
    const logo = await app.request(logoSrc!);
    expect(logo.status).toBe(200);
    expect(logo.headers.get('content-type')).toBe('image/png');
    expect(logo.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await logo.arrayBuffer())).toEqual(png);

    const page = await app.request(pageSrc!);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('application/octet-stream');
    expect(page.headers.get('content-disposition')).toMatch(/^attachment; filename="doc.pdf"/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    await page.arrayBuffer();

    // An attachment reached through another request's path is not found.
    const other = logoSrc!.replace(`/requests/${requestId}/`, `/requests/${requestId + 1}/`);
    expect((await app.request(other)).status).toBe(404);
  });

  it('with ?images=1 shows remote images and says so in the CSP', async () => {
    const res = await app.request(`${bodyPath(requestId, null)}?images=1`);
    expect(res.headers.get('content-security-policy')).toBe(BODY_CSP_WITH_IMAGES);
    expect(res.headers.get('content-security-policy')).toContain("img-src 'self' data: https: http:;");
    expect(res.headers.get('x-blocked-remote-images')).toBe('0');
    const doc = await res.text();
    expect(doc).toContain('<img src="https://tracker.example/pixel.gif" alt="pixel" />');
    expect(doc).not.toMatch(/<script/i);
  });

  it('serves a plain-text conversation escaped, with its links made safely clickable', async () => {
    const res = await app.request(bodyPath(requestId, conversationId));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(BODY_CSP);
    const doc = await res.text();
    expect(doc).toContain('See &lt;script&gt;alert(1)&lt;/script&gt; &amp; ');
    expect(doc).toContain(
      '<a href="https://example.test/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">https://example.test/a?b=1&amp;c=2</a>.',
    );
    expect(doc).toContain(
      '<a href="mailto:me@example.test" target="_blank" rel="noopener noreferrer">me@example.test</a>.',
    );
    expect(elements(doc).filter((e) => e.name === 'script')).toEqual([]);
  });

  it("resolves cid: only among the parts of the same mail (a reply cannot borrow the first mail's image)", async () => {
    const res = await app.request(bodyPath(requestId, secondReplyId));
    expect(res.status).toBe(200);
    const doc = await res.text();
    expect(doc).toContain('<p>Second reply </p>');
    expect(elements(doc).filter((e) => e.name === 'img')).toEqual([]);
  });

  it('embedded (the console frame, whose requests carry no session): cid images as data: URLs, other parts left out', async () => {
    const embedded = new Hono();
    embedded.onError((err) => new Response(String(err), { status: 500 }));
    mountRequestBodyRoutes(embedded, rt.services, { inlineImages: 'embedded' });
    const res = await embedded.request(bodyPath(requestId, null));
    expect(res.headers.get('content-security-policy')).toBe(BODY_CSP);
    const doc = await res.text();
    const body = /<body>([\s\S]*)<\/body>/.exec(doc)?.[1] ?? '';
    // the inline route is not named at all, and what is left passes the same safety reading
    expect(htmlSafetyProblems(body, { remoteImages: false, inlinePrefix: 'data:image/png;base64,' })).toEqual(
      [],
    );
    const imgs = elements(doc).filter((e) => e.name === 'img');
    // the PNG is in the document; the PDF named as cid:page@x is not an image and is left out
    expect(imgs.map((e) => e.attribs.src)).toEqual([`data:image/png;base64,${png.toString('base64')}`]);
    expect(doc).not.toContain('/inline/');
  });

  it('answers 404 for an unknown request or a conversation of another request', async () => {
    expect((await app.request(bodyPath(requestId + 100, null))).status).toBe(404);
    expect((await app.request(bodyPath(requestId + 1, conversationId))).status).toBe(404);
    expect((await app.request(`/requests/${requestId}/conversations/99999999999999999999/body`)).status).toBe(
      404,
    );
  });
});
