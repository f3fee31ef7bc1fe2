import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseDocument } from 'htmlparser2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_CSP, BODY_CSP_WITH_IMAGES } from '../src/features/requests/body-routes.js';
import { CSP } from '../src/http/console/shell.js';
import { buildMail } from './kit/mails.js';
import { beaconVectors, hostileMailHtml } from './kit/xss-vectors.js';
import { type StrictPage, startBrowser, strictPage, type TestBrowser } from './support/browser.js';
import { cli, freePort, serve, signIn } from './support/console.js';
import { addMailbox, requestIds, takeIn } from './support/console-intake.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * Hostile mail in the console, in a real browser, on both engines. Mails carrying every vector of
 * test/kit/xss-vectors.ts (and the beacon vectors, which report back when they work) are taken in through a real
 * Dovecot and opened on their request pages in Chromium. Nothing may run: no dialog, no console error from our
 * origin, no request to another host (strictPage), no hit on the beacon (a listener on 127.0.0.2 counting every
 * request), no global set. The frames are sandboxed without scripts or same-origin and carry the body CSP.
 * Remote images load only after "Show images", and then from the "remote" host only.
 */
const ADMIN = { email: 'admin@example.org', password: 'a long admin passphrase' };
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

/** The stand-in for the internet: a listener on another loopback address, counting what reaches it. */
interface Beacon {
  origin: string;
  hits: string[];
  close(): Promise<void>;
}
async function startBeacon(): Promise<Beacon> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'image/gif', 'access-control-allow-origin': '*' });
    res.end(GIF);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.2:${port}`,
    hits,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

let browser: TestBrowser;
let dovecot: DovecotServer;
let beacon: Beacon;
beforeAll(async () => {
  browser = await startBrowser();
  beacon = await startBeacon();
  dovecot = await startDovecot({ users: [{ name: 'xss', password: 'xss-pw' }] });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await dovecot?.stop();
  await beacon?.close();
});

const SUBJECTS = {
  kit: 'Hostile HTML from the kit',
  beacons: 'Hostile HTML that reports back',
  images: 'A newsletter with images',
  text: 'Plain text with hostile text',
  header: `<img src=x onerror="alert('subject')"><script>alert('subject')</script>`,
};

describe.each(ENGINES)('hostile mail in the console (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let server: Awaited<ReturnType<typeof serve>>;
  let url: string;
  let ids: Map<string, number>;
  const pages: StrictPage[] = [];
  const id = (subject: string) => ids.get(subject) as number;

  /** Signed in as the admin, with the beacon's host let through on purpose: what reaches it is counted. */
  const open = async () => {
    beacon.hits.length = 0;
    const p = await strictPage(browser, url);
    pages.push(p);
    // registered after strictPage's own route, so it is asked first (playwright runs routes last-in first)
    await p.context.route(`${beacon.origin}/**`, (route) => route.continue());
    await signIn(p, url, ADMIN.email, ADMIN.password);
    return p;
  };
  const cookieOf = async (p: StrictPage) =>
    `mi_session=${(await p.context.cookies()).find((c) => c.name === 'mi_session')?.value}`;

  beforeAll(async () => {
    const port = await freePort();
    fresh = await freshConfig(engine);
    url = `http://127.0.0.1:${port}`;
    const env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    await addMailbox(env, dovecot, { name: 'xss', user: 'xss', portal: 'default' });
    const logo = { filename: 'logo.png', contentType: 'image/png', content: PNG, inlineCid: 'logo@x' };
    await takeIn(env, dovecot, {
      mailbox: 'xss',
      user: 'xss',
      mails: [
        buildMail({
          subject: SUBJECTS.kit,
          body: 'plain',
          html: hostileMailHtml('logo@x'),
          attachments: [logo],
        }),
        buildMail({
          subject: SUBJECTS.beacons,
          body: 'plain',
          html: beaconVectors(`${beacon.origin}/hit`)
            .map((v) => `<div>${v.html}</div>`)
            .join('\n'),
        }),
        buildMail({
          subject: SUBJECTS.images,
          body: 'plain',
          html: `<p>Our logo <img src="cid:logo@x" alt="logo" id="logo"> and a tracker <img src="${beacon.origin}/pixel.gif" alt="tracker"></p>`,
          attachments: [logo],
        }),
        buildMail({
          subject: SUBJECTS.text,
          body: [
            'Hello <script>alert("text")</script> & <img src=x onerror=alert(1)>',
            'javascript:alert(1) data:text/html,<script>alert(1)</script> ftp://files.example.test/x',
            'See https://example.test/a?b=1&c=2. Or mail me@example.test.',
            '',
          ].join('\r\n'),
        }),
        buildMail({
          from: '"<script>alert(\'from\')</script>" <evil@example.test>',
          subject: SUBJECTS.header,
        }),
      ],
    });
    ids = await requestIds(env);
    expect(ids.size).toBe(5);
    const made = await cli(
      env,
      ['user', 'create', '--email', ADMIN.email, '--role', 'admin'],
      `${ADMIN.password}\n`,
    );
    expect(made.code, made.err).toBe(0);
    server = await serve(env);
  }, 180_000);
  afterAll(async () => {
    for (const p of pages) await p.context.close();
    await server?.stop();
    await fresh?.cleanup();
  });

  it('no vector runs or loads anything on any request page; every frame is sandboxed with the body CSP', async () => {
    const p = await open();
    const cookie = await cookieOf(p);
    // the control: a request to the beacon from this browser does arrive, so no hits below means none was made
    await p.page.goto(`${beacon.origin}/control`);
    expect(beacon.hits).toEqual(['/control']);
    beacon.hits.length = 0;
    for (const subject of Object.values(SUBJECTS)) {
      const response = await p.page.goto(`${url}/requests/${id(subject)}`);
      expect(response?.status(), subject).toBe(200);
      expect(response?.headers()['content-security-policy']).toBe(CSP);
      // every frame loaded and every request any of them caused has ended: the verdict is on a quiet page
      await p.page.waitForLoadState('networkidle');
      const frames = p.page.locator('iframe.mail-frame');
      expect(await frames.count(), subject).toBeGreaterThan(0);
      for (const f of await frames.all()) {
        const sandbox = (await f.getAttribute('sandbox')) ?? '';
        expect(sandbox.split(/\s+/)).not.toContain('allow-scripts');
        expect(sandbox.split(/\s+/)).not.toContain('allow-same-origin');
        const src = (await f.getAttribute('src')) as string;
        const body = await fetch(`${url}${src}`, { headers: { cookie } });
        expect(body.headers.get('content-security-policy'), src).toBe(BODY_CSP);
        expect(body.headers.get('x-frame-options'), src).toBe('SAMEORIGIN');
        expect(body.headers.get('x-content-type-options'), src).toBe('nosniff');
        await body.text();
      }
      expect(
        await p.page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned),
      ).toBeUndefined();
    }
    expect(beacon.hits).toEqual([]);
    p.assertClean();
  });

  it('hostile headers are text on the list and the page', async () => {
    const p = await open();
    await p.page.goto(`${url}/requests`);
    await expect.poll(() => p.page.getByRole('link', { name: SUBJECTS.header }).count()).toBe(1);
    await p.page.goto(`${url}/requests/${id(SUBJECTS.header)}`);
    expect(await p.page.locator('h1').textContent()).toBe(`#${id(SUBJECTS.header)} ${SUBJECTS.header}`);
    expect(await p.page.locator('.request-head dl.facts').textContent()).toContain(
      `<script>alert('from')</script> <evil@example.test>`,
    );
    expect(await p.page.locator('main script, main img').count()).toBe(0);
    p.assertClean();
  });

  it('a plain-text body is escaped; only http(s) and mailto become links, opening outside without referrer', async () => {
    const p = await open();
    const cookie = await cookieOf(p);
    const requestId = id(SUBJECTS.text);
    await p.page.goto(`${url}/requests/${requestId}`);
    const src = (await p.page.locator('iframe.mail-frame').getAttribute('src')) as string;
    const doc = await (await fetch(`${url}${src}`, { headers: { cookie } })).text();
    expect(doc).toContain('Hello &lt;script&gt;alert(&quot;text&quot;)&lt;/script&gt; &amp; &lt;img src=x');
    const links: Record<string, string>[] = [];
    const walk = (nodes: unknown[]) => {
      for (const n of nodes as {
        type: string;
        name?: string;
        attribs?: Record<string, string>;
        children?: unknown[];
      }[]) {
        if (n.type === 'tag' && n.name === 'a') links.push(n.attribs ?? {});
        if (n.type === 'script') links.push({ script: 'found' });
        if (n.children) walk(n.children);
      }
    };
    walk(parseDocument(doc).children);
    expect(links).toEqual([
      { href: 'https://example.test/a?b=1&c=2', target: '_blank', rel: 'noopener noreferrer' },
      { href: 'mailto:me@example.test', target: '_blank', rel: 'noopener noreferrer' },
    ]);
    // and in the browser the frame shows them as links
    const frame = p.page.frameLocator('iframe.mail-frame');
    await expect.poll(() => frame.getByRole('link').count()).toBe(2);
    expect(
      await frame.getByRole('link', { name: 'https://example.test/a?b=1&c=2' }).getAttribute('rel'),
    ).toBe('noopener noreferrer');
    p.assertClean();
  });

  it('remote images load only after "Show images"; cid images come from our store at once', async () => {
    const p = await open();
    const requestId = id(SUBJECTS.images);
    await p.page.goto(`${url}/requests/${requestId}`);
    await p.page.waitForLoadState('networkidle');
    expect(beacon.hits).toEqual([]);
    // the frame's requests carry no session (its origin is opaque): the cid image travels in the document
    const logo = p.page.frameLocator('iframe.mail-frame').getByRole('img', { name: 'logo' });
    expect(await logo.getAttribute('src')).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
    expect(await logo.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)).toBe(1);
    expect(await p.page.frameLocator('iframe.mail-frame').getByRole('img', { name: 'tracker' }).count()).toBe(
      0,
    );

    const frame = p.page.waitForResponse((r) => r.url().endsWith(`/requests/${requestId}/body?images=1`));
    await p.page.getByRole('link', { name: 'Show images' }).click();
    const shown = await frame;
    expect(shown.headers()['content-security-policy']).toBe(BODY_CSP_WITH_IMAGES);
    await expect.poll(() => beacon.hits).toEqual(['/pixel.gif']);
    // the frame was reloaded in place: the console page is still the request's
    expect(p.page.url()).toBe(`${url}/requests/${requestId}`);
    p.assertClean();
  });
});
