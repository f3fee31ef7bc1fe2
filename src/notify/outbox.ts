import type { Readable } from 'node:stream';
import type { Selectable } from 'kysely';
import { z } from 'zod';
import { MailintakeError, toMailintakeError } from '../kernel/errors.js';
import { failpoint } from '../kernel/failpoints.js';
import {
  OUTBOX_BATCH as BATCH,
  OUTBOX_MAX_ATTEMPTS as DEFAULT_MAX_ATTEMPTS,
  OUTBOX_CLAIM_MS,
  OUTBOX_LAST_ERROR_MAX_CHARS,
  OUTBOX_LIST_MAX,
  OUTBOX_POLL_MS,
  OUTBOX_RETRY_FIRST_MS,
  OUTBOX_RETRY_MAX_MS,
} from '../kernel/limits.js';
import type { Logger } from '../kernel/logger.js';
import { OWN_MESSAGE_ID_DOMAIN } from '../mail/machine.js';
import { nowIso, type Store } from '../store/db.js';
import type { MailOutboxTable } from '../store/schema.js';
import { parseStored, storedStrings } from '../store/stored-json.js';
import { ACKNOWLEDGEMENT_EVENT } from './acknowledgement.js';
import type { SmtpConfig } from './smtp-settings.js';
import {
  isPermanentRefusal,
  type OutgoingMail,
  openSmtpTransport,
  type SmtpTransport,
} from './smtp-transport.js';

/** A reply's attachments as its outbox row keeps them: blob-store keys and what the mail calls them. */
export const outboxAttachmentsSchema = z.array(
  z.object({ sha256: z.string(), filename: z.string(), contentType: z.string(), size: z.number() }),
);
export type OutboxAttachment = z.infer<typeof outboxAttachmentsSchema>[number];

/** The SMTP reply code of a refusal (550, 451…), or null when the server never answered one. */
function refusalCode(error: MailintakeError): string | null {
  const code = (error.cause as { responseCode?: unknown } | undefined)?.responseCode;
  return typeof code === 'number' ? String(code) : null;
}

export { DEFAULT_MAX_ATTEMPTS };

/**
 * The outbox sender: sends the notification mail that notices recorded (notify/store-notifier.ts) once their
 * transaction committed. Woken by `kick()` after such a commit and by a timer (rows due for a retry, rows
 * another process recorded).
 *
 * Several processes may run it against one database (PostgreSQL workers, or `serve` and a CLI command on one
 * SQLite file). Each row is claimed by one UPDATE that only succeeds while the row is unsent and due, and
 * moves its due time to a claim deadline: exactly one process wins a row, and a process that dies while
 * sending leaves it to be claimed again after the deadline. The database's row update is the coordinator;
 * there is no other. What this cannot rule out: a crash after the SMTP server took the mail and before the
 * row was marked sent sends it again after the deadline (at least once, never lost); the mail keeps its
 * Message-ID then, so the duplicate is recognisable.
 */

export interface OutboxAttempt {
  id: number;
  event: string;
  ok: boolean;
  /** Attempts so far, this one included. */
  attempts: number;
  /** The coded error of a failed attempt. */
  error?: { code: string; message: string };
  /** Sending was given up (permanent refusal or too many attempts); an operator may retry it. */
  gaveUp?: boolean;
}

export interface OutboxSenderOptions {
  store: Store;
  /**
   * The instance's SMTP server, read at every pass; undefined while none is configured (its mail waits). Notification
   * mail goes through it, and the replies and acknowledgements of every portal without a server of its own.
   */
  smtp: () => Promise<SmtpConfig | undefined>;
  /**
   * The portals' own servers by portal id, read at every pass: a portal's replies and acknowledgements go there. A
   * coded error instead of settings: that portal's mail waits (logged), and goes nowhere else.
   */
  portalSmtp?: () => Promise<Map<number, SmtpConfig | MailintakeError>>;
  logger: Logger;
  /** Timer for due retries and rows of other processes (default 30 s). */
  pollMs?: number;
  /** How long a claimed row is ours before another process may take it (default 10 min, far above the SMTP timeouts). */
  claimMs?: number;
  /** Wait before the next attempt after `attempts` failed ones (default 1 min doubling, at most 1 h). */
  retryDelayMs?: (attempts: number) => number;
  /** Attempts before sending is given up (default 12: about 8 hours with the default delays). */
  maxAttempts?: number;
  /** Where a reply's attachments are read from (store/blobs); notifications have none. */
  blobs?: { get(sha256: string): Readable };
  /** Injected clock (tests drive retries without waiting). */
  now?: () => Date;
  /** Told after every attempt (tests and a UI wait on this). */
  onAttempt?: (attempt: OutboxAttempt) => void;
}

