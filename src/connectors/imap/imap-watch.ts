import { type ExistsEvent, ImapFlow } from 'imapflow';
import { MailintakeError, toMailintakeError } from '../../kernel/errors.js';
import {
  IDLE_HEALTHY_SESSION_MS as HEALTHY_SESSION_MS,
  IDLE_QUICK_END_MS,
  IDLE_RESTART_MS,
  IDLE_WATCH_BACKOFF,
  IDLE_MAX_QUICK_ENDS as MAX_QUICK_IDLE_ENDS,
} from '../../kernel/limits.js';
import type { Logger } from '../../kernel/logger.js';
import type { AccessTokenSource } from '../../oauth/token-source.js';
import type { MailboxSettings } from '../settings.js';
import { imapError } from './errors.js';
import { type ImapTimeouts, imapServerLabel, validateImapTimeouts } from './options.js';
import { buildImapFlowOptions, connectImap, imapTokenSource, loadImapCa } from './session.js';

/**
 * IMAP IDLE push (RFC 2177) for one mailbox: a connection of its own that only EXAMINEs the folder (read-only:
 * \Recent and flags stay untouched) and idles, and says "new mail" when the server reports EXISTS growth. It
 * never fetches, flags or moves anything; the fetch round does that on its own connection, under the lease.
 *
 * - After every (re)connect it says "new mail" once: a mail that arrived while nobody was idling (between the
 *   last round and this SELECT, or while the server was down) would otherwise wait for the schedule.
 * - IDLE is re-issued every `idleRestartMs` (default 25 min; RFC 2177 §3: clients must within 29 min, servers
 *   may drop idlers after 30). imapflow's keepalive NOOP after a silent socket also ends an IDLE; it is
 *   simply started again.
 * - A lost connection is retried with capped exponential backoff (default 1 s doubling to 5 min, ±20 %
 *   jitter so many mailboxes on one restarted server do not reconnect in the same instant); the streak
 *   restarts once a session has lasted a minute.
 * - A server without the IDLE capability (or that refuses IDLE) is given up on, said once in the log; the
 *   schedule keeps fetching that mailbox.
 */
export type WatchState = 'watching' | 'reconnecting' | 'unsupported' | 'stopped';

export interface WatchImapOptions {
  /** A private CA (PEM) to trust; otherwise settings.caFile is read at each connect. */
  ca?: Buffer;
  logger?: Logger;
  /** Aborting ends the watch: the connection is closed at once (no LOGOUT round trip to wait for). */
  signal: AbortSignal;
  /** EXISTS grew, or a (re)connect may have missed mail: the caller should run a fetch round. */
  onNewMail: () => void;
  /** Every failed connect or lost connection, as a coded error (the watcher retries by itself). */
  onError?: (err: MailintakeError) => void;
  /** 'watching' once IDLE runs on a selected folder; 'reconnecting' while it waits to retry. */
  onState?: (state: WatchState) => void;
  /** Reconnect delays: the first, and the cap. Default 1 s and 5 min. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** IDLE is ended and started again after this long. Default 25 min. */
  idleRestartMs?: number;
  timeouts?: ImapTimeouts;
  /**
   * Where OAuth 2.0 access tokens come from; required when `settings.auth` is "oauth2" (the watcher logs in
   * like the connector: a refused token is renewed once per connect). Unused for a password login.
   */
  tokens?: AccessTokenSource;
}

export const DEFAULT_IDLE_RESTART_MS = IDLE_RESTART_MS;
export const DEFAULT_WATCH_BACKOFF = IDLE_WATCH_BACKOFF;

/**
 * Watches the mailbox's folder until `signal` aborts (resolves 'stopped') or the server turns out to lack
 * IDLE (resolves 'unsupported'). Never rejects.
 */
