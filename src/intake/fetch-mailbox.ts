import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import type { AfterFetch, Connector, RemoteMail } from '../connectors/connector.js';
import { serverLabel } from '../connectors/net-errors.js';
import type { MailboxSettings } from '../connectors/settings.js';
import type { FetchSummary } from '../features/views.js';
import {
  isMailintakeError,
  MailintakeError,
  retriedNextRound,
  roundRuleOf,
  toMailintakeError,
} from '../kernel/errors.js';
import { failpoint } from '../kernel/failpoints.js';
import type { Logger } from '../kernel/logger.js';
import {
  type AttachmentPolicy,
  checkAttachments,
  DEFAULT_ATTACHMENT_POLICY,
  type DroppedPart,
  type Sniff,
} from '../mail/attachment-checks.js';
import { type ParseLimits, parseMail } from '../mail/parse.js';
import { blobSniffer, headSniffer } from '../mail/sniff.js';
import { recordRoundOutcome } from '../notify/connection-alerts.js';
import type { Notifier } from '../notify/notifier.js';
import { type BlobStore, DeferredSyncBlobs, DiscardingBlobs } from '../store/blobs/blob-store.js';
import type { RawLocation, RawPacks, RawPackWriter } from '../store/blobs/raw-packs.js';
import type { Store } from '../store/db.js';
import { nowIso } from '../store/db.js';
import { withTransaction } from '../store/tx.js';
import { type BatchItem, commitBatch, type IntakeMailbox } from './commit-mail.js';
import { type ErrorRoute, type FailedMail, leaveOnServer } from './error-folder.js';
import type { LeaseHold, MailboxLease } from './lease.js';

/** Small mails are fetched several at a time (one round trip); larger ones stream one by one. */
const BATCH_MAIL_MAX_BYTES = 1024 * 1024;
const BATCH_MAX_BYTES = 16 * 1024 * 1024;
const BATCH_MAX_COUNT = 100;
/** Mails of one batch parsed at the same time (their sources are in memory already). */
const PREPARE_CONCURRENCY = 4;

/**
 * What happens to a mail that failed processing with a code a retry cannot fix: `leaveOnServer` leaves it where
 * it is (unacknowledged, so nothing is lost, and later rounds skip it); the error folder (error-folder.ts)
 * moves it aside with an encrypted report, notifies, and stops the mailbox at its limit.
 */
export { type ErrorRoute, leaveOnServer } from './error-folder.js';

/** What `notify` is told after a mail with dropped items committed. */
export interface DropEvent {
  mailbox: string;
  portalId: number;
  requestId: number;
  conversationId: number | null;
  dropped: DroppedPart[];
  /** The portal's policy: its `notifyOnDrop` / `notifyOnInlineImageDrop` switches say who wants an email. */
  policy: AttachmentPolicy;
}

/**
 * Told once per mail with drops, after its commit (tests, a UI). The reference's "email notification for
 * dropped attachment/inline image" does not go through here: it is written to the outbox in the mail's own
 * transaction (commitBatch with the notifier, notify/drop-notice.ts), so a crash after the commit delays that
 * email and never loses it; a crash before this call only loses this call.
 */
export type DropNotifier = (event: DropEvent) => Promise<void>;

export interface FetchContext {
  store: Store;
  blobs: BlobStore;
  rawPacks: RawPacks;
  lease: MailboxLease;
  logger: Logger;
  /** The mailbox's connector; `mailbox` says whose (OAuth tokens are kept per mailbox id). */
  connect(settings: MailboxSettings, mailbox: { id: number; name: string }): Connector;
  errorRoute?: ErrorRoute;
  /** Told about dropped attachments after each commit (see DropNotifier). Failures are logged, never thrown. */
  notify?: DropNotifier;
  /** Records bell notices and notification mail in the transaction of what they tell about (src/notify). */
  notifier?: Notifier;
  /** Aborted on shutdown: the round stops between mails (every committed mail is acknowledged first). */
  signal?: AbortSignal;
  /** The parser's limits (MAILINTAKE_MAX_MAIL_MB); absent: the defaults of pipeline/parse.ts. */
  parseLimits?: Partial<ParseLimits>;
}