export function defaultRetryDelayMs(attempts: number): number {
  return Math.min(OUTBOX_RETRY_FIRST_MS * 2 ** Math.max(0, attempts - 1), OUTBOX_RETRY_MAX_MS);
}

export interface DrainResult {
  sent: number;
  failed: number;
  /** No SMTP server configured: nothing was tried. */
  unconfigured: boolean;
}

export class OutboxSender {
  private readonly pollMs: number;
  private readonly claimMs: number;
  private readonly retryDelayMs: (attempts: number) => number;
  private readonly maxAttempts: number;
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | null = null;
  /** Passes run one after the other on this chain. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Passes running or queued on the chain. */
  private queued = 0;
  private stopped = false;
  private warnedUnconfigured = false;

  constructor(private readonly opts: OutboxSenderOptions) {
    this.pollMs = opts.pollMs ?? OUTBOX_POLL_MS;
    this.claimMs = opts.claimMs ?? OUTBOX_CLAIM_MS;
    this.retryDelayMs = opts.retryDelayMs ?? defaultRetryDelayMs;
    this.maxAttempts = opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.now = opts.now ?? (() => new Date());
  }

  /** Starts the timer. Nothing is sent at once: a one-off CLI command does not send old mail on its way out. */
  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
  }

  /** A pass soon. A pass already queued behind the running one will see what this kick is about. */
  kick(): void {
    if (this.stopped || this.queued > 1) return;
    void this.drain().catch((err: unknown) =>
      this.opts.logger.error('notification outbox pass failed', { error: String(err) }),
    );
  }

  /** One pass, after the running one; resolves with what this pass did. */
  drain(): Promise<DrainResult> {
    this.queued++;
    const pass = this.chain.then(() => this.pass());
    this.chain = pass.catch(() => undefined).finally(() => this.queued--);
    return pass;
  }

  /**
   * Stops the timer and new kicks, and waits for the passes already asked for: each ends after the mail it is
   * sending (at most one send's SMTP timeouts); what is left waits in the outbox for the next start.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.chain;
  }

  /**
   * One pass: each outgoing server sends its due mail (at most a batch each) over one connection. A server that
   * cannot be reached or used stops only its own mail: a portal's broken server never holds up another portal's
   * replies or the notifications, and its mail keeps its turn (unclaimed, no attempt counted) for the next pass.
   */
  private async pass(): Promise<DrainResult> {
    const result: DrainResult = { sent: 0, failed: 0, unconfigured: false };
    const own = (await this.opts.portalSmtp?.()) ?? new Map<number, SmtpConfig | MailintakeError>();
    const ownIds = [...own.keys()];
    let full = false;
    // stopping: the mail being sent is the last one (a pass asked for before stop() still sends its first)
    const done = () => this.stopped && result.sent + result.failed > 0;
    // each portal with its own server: the mail of its requests
    for (const [portalId, config] of own) {
      if (done()) return result;
      const due = await this.due(portalId, ownIds);
      if (due.length === 0) continue;
      if (config instanceof MailintakeError) {
        this.opts.logger.error('outgoing mail of a portal waits: its SMTP settings cannot be read', {
          portalId,
          waiting: due.length,
          code: config.code,
          error: config.message,
        });
        continue;
      }
      // a whole batch went out: there may be more waiting
      if ((await this.sendThrough(config, due, result)) && due.length === BATCH) full = true;
    }
    // the instance's server: notifications, and the mail of every portal without its own
    const due = done() ? [] : await this.due(null, ownIds);
    if (due.length > 0) {
      const config = await this.opts.smtp();
      if (!config) {
        result.unconfigured = true;
        if (!this.warnedUnconfigured) {
          this.warnedUnconfigured = true;
          this.opts.logger.warn(
            'notification mail waits: no outgoing SMTP server is configured (mailintake smtp set)',
            { waiting: due.length },
          );
        }
      } else {
        this.warnedUnconfigured = false;
        if ((await this.sendThrough(config, due, result)) && due.length === BATCH) full = true;
      }
    }
    if (full && !this.stopped) this.kick();
    return result;
  }

  /**
   * The due mail of one server, oldest first: `portalId` the mail of that portal's requests; null the rest
   * (notifications, and requests of portals not in `ownIds`).
   */
  private async due(portalId: number | null, ownIds: number[]): Promise<{ id: number }[]> {
    let q = this.opts.store.db
      .selectFrom('mail_outbox')
      .leftJoin('requests', 'requests.id', 'mail_outbox.request_id')
      .select('mail_outbox.id')
      .where('mail_outbox.sent_at', 'is', null)
      .where('mail_outbox.failed_at', 'is', null)
      .where('mail_outbox.next_attempt_at', '<=', this.now().toISOString());
    if (portalId !== null) q = q.where('requests.portal_id', '=', portalId);
    else if (ownIds.length > 0) {
      q = q.where((eb) =>
        eb.or([eb('mail_outbox.request_id', 'is', null), eb('requests.portal_id', 'not in', ownIds)]),
      );
    }
    return q.orderBy('mail_outbox.next_attempt_at').orderBy('mail_outbox.id').limit(BATCH).execute();
  }

  /**
   * Sends `due` through one server over one connection, until the server is down or we are stopping. true: every
   * row was tried (or taken by another process), none left for a reason that would meet the next pass too.
   */
  private async sendThrough(
    config: SmtpConfig,
    due: { id: number }[],
    result: DrainResult,
  ): Promise<boolean> {
    const server = config.server ?? 'instance';
    let transport: SmtpTransport;
    try {
      transport = await openSmtpTransport(config, {
        reuse: true,
        ...(config.tokens ? { tokens: config.tokens } : {}),
      });
    } catch (err) {
      this.opts.logger.error('outgoing mail waits: the SMTP settings cannot be used', {
        server,
        error: String(err),
      });
      return false;
    }
    try {
      for (const { id } of due) {
        const row = await this.claim(id);
        if (!row) continue; // another process has it, or sent it meanwhile
        const outcome = await this.send(transport, row);
        if (outcome.ok) result.sent++;
        else result.failed++;
        // The server cannot be reached: the other rows would fail the same way. They keep their turn
        // (unclaimed, no attempt counted) for the next pass. Stopping: the rest waits for the next start.
        if ((!outcome.ok && outcome.serverDown) || this.stopped) return false;
      }
      return true;
    } finally {
      transport.close();
    }
  }

  /** The row, when this process won it: unsent, not given up, due; its due time becomes our claim deadline. */
  private async claim(id: number): Promise<Selectable<MailOutboxTable> | undefined> {
    const now = this.now();
    return this.opts.store.db
      .updateTable('mail_outbox')
      .set((eb) => ({
        next_attempt_at: new Date(now.getTime() + this.claimMs).toISOString(),
        attempts: eb('attempts', '+', 1),
      }))
      .where('id', '=', id)
      .where('sent_at', 'is', null)
      .where('failed_at', 'is', null)
      .where('next_attempt_at', '<=', now.toISOString())
      .returningAll()
      .executeTakeFirst();
  }

  private async send(
    transport: SmtpTransport,
    row: Selectable<MailOutboxTable>,
  ): Promise<{ ok: boolean; serverDown: boolean }> {
    const db = this.opts.store.db;
    let mail: OutgoingMail;
    try {
      mail = this.mailOf(row);
    } catch (err) {
      // this row cannot be made into a mail (a stored field that does not parse): its own fault, not the
      // server's, so the rows after it go on
      const failed = await this.failed(row, err);
      return { ...failed, serverDown: false };
    }
    let result: Awaited<ReturnType<SmtpTransport['send']>>;
    try {
      result = await transport.send(mail);
    } catch (err) {
      return this.failed(row, err);
    }
    failpoint('after-smtp-accept');
    try {
      await db
        .updateTable('mail_outbox')
        .set({
          sent_at: nowIso(),
          // some recipients refused while the others got it: kept for the operator to see
          last_error:
            result.rejected.length > 0 ? `refused by the server for ${result.rejected.join(', ')}` : null,
          // an earlier try's refusal is history once it went out (a bounce may still set them later)
          failure_status: null,
          failure_reason:
            result.rejected.length > 0 ? `refused by the server for ${result.rejected.join(', ')}` : null,
        })
        .where('id', '=', row.id)
        .execute();
    } catch (err) {
      // The mail went out; only our note of it failed (the database went away). Counting it as a failed send
      // would record an error and mail it again on the next retry. It stays claimed: after the claim deadline
      // it may be sent once more (at least once, never lost), with the same Message-ID.
      const coded = toMailintakeError(err, 'STORE_FAILED');
      this.opts.logger.error('notification mail sent, but could not be marked sent', {
        outbox: row.id,
        event: row.event,
        code: coded.code,
        error: coded.message,
      });
      this.opts.onAttempt?.({ id: row.id, event: row.event, ok: true, attempts: row.attempts });
      // the rows after it would meet the same database: left for the next pass
      return { ok: true, serverDown: true };
    }
    this.opts.onAttempt?.({ id: row.id, event: row.event, ok: true, attempts: row.attempts });
    return { ok: true, serverDown: false };
  }

  /** The mail of a row: a notification, or a reply from a request with everything it carries. */
  private mailOf(row: Selectable<MailOutboxTable>): OutgoingMail {
    const where = (column: string) => ({ table: 'mail_outbox', column, id: row.id });
    const to = storedStrings(row.recipients, where('recipients'));
    if (row.request_id === null) {
      return {
        to,
        subject: row.subject,
        text: row.body,
        messageId: `<mailintake-outbox-${row.id}-${Date.parse(row.created_at)}@${OWN_MESSAGE_ID_DOMAIN}>`,
        headers: { 'X-Mailintake-Event': row.event },
      };
    }
    const blobs = this.opts.blobs;
    const attachments = row.attachments
      ? parseStored(outboxAttachmentsSchema, row.attachments, where('attachments'))
      : [];
    if (attachments.length > 0 && !blobs) {
      throw new MailintakeError(
        'INTERNAL',
        `outbox mail ${row.id} has attachments but the sender has no blob store`,
      );
    }
    return {
      to,
      ...(row.cc ? { cc: storedStrings(row.cc, where('cc')) } : {}),
      ...(row.bcc ? { bcc: storedStrings(row.bcc, where('bcc')) } : {}),
      ...(row.from_address ? { from: { address: row.from_address, name: row.from_name ?? '' } } : {}),
      ...(row.reply_to ? { replyTo: row.reply_to } : {}),
      ...(row.in_reply_to ? { inReplyTo: `<${row.in_reply_to}>` } : {}),
      ...(row.references_ids
        ? { references: storedStrings(row.references_ids, where('references_ids')).map((id) => `<${id}>`) }
        : {}),
      subject: row.subject,
      text: row.body,
      ...(row.html_body ? { html: row.html_body } : {}),
      attachments: attachments.map((a) => ({
        filename: a.filename,
        contentType: a.contentType,
        open: () => blobs!.get(a.sha256),
      })),
      // fixed when the reply was stored: a resend after a crash carries the same id, and a bounce finds it
      ...(row.message_id ? { messageId: `<${row.message_id}>` } : {}),
      headers: { 'X-Mailintake-Event': row.event },
      // a person's reply carries no Auto-Submitted; an acknowledgement is a machine's answer (RFC 3834)
      automatic: row.event === ACKNOWLEDGEMENT_EVENT,
    };
  }

  /** Records a failed send: retried after the delay, or given up. */
  private async failed(
    row: Selectable<MailOutboxTable>,
    err: unknown,
  ): Promise<{ ok: boolean; serverDown: boolean }> {
    const db = this.opts.store.db;
    const error = toMailintakeError(err, 'SEND_FAILED');
    const gaveUp = isPermanentRefusal(error) || row.attempts >= this.maxAttempts;
    const next = new Date(this.now().getTime() + this.retryDelayMs(row.attempts)).toISOString();
    await db
      .updateTable('mail_outbox')
      .set({
        last_error: `${error.code}: ${error.message}`.slice(0, OUTBOX_LAST_ERROR_MAX_CHARS),
        failure_status: refusalCode(error),
        failure_reason: error.message.slice(0, OUTBOX_LAST_ERROR_MAX_CHARS),
        ...(gaveUp ? { failed_at: nowIso() } : { next_attempt_at: next }),
      })
      .where('id', '=', row.id)
      .where('sent_at', 'is', null)
      .execute();
    const facts = {
      outbox: row.id,
      event: row.event,
      attempts: row.attempts,
      code: error.code,
      error: error.message,
    };
    if (gaveUp) this.opts.logger.error('notification mail given up', facts);
    else this.opts.logger.warn('notification mail not sent; will retry', facts);
    this.opts.onAttempt?.({
      id: row.id,
      event: row.event,
      ok: false,
      attempts: row.attempts,
      error: { code: error.code, message: error.message },
      ...(gaveUp ? { gaveUp: true } : {}),
    });
    return { ok: false, serverDown: error.code !== 'SEND_FAILED' };
  }
}