export async function watchImapFolder(
  settings: MailboxSettings,
  opts: WatchImapOptions,
): Promise<'stopped' | 'unsupported'> {
  const { signal } = opts;
  const where = imapServerLabel(settings);
  const log = { mailbox: settings.name, server: where };
  const initialMs = opts.backoff?.initialMs ?? DEFAULT_WATCH_BACKOFF.initialMs;
  const maxMs = opts.backoff?.maxMs ?? DEFAULT_WATCH_BACKOFF.maxMs;
  const state = (s: WatchState) => {
    try {
      opts.onState?.(s);
    } catch {
      // a listener's failure is not the watcher's
    }
  };
  let failures = 0;
  try {
    // a missing token source is a programming error, not a reason to reconnect forever: said once, then stop
    imapTokenSource(settings, opts.tokens);
  } catch (err) {
    const coded = err instanceof MailintakeError ? err : toMailintakeError(err, 'INTERNAL');
    opts.logger?.error('IMAP IDLE watcher cannot log in', { ...log, code: coded.code, error: coded.message });
    try {
      opts.onError?.(coded);
    } catch {
      // a listener's failure is not the watcher's
    }
    state('stopped');
    return 'stopped';
  }
  try {
    while (!signal.aborted) {
      const session = { establishedAt: null as number | null };
      try {
        const end = await runSession(settings, opts, session);
        if (end === 'unsupported') {
          opts.logger?.warn(
            'IMAP server does not support IDLE: new mail of this mailbox is only picked up on its schedule',
            log,
          );
          state('unsupported');
          return 'unsupported';
        }
        break; // aborted
      } catch (err) {
        if (signal.aborted) break;
        const coded = err instanceof MailintakeError ? err : toMailintakeError(err, 'PROTOCOL_ERROR');
        try {
          opts.onError?.(coded);
        } catch {
          // a listener's failure is not the watcher's
        }
        if (session.establishedAt !== null && Date.now() - session.establishedAt >= HEALTHY_SESSION_MS) {
          failures = 0;
        }
        const delay = backoffDelay(failures++, initialMs, maxMs);
        opts.logger?.warn('IMAP IDLE connection failed; reconnecting', {
          ...log,
          code: coded.code,
          error: coded.message,
          retryInMs: delay,
        });
        state('reconnecting');
        await sleep(delay, signal);
      }
    }
  } catch (err) {
    // nothing above should throw; if it does, the schedule still fetches the mailbox
    opts.logger?.error('IMAP IDLE watcher failed', { ...log, error: String(err) });
  }
  state('stopped');
  return 'stopped';
}

