import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMail } from './kit/mails.js';
import { type StrictPage, startBrowser, strictPage, type TestBrowser } from './support/browser.js';
import { cli, freePort, serve, signIn } from './support/console.js';
import { addMailbox, requestDetail, requestIds, takeIn } from './support/console-intake.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * The new part of a reply on the request page, end to end on both engines: mail taken in through a real Dovecot
 * by the real CLI, a real `mailintake serve`, Debian's Chromium. A top-posted reply shows what the customer
 * wrote first; the quote and the signature are folded in a <details> that unfolds on a click (no script); the
 * full body is still in the frame, and the request view carries `newPart` beside the full text.
 */
const ADMIN = { email: 'admin@example.org', password: 'a long admin passphrase' };

const FIRST = buildMail({
  from: 'Ann Lee <ann@example.test>',
  messageId: 'vpn@example.test',
  subject: 'VPN drops every hour',
  body: 'The VPN drops every hour since Monday.\r\n',
});
const WRITTEN = 'It dropped again at 10:00, right after the update.';
const QUOTE_HEADER = 'On Tue, 3 Mar 2026 at 09:00, Help Desk <help@example.test> wrote:';
const QUOTED = '> Please tell us when it drops next time.';
const REPLY = buildMail({
  from: 'Ann Lee <ann@example.test>',
  messageId: 'vpn-reply@example.test',
  inReplyTo: 'vpn@example.test',
  subject: 'Re: VPN drops every hour',
  body: [WRITTEN, '', 'Best regards,', 'Ann', '', QUOTE_HEADER, QUOTED, '> The help desk', ''].join('\r\n'),
});

let browser: TestBrowser;
let dovecot: DovecotServer;
beforeAll(async () => {
  browser = await startBrowser();
  dovecot = await startDovecot({ users: [{ name: 'help', password: 'help-pw' }] });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await dovecot?.stop();
});

describe.each(ENGINES)('the new part of a reply on the request page (%s)', (engine) => {
  let fresh: Awaited<ReturnType<typeof freshConfig>>;
  let server: Awaited<ReturnType<typeof serve>>;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let requestId: number;
  const pages: StrictPage[] = [];

  beforeAll(async () => {
    const port = await freePort();
    fresh = await freshConfig(engine);
    url = `http://127.0.0.1:${port}`;
    env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
    await addMailbox(env, dovecot, { name: 'help', user: 'help', portal: 'helpdesk' });
    await takeIn(env, dovecot, { mailbox: 'help', user: 'help', mails: [FIRST] });
    await takeIn(env, dovecot, { mailbox: 'help', user: 'help', mails: [REPLY] });
    const ids = await requestIds(env);
    requestId = ids.get('VPN drops every hour') as number;
    expect(requestId).toBeTypeOf('number');
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

  it('the request view carries the new part beside the full body', async () => {
    const detail = (await requestDetail(env, requestId)) as unknown as {
      text: string;
      newPart: string | null;
      conversations: { text: string; newPart: string | null }[];
    };
    expect(detail.newPart).toBe('The VPN drops every hour since Monday.');
    expect(detail.conversations).toHaveLength(1);
    const reply = detail.conversations[0] as { text: string; newPart: string | null };
    expect(reply.newPart).toBe(WRITTEN);
    expect(reply.text).toContain(QUOTE_HEADER);
    expect(reply.text).toContain(QUOTED);
  });

  it('a conversation shows what the customer wrote; the quote is folded and unfolds', async () => {
    const p = await strictPage(browser, url);
    pages.push(p);
    await signIn(p, url, ADMIN.email, ADMIN.password);
    await p.page.goto(`${url}/requests/${requestId}`);
    const mails = p.page.locator('section.mail');
    expect(await mails.count()).toBe(2);
    // The first mail has nothing to fold: no new-part block, the frame alone.
    expect(await mails.nth(0).locator('.new-part').count()).toBe(0);

    const reply = mails.nth(1);
    const written = reply.locator('.new-part pre.mail-new-part');
    expect(await written.isVisible()).toBe(true);
    expect((await written.textContent())?.trim()).toBe(WRITTEN);
    // Folded: the summary shows, the quote and the signature do not.
    const details = reply.locator('details.mail-quoted');
    const summary = details.locator('summary');
    expect((await summary.textContent())?.trim()).toBe('Show quoted text');
    expect(await details.getAttribute('open')).toBeNull();
    const folded = details.locator('pre');
    expect(await folded.isVisible()).toBe(false);
    // Unfolds on a click, without script.
    await summary.click();
    await expect.poll(() => details.getAttribute('open')).toBe('');
    expect(await folded.isVisible()).toBe(true);
    const shown = (await folded.textContent()) ?? '';
    for (const line of ['Best regards,', 'Ann', QUOTE_HEADER, QUOTED]) expect(shown).toContain(line);
    // The full body is still there, in the sandboxed frame.
    expect(await reply.locator('iframe.mail-frame').count()).toBe(1);
  });
});