/**
 * One fetch round of one mailbox: the way of one mail from DESIGN.md, for every waiting mail.
 * Guarantees: the server is acknowledged only after a mail's effect is committed (never lost); a mail whose
 * identity is in the intake log already is only acknowledged again (never duplicated); a failing mail is
 * logged with its code and the loop goes on (one bad mail never blocks the mailbox).
 */
/** A round's summary before it has done anything (also the summary of a round that could not start). */
export function emptySummary(mailbox: string): FetchSummary {
  return {
    mailbox,
    reached: false,
    fetched: 0,
    created: 0,
    appended: 0,
    ignored: 0,
    errored: 0,
    reacknowledged: 0,
    skippedErrors: 0,
    movedToErrorFolder: 0,
    error: null,
    stopped: null,
    durationMs: 0,
  };
}

export async function fetchMailbox(
  ctx: FetchContext,
  mailbox: IntakeMailbox,
  settings: MailboxSettings,
): Promise<FetchSummary> {
  const started = Date.now();
  const summary = emptySummary(mailbox.name);
  const hold = await ctx.lease.acquire(mailbox.id);
  if (!hold) {
    summary.error = { code: 'MAILBOX_BUSY', message: 'another fetch of this mailbox is running' };
    summary.durationMs = Date.now() - started;
    return summary;
  }
  const server = ctx.connect(settings, mailbox);
  // POP3's error mails an admin moved back to the inbox are kept by us: the route adds them to the round
  const connector = ctx.errorRoute?.inbox?.(server, mailbox) ?? server;
  let roundError: MailintakeError | null = null;
  const store: StoreOutcome = { error: null };
  try {
    await connector.open();
    summary.reached = true;
    await takeIn(ctx, connector, mailbox, settings, summary, hold, store);
  } catch (err) {
    roundError = toMailintakeError(err, 'INTERNAL');
    summary.error = { code: roundError.code, message: roundError.message };
    ctx.logger.warn('fetch round failed', {
      mailbox: mailbox.name,
      code: roundError.code,
      error: roundError.message,
    });
  } finally {
    await connector.close();
    if (roundError?.code === 'STORE_FAILED') store.error = roundError;
    // A round that did not get to its mails (no connection, or stopped early on something else) says nothing
    // of the store: the store-failure count neither grows nor resets.
    const storeOutcome = store.error ?? (summary.reached && roundError === null ? null : undefined);
    await recordRound(ctx, mailbox.id, settings, roundError, storeOutcome).catch((err) =>
      ctx.logger.error('could not record the fetch round', { mailbox: mailbox.name, error: String(err) }),
    );
    await hold.release().catch(() => undefined);
  }
  summary.durationMs = Date.now() - started;
  return summary;
}

function afterFetchOf(settings: MailboxSettings): AfterFetch {
  if (settings.afterFetch === 'move') return { action: 'move', folder: settings.moveToFolder ?? 'Processed' };
  return { action: settings.afterFetch };
}

/** The round's last STORE_FAILED, for the store-failure alert (notify/connection-alerts.ts). */
interface StoreOutcome {
  error: MailintakeError | null;
}