// ---- what operators see ------------------------------------------------------------------------------------------

export interface OutboxMailView {
  id: number;
  event: string;
  recipients: string[];
  subject: string;
  createdAt: string;
  attempts: number;
  /** pending: not tried yet; retrying: failed, tried again at nextAttemptAt; failed: given up; sent */
  state: 'pending' | 'retrying' | 'failed' | 'sent';
  nextAttemptAt: string | null;
  sentAt: string | null;
  failedAt: string | null;
  lastError: string | null;
}

export interface OutboxStatus {
  smtpConfigured: boolean;
  pending: number;
  retrying: number;
  failed: number;
  sent: number;
  /** Every mail not sent yet (pending, retrying, failed), oldest first, at most OUTBOX_LIST_MAX. */
  unsent: OutboxMailView[];
}

export function outboxView(r: Selectable<MailOutboxTable>): OutboxMailView {
  // a reply that bounced after it was sent failed after all
  const state = r.bounced_at
    ? 'failed'
    : r.sent_at
      ? 'sent'
      : r.failed_at
        ? 'failed'
        : r.attempts > 0
          ? 'retrying'
          : 'pending';
  return {
    id: r.id,
    event: r.event,
    recipients: storedStrings(r.recipients, { table: 'mail_outbox', column: 'recipients', id: r.id }),
    subject: r.subject,
    createdAt: r.created_at,
    attempts: r.attempts,
    state,
    nextAttemptAt: state === 'pending' || state === 'retrying' ? r.next_attempt_at : null,
    sentAt: r.sent_at,
    failedAt: r.failed_at,
    lastError: r.last_error,
  };
}

