import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { conditions } from '../../../test/support/conditions.js';
import { parseMailboxInput } from '../../config/mailbox-settings.js';
import type { MailintakeError } from '../../errors.js';
import { createLogger } from '../../logger.js';
import { backoffDelay, watchImapFolder } from './imap-watch.js';

/**
 * The watcher against a scripted IMAP server on loopback (plain IMAP, starttls off), for what a real Dovecot
 * cannot be made to do on demand: lack IDLE, drop every connection, report EXISTS shrinking. The happy path
 * and a real server crash are in test/idle.test.ts.
 */
interface FakeServer {
  port: number;
  /** Every command line received, without its tag. */
  commands: string[];
  /** Connections accepted so far. */
  connections: number;
  /** Sends an untagged line to every open connection. */
  push(line: string): void;
  /** Waits until `check` holds (re-checked on every command, connection and `recheck()`). */
  until(check: () => boolean): Promise<void>;
  /** Re-checks the waiting conditions (for events on the client side). */
  recheck(): void;
  close(): Promise<void>;
}

async function fakeImap(opts: { idle: boolean; dropAfterGreeting?: boolean }): Promise<FakeServer> {
  const sockets = new Set<net.Socket>();
  const { until, recheck } = conditions();
  const caps = `IMAP4rev1 AUTH=PLAIN${opts.idle ? ' IDLE' : ''}`;
  const fake: FakeServer = {
    port: 0,
    commands: [],
    connections: 0,
    recheck: () => recheck(),
    push: (line) => {
      for (const s of sockets) s.write(`${line}\r\n`);
    },
    until,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  const server = net.createServer((socket) => {
    fake.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    recheck();
    if (opts.dropAfterGreeting) {
      socket.end('* BYE going away\r\n');
      return;
    }
    socket.write(`* OK [CAPABILITY ${caps}] fake ready\r\n`);
    let buffer = '';
    let idleTag: string | null = null;
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      for (let nl = buffer.indexOf('\r\n'); nl !== -1; nl = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        if (line === 'DONE' && idleTag) {
          socket.write(`${idleTag} OK IDLE terminated\r\n`);
          idleTag = null;
          fake.commands.push('DONE');
          recheck();
          continue;
        }
        const [tag, command = '', ...rest] = line.split(' ');
        const verb = command.toUpperCase();
        fake.commands.push([verb, ...rest].join(' '));
        switch (verb) {
          case 'CAPABILITY':
            socket.write(`* CAPABILITY ${caps}\r\n${tag} OK done\r\n`);
            break;
          case 'LOGIN':
            socket.write(`${tag} OK [CAPABILITY ${caps}] logged in\r\n`);
            break;
          case 'SELECT':
          case 'EXAMINE':
            socket.write(
              '* FLAGS (\\Seen \\Deleted)\r\n* 3 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 4] ok\r\n' +
                `${tag} OK [${verb === 'EXAMINE' ? 'READ-ONLY' : 'READ-WRITE'}] done\r\n`,
            );
            break;
          case 'IDLE':
            idleTag = tag ?? null;
            socket.write('+ idling\r\n');
            break;
          case 'LOGOUT':
            socket.end(`* BYE bye\r\n${tag} OK done\r\n`);
            break;
          default:
            socket.write(`${tag} OK done\r\n`);
        }
        recheck();
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fake.port = (server.address() as net.AddressInfo).port;
  return fake;
}

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
    const fake = await fakeImap({ idle: false });
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
    const fake = await fakeImap({ idle: true });
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
    const fake = await fakeImap({ idle: true, dropAfterGreeting: true });
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