async function takeIn(
  ctx: FetchContext,
  connector: Connector,
  mailbox: IntakeMailbox,
  settings: MailboxSettings,
  summary: FetchSummary,
  hold: LeaseHold,
  store: StoreOutcome,
): Promise<void> {
  const waiting = await connector.listNew();
  const known = await knownIdentities(ctx.store, mailbox.id, waiting);
  const action = afterFetchOf(settings);
  const policy = mailbox.attachmentPolicy ?? DEFAULT_ATTACHMENT_POLICY;
  const sniff = blobSniffer(ctx.blobs);
  await settleAcknowledged(ctx.store, mailbox.id, waiting);

  // Mails whose effect committed earlier but whose acknowledgement did not happen (crash between commit and
  // acknowledge, or a failed acknowledge): acknowledge now, create nothing.
  // With "leave" (POP3) the server keeps listing every mail taken in: one already acknowledged needs nothing.
  const again = waiting.filter((m) => {
    const k = known.get(m.identity);
    return k !== undefined && k.outcome !== 'error' && !(action.action === 'leave' && k.acknowledged);
  });
  if (again.length > 0) {
    await acknowledge(ctx, connector, mailbox.id, again, action);
    summary.reacknowledged += again.length;
    ctx.logger.info('acknowledged again, no new effect', { mailbox: mailbox.name, count: again.length });
  }

  // Mails that failed before with a code a retry cannot fix are the error route's: moved to the error folder
  // (also the rest of a move a crash cut short), or skipped. Unless an admin moved them back to the inbox since,
  // keeping their identity (Graph): then they are taken in again like new mail.
  const route = ctx.errorRoute ?? leaveOnServer;
  const routeContext = { connector, mailbox, settings, notifier: ctx.notifier };
  const isFinal = (k: Known | undefined) => k?.outcome === 'error' && !retriedNextRound(k.errorCode);
  const failedBefore = waiting.filter((m) => isFinal(known.get(m.identity)));
  const released =
    failedBefore.length > 0 && route.released
      ? await route.released(
          mailbox.id,
          failedBefore.map((m) => ({ identity: m.identity, failedAt: known.get(m.identity)!.updatedAt })),
        )
      : new Set<string>();
  const todo: RemoteMail[] = [];
  const stillFailed: FailedMail[] = [];
  // A move the server refused ends the round as ACK_FAILED, but only after the other mails were taken in
  let refusedMove: MailintakeError | null = null;
  for (const m of waiting) {
    const k = known.get(m.identity);
    if (k === undefined && m.flaggedDeleted) continue; // flagged by someone else, not ours to take in
    if (k === undefined) todo.push(m);
    else if (k.outcome === 'error') {
      if (!isFinal(k) || released.has(m.identity)) todo.push(m);
      else stillFailed.push({ mail: m, error: null });
    }
  }
  if (stillFailed.length > 0) {
    const routed = await route.route(routeContext, stillFailed);
    summary.skippedErrors += routed.left;
    summary.movedToErrorFolder += routed.routed;
    refusedMove ??= routed.moveError ?? null;
    if (routed.stop) {
      summary.stopped = 'error-folder-limit';
      if (refusedMove) throw refusedMove;
      return;
    }
  }

  const batches: RemoteMail[][] = [];
  for (let i = 0; i < todo.length; i += batches[batches.length - 1]!.length) {
    batches.push(nextBatch(todo, i, Boolean(connector.fetchMany)));
  }
  // While one batch is parsed and committed, the next one's sources are already on their way (I/O overlapped
  // with CPU); memory stays bounded by two batches.
  const fetchSources = (batch: RemoteMail[] | undefined) =>
    batch && isBuffered(connector, batch) ? connector.fetchMany!(batch) : Promise.resolve(null);
  let prefetched = fetchSources(batches[0]);
  for (let b = 0; b < batches.length && !ctx.signal?.aborted; b++) {
    const batch = batches[b]!;
    if (!(await hold.renew())) {
      throw new MailintakeError(
        'MAILBOX_BUSY',
        'the fetch lease was lost to another worker; stopping this round',
      );
    }
    if (mailbox.enabled) {
      const stopped = await disabledMeanwhile(ctx.store, mailbox.id);
      if (stopped !== null) {
        summary.stopped = stopped;
        ctx.logger.info('round stopped: the mailbox was disabled', {
          mailbox: mailbox.name,
          reason: stopped,
        });
        break;
      }
    }
    const sources = await prefetched;
    // A streamed (large) batch is not overlapped: its download and a prefetch would share the connection.
    prefetched = sources ? fetchSources(batches[b + 1]) : Promise.resolve(null);
    prefetched.catch(() => undefined); // awaited (and thrown) on the next turn; the round may end first
    const blobs = new DeferredSyncBlobs(ctx.blobs);
    const pack = ctx.rawPacks.writer();
    // Several mails of the batch are prepared at once: parsing is CPU on this thread, while blob writes wait
    // on the file system; overlapping them keeps both busy. Results keep the batch's (UID) order, so a reply
    // is still committed after the mail it answers.
    const items = await mapInOrder(batch, PREPARE_CONCURRENCY, async (mail) => {
      summary.fetched++;
      const k = known.get(mail.identity);
      const item = await prepare(
        connector,
        mail,
        sources?.get(mail.identity),
        blobs,
        pack,
        k?.outcome === 'error',
        { policy, sniff: headSniffer(blobs, sniff), limits: ctx.parseLimits },
        ctx.logger,
      );
      ctx.logger.debug('mail prepared', { mailbox: mailbox.name, identity: mail.identity });
      failpoint('after-parse');
      return item;
    });
    try {
      await Promise.all([blobs.flush(), pack.flush()]);
    } catch (err) {
      // Nothing of this batch is known to be durable: no row may point at it. Every mail of the batch is
      // recorded as STORE_FAILED (retried next round) and stays on the server.
      const error = toMailintakeError(
        err,
        'STORE_FAILED',
        'attachments or raw copies could not be made durable',
      );
      // The parsed mail stays with the item: its error row then carries the sender and subject.
      for (const item of items) {
        item.error = error;
        item.rawPacked = null;
        item.rawSha256 = null;
      }
    }
    failpoint('after-blob-write');
    const results = await commitBatch(ctx.store, mailbox, items, ctx.notifier);
    failpoint('after-commit');
    const done: RemoteMail[] = [];
    const failed: FailedMail[] = [];
    for (const [n, result] of results.entries()) {
      const mail = batch[n]!;
      if (result.outcome === 'error') {
        summary.errored++;
        if (result.error.code === 'STORE_FAILED') store.error = result.error;
        ctx.logger.warn('mail not taken in', {
          mailbox: mailbox.name,
          identity: mail.identity,
          code: result.error.code,
          error: result.error.message,
        });
        // a retryable failure stays where it is and is tried again next round; the others are the route's
        if (roundRuleOf(result.error) !== 'retry-mail') failed.push({ mail, error: result.error });
        continue;
      }
      summary[result.outcome]++;
      done.push(mail);
      if (result.outcome !== 'ignored' && result.dropped?.length && ctx.notify) {
        const event: DropEvent = {
          mailbox: mailbox.name,
          portalId: mailbox.portalId,
          requestId: result.requestId,
          conversationId: result.outcome === 'appended' ? result.conversationId : null,
          dropped: result.dropped,
          policy,
        };
        await ctx
          .notify(event)
          .catch((err: unknown) =>
            ctx.logger.error('drop notification failed', { mailbox: mailbox.name, error: String(err) }),
          );
      }
      ctx.logger.info('mail taken in', {
        mailbox: mailbox.name,
        identity: mail.identity,
        outcome: result.outcome,
        request: result.requestId,
      });
    }
    if (done.length > 0) await acknowledge(ctx, connector, mailbox.id, done, action);
    if (failed.length > 0) {
      const routed = await route.route(routeContext, failed);
      summary.movedToErrorFolder += routed.routed;
      refusedMove ??= routed.moveError ?? null;
      if (routed.stop) {
        // "Stop mail fetching after N mails": the mails after this batch stay untouched on the server
        summary.stopped = 'error-folder-limit';
        ctx.logger.warn('round stopped: the error folder reached its limit', { mailbox: mailbox.name });
        break;
      }
    }
  }
  if (refusedMove) throw refusedMove;
}