export async function outboxStatus(store: Store, smtpConfigured: boolean): Promise<OutboxStatus> {
  const unsent = await store.db
    .selectFrom('mail_outbox')
    .selectAll()
    .where('sent_at', 'is', null)
    .orderBy('id')
    .limit(OUTBOX_LIST_MAX)
    .execute();
  const sent = await store.db
    .selectFrom('mail_outbox')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('sent_at', 'is not', null)
    .executeTakeFirstOrThrow();
  const views = unsent.map(outboxView);
  const count = (s: OutboxMailView['state']) => views.filter((v) => v.state === s).length;
  return {
    smtpConfigured,
    pending: count('pending'),
    retrying: count('retrying'),
    failed: count('failed'),
    sent: Number(sent.n),
    unsent: views,
  };
}

/**
 * Puts a mail whose sending was given up back in line (after the operator fixed the cause). Only given-up
 * mails: one still being retried may be in a send right now, and making it due again could send it twice.
 */
export async function retryOutboxMail(store: Store, id: number): Promise<OutboxMailView> {
  const row = await store.db.selectFrom('mail_outbox').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new MailintakeError('NOT_FOUND', `no outbox mail with id ${id}`);
  if (row.sent_at) throw new MailintakeError('CONFLICT', `outbox mail ${id} was sent at ${row.sent_at}`);
  const updated = await store.db
    .updateTable('mail_outbox')
    .set({
      failed_at: null,
      attempts: 0,
      next_attempt_at: nowIso(),
      failure_status: null,
      failure_reason: null,
    })
    .where('id', '=', id)
    .where('sent_at', 'is', null)
    .where('failed_at', 'is not', null)
    .returningAll()
    .executeTakeFirst();
  if (!updated) {
    throw new MailintakeError(
      'CONFLICT',
      `outbox mail ${id} has not been given up: it is retried by itself (next attempt at ${row.next_attempt_at})`,
    );
  }
  return outboxView(updated);
}
