import { afterEach, describe, expect, it } from 'vitest';
import { startFakeImap } from '../../../test/kit/fake-imap.js';
import type { MailintakeError } from '../../kernel/errors.js';
import { createLogger } from '../../kernel/logger.js';
import { parseMailboxInput } from '../settings.js';
import { backoffDelay, watchImapFolder } from './imap-watch.js';

/**
 * The watcher against a scripted IMAP server on loopback (plain IMAP, starttls off), for what a real Dovecot
 * cannot be made to do on demand: lack IDLE, drop every connection, report EXISTS shrinking. The happy path
 * and a real server crash are in test/idle.test.ts. The server is test/support/fake-imap.ts.
 */
const settingsFor = (port: number) =>
  parseMailboxInput({
    name: 'fake',
    protocol: 'imap',
    starttls: false,
    server: '127.0.0.1',
    port,
    username: 'u',
    password: 'secret-pw',
    emailAddress: 'fake@example.test',
  });

describe('watchImapFolder (scripted server)', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('gives up on a server without IDLE, says so once, and changes nothing', async () => {
    const fake = await startFakeImap({ idle: false, exists: 3 });
    cleanup.push(() => fake.close());
    const lines: string[] = [];
    const controller = new AbortController();
    const end = await watchImapFolder(settingsFor(fake.port), {
      signal: controller.signal,
      logger: createLogger('warn', (l) => lines.push(l)),
      onNewMail: () => {
        throw new Error('no new mail expected');
      },
    });
    expect(end).toBe('unsupported');
    const said = lines.filter((l) => l.includes('does not support IDLE'));
    expect(said).toHaveLength(1);
    expect(fake.connections).toBe(1);
    expect(fake.commands.some((c) => /^(SELECT|EXAMINE|IDLE|STORE|FETCH|EXPUNGE)/.test(c))).toBe(false);
  });

  it('EXAMINEs (read-only), reports EXISTS growth only, re-issues IDLE, and stops on abort', async () => {
    const fake = await startFakeImap({ idle: true, exists: 3 });
    cleanup.push(() => fake.close());
    const controller = new AbortController();
    cleanup.push(() => controller.abort());
    let newMail = 0;
    const states: string[] = [];
    const done = watchImapFolder(settingsFor(fake.port), {
      signal: controller.signal,
      onNewMail: () => {
        newMail++;
        fake.recheck();
      },
      onState: (s) => states.push(s),
      idleRestartMs: 300,
    });
    const idles = () => fake.commands.filter((c) => c === 'IDLE').length;
    await fake.until(() => idles() >= 1);
    expect(fake.commands.some((c) => c.startsWith('EXAMINE'))).toBe(true);
    expect(fake.commands.some((c) => c.startsWith('SELECT'))).toBe(false);
    // once after selecting: a mail may have arrived while nobody watched
    expect(newMail).toBe(1);
    fake.push('* 5 EXISTS');
    await fake.until(() => newMail >= 2);
    expect(newMail).toBe(2);
    // a shrinking count is an expunge (a round deleted or moved mail), not new mail; then one new mail
    fake.push('* 1 EXPUNGE');
    fake.push('* 4 EXISTS');
    fake.push('* 6 EXISTS');
    await fake.until(() => newMail >= 3);
    // had the expunge or the unchanged count counted, the 6 EXISTS (sent after them) would make it 4
    expect(newMail).toBe(3);
    // RFC 2177: IDLE is ended (DONE) and issued again on the restart period
    await fake.until(() => idles() >= 3);
    expect(fake.commands.filter((c) => c === 'DONE').length).toBeGreaterThanOrEqual(2);
    expect(fake.connections).toBe(1);
    expect(states).toEqual(['watching']);
    controller.abort();
    expect(await done).toBe('stopped');
    expect(states).toEqual(['watching', 'stopped']);
    expect(fake.commands.some((c) => /^(STORE|FETCH|UID|EXPUNGE|COPY|MOVE)/.test(c))).toBe(false);
  });

  it('reconnects with growing delays while the server drops every connection, with coded errors', async () => {
    const fake = await startFakeImap({ idle: true, exists: 3, dropAfterGreeting: true });
    cleanup.push(() => fake.close());
    const controller = new AbortController();
    const errors: MailintakeError[] = [];
    const attempts: number[] = [];
    const done = watchImapFolder(settingsFor(fake.port), {
      signal: controller.signal,
      onNewMail: () => {},
      onError: (err) => {
        errors.push(err);
        attempts.push(Date.now());
      },
      backoff: { initialMs: 50, maxMs: 400 },
    });
    await fake.until(() => fake.connections >= 5);
    controller.abort();
    expect(await done).toBe('stopped');
    expect(errors.length).toBeGreaterThanOrEqual(4);
    for (const e of errors) expect(e.code).toBe('CONNECT_FAILED');
    // the password never reaches an error message
    for (const e of errors) expect(e.message).not.toContain('secret-pw');
    // waits of 50, 100, 200 ms (±20 %) between the attempts: growing
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(gaps[2]!).toBeGreaterThan(gaps[0]!);
  });

  it('backoff doubles from the first step up to the cap, jitter within ±20 % and never above the cap', () => {
    for (let i = 0; i < 200; i++) {
      const d0 = backoffDelay(0, 1000, 300_000);
      expect(d0).toBeGreaterThanOrEqual(800);
      expect(d0).toBeLessThanOrEqual(1200);
      const d3 = backoffDelay(3, 1000, 300_000);
      expect(d3).toBeGreaterThanOrEqual(6400);
      expect(d3).toBeLessThanOrEqual(9600);
      const big = backoffDelay(50, 1000, 300_000);
      expect(big).toBeGreaterThanOrEqual(240_000);
      expect(big).toBeLessThanOrEqual(300_000);
    }
  });
});