/** Like Promise.all over `items.map(fn)`, with at most `width` calls running at once. */
async function mapInOrder<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}

function isBuffered(connector: Connector, batch: RemoteMail[]): boolean {
  return (
    Boolean(connector.fetchMany) &&
    (batch.length > 1 || (batch[0]?.size ?? Number.POSITIVE_INFINITY) <= BATCH_MAIL_MAX_BYTES)
  );
}

/** Consecutive small mails up to the batch limits, or a single large one. */
function nextBatch(todo: RemoteMail[], from: number, canBatch: boolean): RemoteMail[] {
  const first = todo[from]!;
  if (!canBatch || (first.size ?? Number.POSITIVE_INFINITY) > BATCH_MAIL_MAX_BYTES) return [first];
  const batch: RemoteMail[] = [];
  let bytes = 0;
  for (let j = from; j < todo.length && batch.length < BATCH_MAX_COUNT; j++) {
    const m = todo[j]!;
    const size = m.size ?? Number.POSITIVE_INFINITY;
    if (size > BATCH_MAIL_MAX_BYTES || bytes + size > BATCH_MAX_BYTES) break;
    batch.push(m);
    bytes += size;
  }
  return batch;
}

/**
 * Downloads (or takes from the batch), parses and keeps the raw copy of one mail, without committing anything.
 * A failure of the server connection ends the round (thrown); a failure of the mail itself is returned as a
 * coded error for the batch to record.
 */
