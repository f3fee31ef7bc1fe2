/**
 * `npm run screenshots`: the README's pictures, from a real run. A throwaway Dovecot receives a handful of help-desk
 * mails (one of them too complex to take, for the error folder); a fresh embedded store gets an admin and a
 * technician through the CLI and an IMAPS mailbox; one fetch round turns the mails into requests; then a real
 * `mailintake serve` is opened in Debian's Chromium at a laptop's size (1366x768) and each main page is saved to
 * docs/screenshots/<page>.png.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { imapsMailbox } from '../test/kit/mailboxes.js';
import { ensureChromiumInstalled, startBrowser } from '../test/support/browser.js';
import { cli, freePort, serve, signIn } from '../test/support/console.js';
import { deliverMaildir } from '../test/support/deliver.js';
import { ensureDovecotInstalled, startDovecot } from '../test/support/dovecot.js';
import { freshConfig } from '../test/support/engines.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = path.join(root, 'docs', 'screenshots');
const ADMIN = { email: 'admin@example.org', password: 'screenshots only passphrase' };

/** A plain mail as a customer's client would send it. */
function mail(n: number, from: string, subject: string, body: string, extraHeaders = ''): Buffer {
  const date = new Date(Date.UTC(2026, 11, 7, 8, n * 7)).toUTCString().replace('GMT', '+0000');
  return Buffer.from(
    `From: ${from}\r\nTo: Support <support@example.test>\r\nSubject: ${subject}\r\nDate: ${date}\r\n` +
      `Message-ID: <shot-${n}@customer.example>\r\nMIME-Version: 1.0\r\n${extraHeaders}` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${body}\r\n`,
  );
}

function mails(): Buffer[] {
  return [
    mail(
      1,
      'Dana Whitfield <dana@customer.example>',
      'Printer on the 3rd floor jams on every page',
      'Hello,\r\n\r\nthe printer next to room 312 jams on every page since this morning. We tried another tray.\r\n\r\nDana',
    ),
    mail(
      2,
      'Jürgen Weiß <juergen@kunde.example>',
      'VPN: Verbindung bricht nach 5 Minuten ab',
      'Hallo,\r\n\r\nseit dem Update trennt der VPN-Client nach etwa fünf Minuten.\r\n\r\nGrüße\r\nJürgen',
    ),
    mail(
      3,
      'Priya Raman <priya@customer.example>',
      'Password reset link expired',
      'Hi team,\r\n\r\nthe reset link in your mail says it expired, but I clicked it right away.\r\n\r\nThanks,\r\nPriya',
    ),
    mail(
      4,
      'Dana Whitfield <dana@customer.example>',
      'Re: Printer on the 3rd floor jams on every page',
      'It jams with the other printer too now.\r\n\r\n> the printer next to room 312 jams',
      'In-Reply-To: <shot-1@customer.example>\r\nReferences: <shot-1@customer.example>\r\n',
    ),
    mail(
      5,
      'Tomás Ortega <tomas@customer.example>',
      'New laptop for the new hire starting Monday',
      'Hello,\r\n\r\ncould you prepare a laptop for Ana, who starts on Monday in Sales?\r\n\r\nTomás',
    ),
    // a header block over the 1 MiB limit: MAIL_TOO_COMPLEX, into the error folder
    mail(
      6,
      'Bulk Sender <bulk@spam.example>',
      'Oversized header',
      'x',
      `X-Padding: ${'a'.repeat(1_100_000)}\r\n`,
    ),
  ];
}

async function main(): Promise<void> {
  // the harness's Dovecot is unref'd (a test run never waits for it), so awaiting its exit at the end needs
  // something else to keep this process's event loop alive until then
  const alive = setInterval(() => undefined, 60_000);
  try {
    await shoot();
  } finally {
    clearInterval(alive);
  }
}

async function shoot(): Promise<void> {
  await ensureDovecotInstalled();
  await ensureChromiumInstalled();
  const dovecot = await startDovecot({ users: [{ name: 'support', password: 'support-pw' }] });
  const fresh = await freshConfig('sqlite');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = { ...process.env, ...fresh.env, MAILINTAKE_PORT: String(port), MAILINTAKE_PUBLIC_URL: url };
  const browser = await startBrowser();
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  try {
    const must = async (args: string[], stdin = '') => {
      const r = await cli(env, args, stdin);
      if (r.code !== 0) throw new Error(`mailintake ${args.join(' ')} failed:\n${r.out}\n${r.err}`);
      return r.out;
    };
    await must(['user', 'create', '--email', ADMIN.email, '--role', 'admin'], `${ADMIN.password}\n`);
    await must([
      'user',
      'create',
      '--email',
      'tech@example.org',
      '--role',
      'technician',
      '--portal',
      'default',
      '--link',
    ]);
    const file = path.join(fresh.env.MAILINTAKE_DATA_DIR ?? root, 'support.json');
    writeFileSync(
      file,
      JSON.stringify(imapsMailbox(dovecot, 'support', 'support', { moveToErrorFolder: true })),
    );
    await must(['mailbox', 'add', '--file', file]);
    await deliverMaildir(dovecot, 'support', mails());
    await must(['fetch', '--once']);

    server = await serve(env);
    const context = await browser.browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    await signIn({ page }, url, ADMIN.email, ADMIN.password);
    mkdirSync(out, { recursive: true });
    const shots: [string, string][] = [
      ['requests', '/requests'],
      ['request', '/requests/1'],
      ['mailboxes', '/mailboxes'],
      ['mailbox', '/mailboxes/support'],
      ['error-mails', '/error-mails'],
      ['notifications', '/notifications'],
      ['portal-settings', '/settings/portals/default'],
      ['system-log', '/system-log'],
    ];
    for (const [name, where] of shots) {
      const res = await page.goto(`${url}${where}`);
      if (res?.status() !== 200) throw new Error(`${where} answered ${res?.status()}`);
      await page.waitForLoadState('load');
      // a mail body is a sandboxed frame, painted by a process of its own: a page screenshot taken as it loads
      // can show it empty; a picture of the frame itself waits until it has been drawn
      for (const frame of await page.locator('iframe').all()) await frame.screenshot();
      await page.evaluate('window.scrollTo(0, 0)');
      await page.screenshot({ path: path.join(out, `${name}.png`) });
      console.log(`docs/screenshots/${name}.png  ${where}`);
    }
    // the reply box sits below the mails: its own picture, of the section alone
    await page.goto(`${url}/requests/1`);
    await page.locator('section.reply-box').screenshot({ path: path.join(out, 'reply.png') });
    console.log('docs/screenshots/reply.png  /requests/1 (the reply box)');
    await context.close();
  } finally {
    await browser.close();
    await server?.stop();
    await fresh.cleanup();
    await dovecot.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
