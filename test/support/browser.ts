import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/**
 * Debian's Chromium driven through playwright-core (global-setup.ts installs it with apt-get when missing).
 * Every launch gets a fresh profile (playwright makes a new temporary user-data dir and removes it on close),
 * and every strictPage a context of its own, so no test sees another's cookies. Pages come from `strictPage`, which
 * records every console error from our origin, every dialog and every request to another host: `problems()`
 * lists them and `assertClean()` fails the test on any.
 */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Installs Debian's Chromium with apt-get when /usr/bin/chromium is missing (global-setup.ts calls it once, the
 * way it installs Dovecot). Not root: says which command to run instead.
 */
export async function ensureChromiumInstalled(log: (line: string) => void = console.log): Promise<void> {
  if (existsSync(CHROMIUM)) return;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(
      `${CHROMIUM} is missing and we are not root: install it with "apt-get install -y --no-install-recommends chromium"`,
    );
  }
  log('[chromium] not installed; installing chromium with apt-get (a minute or two)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]) =>
    new Promise<void>((resolve, reject) =>
      execFile('apt-get', args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, _out, stderr) =>
        err ? reject(new Error(`apt-get ${args.join(' ')} failed: ${stderr || err.message}`)) : resolve(),
      ),
    );
  await run(['update']);
  await run(['install', '-y', '--no-install-recommends', 'chromium']);
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium, but ${CHROMIUM} is still missing`);
  log('[chromium] installed');
}

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

export async function startBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    browser,
    close: async () => {
      await browser.close();
    },
  };
}

export interface StrictPage {
  page: Page;
  context: BrowserContext;
  /** What went wrong so far: console errors from `origin`, dialogs, requests to other hosts. */
  problems(): string[];
  /** Throws (fails the test) when anything in problems() happened. */
  assertClean(): void;
}

/** A page in a fresh context (its own cookies) that may talk to `origin` only. */
export async function strictPage(b: TestBrowser, origin: string): Promise<StrictPage> {
  const context = await b.browser.newContext();
  const page = await context.newPage();
  const host = new URL(origin).host;
  const problems: string[] = [];
  // Chromium reports every 4xx/5xx answer as "Failed to load resource"; for a page the test navigated to on
  // purpose (a 403 page, a refused sign-in) that is the answer under test, not a fault: those are left out below.
  const consoleErrors: { text: string; url: string }[] = [];
  const documentsWithErrorStatus = new Set<string>();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const from = msg.location().url;
    if (!from || from.startsWith(origin)) consoleErrors.push({ text: msg.text(), url: from });
  });
  page.on('response', (response) => {
    if (response.request().resourceType() === 'document' && response.status() >= 400) {
      documentsWithErrorStatus.add(response.url());
    }
  });
  page.on('pageerror', (err) => problems.push(`uncaught in the page: ${err.message}`));
  page.on('dialog', (dialog) => {
    problems.push(`dialog (${dialog.type()}): ${dialog.message()}`);
    void dialog.dismiss();
  });
  // every request leaves through here: anything for another host is recorded and never sent
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.host !== host && url.protocol !== 'data:' && url.protocol !== 'about:') {
      problems.push(`request to another host: ${url.href}`);
      return route.abort();
    }
    return route.continue();
  });
  const all = () => [
    ...consoleErrors
      .filter(
        (e) =>
          !(
            documentsWithErrorStatus.has(e.url) &&
            /^Failed to load resource: the server responded with a status of \d+/.test(e.text)
          ),
      )
      .map((e) => `console error: ${e.text} (${e.url || 'no location'})`),
    ...problems,
  ];
  return {
    page,
    context,
    problems: () => all(),
    assertClean: () => {
      const found = all();
      if (found.length > 0) throw new Error(`the page misbehaved:\n${found.join('\n')}`);
    },
  };
}

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/** axe-core on the page as it is: the serious and critical violations (an empty list when there are none). */
export async function seriousA11yViolations(page: Page): Promise<AxeViolation[]> {
  // Not page.addScriptTag: it adds an inline <script>, which our CSP (script-src 'self') rightly refuses, and
  // bypassCSP would switch the policy off for the very pages under test. An evaluation from the test driver is
  // outside the page's CSP.
  await page.evaluate(readFileSync(AXE, 'utf8'));
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: unknown[] }> } }).axe;
    return (await axe.run()).violations as {
      id: string;
      impact: string | null;
      help: string;
      nodes: { target: unknown[] }[];
    }[];
  });
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')),
    }));
}