async function prepare(
  connector: Connector,
  mail: RemoteMail,
  buffered: Buffer | undefined,
  blobs: DeferredSyncBlobs,
  pack: RawPackWriter,
  retry: boolean,
  checks: { policy: AttachmentPolicy; sniff: Sniff; limits?: Partial<ParseLimits> | undefined },
  logger: Logger,
): Promise<BatchItem> {
  let connectionFailure: unknown = null;
  let raw: Readable;
  let rawKept: Promise<{ sha256: string }>;
  let rawPacked: RawLocation | null = null;
  // The raw source is kept as fetched, beside the parsed mail: what a parser could not make sense of (a
  // broken MIME boundary drops the body in any parser) is never lost, whatever the after-fetch action does.
  // A batched (small) mail is in memory already: it goes into the batch's raw pack. A large one streams into
  // the blob store while it is parsed.
  if (buffered) {
    raw = new PassThrough().end(buffered);
    rawPacked = pack.add(buffered);
    rawKept = Promise.resolve({ sha256: createHash('sha256').update(buffered).digest('hex') });
  } else {
    // A failure of the server connection mid-stream is not the mail's fault: it must end the round (the
    // mail stays unacknowledged, and is taken in next time), not be logged as a broken mail.
    const source = await connector.stream(mail);
    const forParser = new PassThrough();
    const forBlob = new PassThrough();
    source.once('error', (err) => {
      connectionFailure = err;
      forParser.destroy(err);
      forBlob.destroy(err);
    });
    // pipe() waits for the slower of the two, so memory stays bounded; if the parser gives up early
    // (MAIL_TOO_LARGE), its side unpipes on close and the raw copy still completes.
    source.pipe(forParser);
    source.pipe(forBlob);
    raw = forParser;
    rawKept = blobs.put(forBlob);
  }
  const [parsedResult, rawResult] = await Promise.allSettled([
    parseMail(raw, { blobs, ...(checks.limits ? { limits: checks.limits } : {}) }),
    rawKept,
  ]);
  const item: BatchItem = {
    serverIdentity: mail.identity,
    retry,
    rawSha256: rawResult.status === 'fulfilled' ? rawResult.value.sha256 : null,
    rawPacked,
    size: mail.size,
    parsed: null,
    error: null,
  };
  if (connectionFailure) {
    const coded = toMailintakeError(connectionFailure, 'TIMEOUT', 'the connection failed while downloading');
    // A source that failed with a code of its own that is not the connection's (a kept POP3 error mail whose
    // sealed copy does not open: STORE_FAILED) fails this mail only, and is retried next round.
    if (!isMailintakeError(connectionFailure) || roundRuleOf(coded) === 'stop-round') throw coded;
    item.error = coded;
    item.rawSha256 = null;
  } else if (parsedResult.status === 'rejected') {
    const coded = toMailintakeError(parsedResult.reason, 'PARSE_FAILED');
    if (roundRuleOf(coded) === 'stop-round') throw coded;
    item.error = coded;
    if (coded.code === 'STORE_FAILED' && buffered) {
      // The store refused an attachment (a full disk), not the mail: parsed again without keeping anything, the
      // mail gives its sender and subject for the error row, so an admin sees whose mail waits.
      item.parsed = await parseMail(new PassThrough().end(buffered), {
        blobs: new DiscardingBlobs(),
        ...(checks.limits ? { limits: checks.limits } : {}),
      }).catch((err: unknown) => {
        logger.debug('no sender and subject for a STORE_FAILED mail', { error: String(err) });
        return null;
      });
    }
  } else if (rawResult.status === 'rejected') {
    item.error = toMailintakeError(rawResult.reason, 'STORE_FAILED', 'the raw mail could not be kept');
    item.parsed = parsedResult.value;
  } else {
    item.parsed = parsedResult.value;
    // The attachment checks run here, before the commit: the sniffing reads blobs (I/O), which must not
    // happen inside the batch's transaction. A failing read is the store's fault, not the mail's: the mail is
    // recorded as STORE_FAILED and retried next round, never taken in with unchecked attachments.
    try {
      item.checked = await checkAttachments(item.parsed.attachments, checks.policy, checks.sniff);
    } catch (err) {
      item.error = toMailintakeError(err, 'STORE_FAILED', 'the attachments could not be checked');
    }
  }
  return item;
}