/** One connection: connect, EXAMINE, IDLE until the connection is lost (throws) or the watch ends. */
async function runSession(
  settings: MailboxSettings,
  opts: WatchImapOptions,
  session: { establishedAt: number | null },
): Promise<'stopped' | 'unsupported'> {
  const { signal } = opts;
  const folder = settings.folder || 'INBOX';
  const timeouts = validateImapTimeouts(opts.timeouts);
  const ca = await loadImapCa(settings, opts.ca);
  if (signal.aborted) return 'stopped';
  const tokens = imapTokenSource(settings, opts.tokens);
  let lastConnectionError: unknown = null;
  let established = false;
  const fail = (err: unknown, step: string, fallback?: 'FOLDER_NOT_FOUND') =>
    imapError(err, {
      settings,
      step,
      timeouts,
      established,
      lastConnectionError,
      ...(tokens ? { oauth: true } : {}),
      ...(fallback ? { fallback } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  /** The client connecting or connected now: an abort closes it (a token renewal makes a second one). */
  let current: ImapFlow | null = null;
  const make = (accessToken: string | undefined) => {
    const client = new ImapFlow({
      ...buildImapFlowOptions(settings, {
        ...(ca ? { ca } : {}),
        ...(opts.logger ? { logger: opts.logger } : {}),
        timeouts,
        ...(accessToken !== undefined ? { accessToken } : {}),
      }),
      // idle() below restarts IDLE itself after this long (imapflow breaks it with DONE and issues it again)
      maxIdleTime: opts.idleRestartMs ?? DEFAULT_IDLE_RESTART_MS,
    });
    // imapflow emits 'error' for failures outside a command; without a listener Node would crash the
    // process. The IDLE in progress ends on its own and the loop below reports the cause.
    client.on('error', (err: unknown) => {
      lastConnectionError = err;
    });
    client.on('exists', (ev: ExistsEvent) => {
      // EXPUNGEs (a round deleting or moving mail) shrink the count: only growth is new mail
      if (ev.count > ev.prevCount) notify(opts);
    });
    current = client;
    return client;
  };
  const onAbort = () => current?.close();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    let client: ImapFlow;
    try {
      client = await connectImap(settings, tokens, make, (err, accessTokens) =>
        imapError(err, {
          settings,
          step: 'connecting and logging in (IDLE watcher)',
          timeouts,
          established: false,
          lastConnectionError,
          accessTokens,
          ...(opts.logger ? { logger: opts.logger } : {}),
        }),
      );
    } catch (err) {
      if (signal.aborted) return 'stopped';
      throw err;
    }
    // aborted while connecting: the abort closed a client connect() had not finished with
    if (signal.aborted) return 'stopped';
    established = true;
    if (!client.capabilities.has('IDLE')) return 'unsupported';
    const step = `opening folder "${folder}" read-only (IDLE watcher)`;
    let box: Awaited<ReturnType<ImapFlow['mailboxOpen']>> | undefined;
    try {
      box = await client.mailboxOpen(folder, { readOnly: true });
    } catch (err) {
      if (signal.aborted) return 'stopped';
      throw fail(err, step, 'FOLDER_NOT_FOUND');
    }
    // imapflow answers undefined instead of throwing when the session is no longer logged in
    if (!box) {
      if (signal.aborted) return 'stopped';
      throw fail(lastConnectionError ?? { code: 'NoConnection' }, step);
    }
    session.establishedAt = Date.now();
    notify(opts);
    let quickEnds = 0;
    let reported = false;
    while (!signal.aborted) {
      const started = Date.now();
      const idling = client.idle({ whenFree: true });
      if (!reported) {
        reported = true;
        try {
          opts.onState?.('watching');
        } catch {
          // a listener's failure is not the watcher's
        }
      }
      const result = await idling;
      if (signal.aborted) break;
      if (!client.usable || !client.mailbox) {
        throw fail(lastConnectionError ?? { code: 'NoConnection' }, 'waiting for new mail (IDLE)');
      }
      if (result === false) {
        // a NO/BAD to IDLE on a live connection: imapflow marks the session skipIdle (it would poll instead)
        if ((client as unknown as { skipIdle?: boolean }).skipIdle) return 'unsupported';
        throw new MailintakeError('PROTOCOL_ERROR', `${imapServerLabel(settings)} ended IDLE with a failure`);
      }
      // IDLE also ends when imapflow's keepalive NOOP breaks it: start it again, but not in a tight loop
      quickEnds = Date.now() - started < IDLE_QUICK_END_MS ? quickEnds + 1 : 0;
      if (quickEnds >= MAX_QUICK_IDLE_ENDS) {
        throw new MailintakeError(
          'PROTOCOL_ERROR',
          `${imapServerLabel(settings)} ends IDLE at once, ${MAX_QUICK_IDLE_ENDS} times in a row`,
        );
      }
    }
    return 'stopped';
  } finally {
    signal.removeEventListener('abort', onAbort);
    // close, not logout: bounded, and the server needs nothing from a read-only session
    (current as ImapFlow | null)?.close();
  }
}

function notify(opts: WatchImapOptions): void {
  if (opts.signal.aborted) return;
  try {
    opts.onNewMail();
  } catch (err) {
    opts.logger?.error('IDLE new-mail handler failed', { error: String(err) });
  }
}

/** initial · 2^n, capped, ±20 % jitter (still within the cap). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(Math.min(maxMs, base * (0.8 + Math.random() * 0.4)));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref?.();
    signal.addEventListener('abort', done, { once: true });
  });
}