async function acknowledge(
  ctx: FetchContext,
  connector: Connector,
  mailboxId: number,
  mails: RemoteMail[],
  action: AfterFetch,
): Promise<void> {
  try {
    await connector.acknowledge(mails, action);
  } catch (err) {
    const coded = toMailintakeError(err, 'ACK_FAILED');
    // Effects are committed; the mails are seen again next round and acknowledged then, never stored twice.
    throw coded.code === 'ACK_FAILED' || roundRuleOf(coded) === 'stop-round'
      ? coded
      : new MailintakeError('ACK_FAILED', coded.message, { cause: err });
  }
  await markAcknowledged(
    ctx.store,
    mailboxId,
    mails.map((m) => m.identity),
  );
}

async function markAcknowledged(store: Store, mailboxId: number, identities: string[]): Promise<void> {
  for (let i = 0; i < identities.length; i += 500) {
    await store.db
      .updateTable('intake_log')
      .set({ acknowledged: 1, updated_at: nowIso() })
      .where('mailbox_id', '=', mailboxId)
      .where('server_identity', 'in', identities.slice(i, i + 500))
      .execute();
  }
}

/**
 * A crash between the server's acknowledgement and our note of it leaves committed rows marked unacknowledged
 * although the server already took the action (the mail is read, deleted or moved, so it is not offered as new
 * any more). Such rows are settled here: whatever the server no longer offers needs no acknowledgement.
 */
async function settleAcknowledged(store: Store, mailboxId: number, waiting: RemoteMail[]): Promise<void> {
  const offered = new Set(waiting.map((m) => m.identity));
  const open = await store.db
    .selectFrom('intake_log')
    .select('server_identity')
    .where('mailbox_id', '=', mailboxId)
    .where('acknowledged', '=', 0)
    .where('outcome', '!=', 'error')
    .execute();
  await markAcknowledged(
    store,
    mailboxId,
    open.map((r) => r.server_identity).filter((id) => !offered.has(id)),
  );
}

/** What the intake log knows of a listed mail. */
interface Known {
  outcome: string;
  errorCode: string | null;
  acknowledged: boolean;
  /** When the row was last written (an error row: the last failed attempt). */
  updatedAt: string;
}

async function knownIdentities(
  store: Store,
  mailboxId: number,
  mails: RemoteMail[],
): Promise<Map<string, Known>> {
  const out = new Map<string, Known>();
  for (let i = 0; i < mails.length; i += 500) {
    const rows = await store.db
      .selectFrom('intake_log')
      .select(['server_identity', 'outcome', 'error_code', 'acknowledged', 'updated_at'])
      .where('mailbox_id', '=', mailboxId)
      .where(
        'server_identity',
        'in',
        mails.slice(i, i + 500).map((m) => m.identity),
      )
      .execute();
    for (const r of rows) {
      out.set(r.server_identity, {
        outcome: r.outcome,
        errorCode: r.error_code,
        acknowledged: r.acknowledged === 1,
        updatedAt: r.updated_at,
      });
    }
  }
  return out;
}

/**
 * The round on the mailbox row (last fetch, last error, consecutive failed connections) and, in the same
 * transaction, the connection-failure alert at the threshold or the "recovered" notice
 * (notify/connection-alerts.ts). The outbox is woken once that committed.
 */
async function recordRound(
  ctx: FetchContext,
  mailboxId: number,
  settings: MailboxSettings,
  error: MailintakeError | null,
  storeError: MailintakeError | null | undefined,
): Promise<void> {
  const server =
    settings.protocol === 'graph' && settings.graphEndpoint
      ? settings.graphEndpoint
      : `${settings.protocol}://${serverLabel(settings)}`;
  const notice = await withTransaction(ctx.store, (tx) =>
    recordRoundOutcome(tx, ctx.notifier, { mailboxId, server, error, storeError }),
  );
  if (notice) ctx.notifier?.kick();
}

/** The reason when the mailbox is disabled now (the round started while it was enabled), else null. */
async function disabledMeanwhile(store: Store, mailboxId: number): Promise<string | null> {
  const row = await store.db
    .selectFrom('mailboxes')
    .select(['enabled', 'disabled_reason'])
    .where('id', '=', mailboxId)
    .executeTakeFirst();
  if (!row) return 'removed';
  return row.enabled === 1 ? null : (row.disabled_reason ?? 'admin');
}
