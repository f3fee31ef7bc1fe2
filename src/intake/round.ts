import type { AfterFetch, Connector, RemoteMail } from '../connectors/connector.js';
import type { MailboxSettings } from '../connectors/settings.js';
import { MailintakeError, roundRuleOf, toMailintakeError } from '../kernel/errors.js';
import { failpoint } from '../kernel/failpoints.js';
import { PREPARE_CONCURRENCY } from '../kernel/limits.js';
import type { Logger } from '../kernel/logger.js';
import {
  type AttachmentPolicy,
  DEFAULT_ATTACHMENT_POLICY,
  type DroppedPart,
  type Sniff,
} from '../mail/attachment-checks.js';
import type { ParseLimits } from '../mail/parse.js';
import { blobSniffer, headSniffer } from '../mail/sniff.js';
import type { Notifier } from '../notify/notifier.js';
import { type BlobStore, DeferredSyncBlobs } from '../store/blobs/blob-store.js';
import type { RawPacks, RawPackWriter } from '../store/blobs/raw-packs.js';
import type { Store } from '../store/db.js';
import { acknowledge, afterFetchOf, settleAcknowledged } from './acknowledge.js';
import { mapInOrder, prefetcher, splitIntoBatches } from './batches.js';
import { type BatchItem, commitBatch } from './commit-mail.js';
import { type ErrorRoute, type ErrorRouteContext, type FailedMail, leaveOnServer } from './error-folder.js';
import type { IntakeMailbox } from './intake-mailbox.js';
import { committedBefore, type Known, knownIdentities, sortWaiting } from './known.js';
import type { LeaseHold, MailboxLease } from './lease.js';
import { type CommittedOutcome, type FetchSummary, tally } from './outcome.js';
import { prepare } from './prepare.js';

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
  /** The parser's limits (MAILINTAKE_MAX_MAIL_MB); absent: DEFAULT_PARSE_LIMITS (kernel/limits.ts). */
  parseLimits?: Partial<ParseLimits>;
}

/** The round's last STORE_FAILED, for the store-failure alert (notify/connection-alerts.ts). */
export interface StoreOutcome {
  error: MailintakeError | null;
}

/** One round of one mailbox while it runs: what every stage reads, and what the round has learnt so far. */
interface Round {
  ctx: FetchContext;
  connector: Connector;
  mailbox: IntakeMailbox;
  summary: FetchSummary;
  hold: LeaseHold;
  store: StoreOutcome;
  action: AfterFetch;
  policy: AttachmentPolicy;
  sniff: Sniff;
  route: ErrorRoute;
  routeContext: ErrorRouteContext;
  /** A move the server refused ends the round as ACK_FAILED, but only after the other mails were taken in. */
  refusedMove: MailintakeError | null;
}

/**
 * The way of one mail (DESIGN.md, ARCHITECTURE.md), for every waiting mail of one connected mailbox:
 *
 *   list → skip known (acknowledge again what committed before) → error route of earlier failures →
 *   per batch: fetch → parse → check → classify + commit (one transaction) → acknowledge | error route
 *
 * Guarantees: the server is acknowledged only after a mail's effect is committed (never lost); a mail whose
 * identity is in the intake log already is only acknowledged again (never duplicated); a failing mail is
 * logged with its code and the loop goes on (one bad mail never blocks the mailbox). Every mail ends as one
 * MailOutcome (outcome.ts), and the summary is their tally.
 */
export async function takeIn(
  ctx: FetchContext,
  connector: Connector,
  mailbox: IntakeMailbox,
  settings: MailboxSettings,
  summary: FetchSummary,
  hold: LeaseHold,
  store: StoreOutcome,
): Promise<void> {
  const r = startRound(ctx, connector, mailbox, settings, summary, hold, store);
  const waiting = await connector.listNew();
  const known = await knownIdentities(ctx.store, mailbox.id, waiting);
  await settleAcknowledged(ctx.store, mailbox.id, waiting);
  await acknowledgeAgain(r, committedBefore(waiting, known, r.action));
  const { todo, stillFailed } = await sortWaiting(waiting, known, r.route, mailbox.id);
  if (stillFailed.length === 0 || (await routeFailed(r, stillFailed))) {
    const batches = splitIntoBatches(todo, connector);
    const sources = prefetcher(connector, batches);
    for (let b = 0; b < batches.length && !ctx.signal?.aborted; b++) {
      const batch = batches[b]!;
      if (!(await mayGoOn(r))) break;
      const items = await prepareBatch(r, batch, await sources.next(b), known);
      const outcomes = await commitBatch(ctx.store, mailbox, items, ctx.notifier);
      failpoint('after-commit');
      const { done, failed } = await takeStock(r, batch, outcomes);
      if (done.length > 0) await acknowledge(ctx.store, connector, mailbox.id, done, r.action);
      if (failed.length > 0 && !(await routeFailed(r, failed))) {
        ctx.logger.warn('round stopped: the error folder reached its limit', { mailbox: mailbox.name });
        break;
      }
    }
  }
  if (r.refusedMove) throw r.refusedMove;
}

function startRound(
  ctx: FetchContext,
  connector: Connector,
  mailbox: IntakeMailbox,
  settings: MailboxSettings,
  summary: FetchSummary,
  hold: LeaseHold,
  store: StoreOutcome,
): Round {
  return {
    ctx,
    connector,
    mailbox,
    summary,
    hold,
    store,
    action: afterFetchOf(settings),
    policy: mailbox.attachmentPolicy ?? DEFAULT_ATTACHMENT_POLICY,
    sniff: blobSniffer(ctx.blobs),
    route: ctx.errorRoute ?? leaveOnServer,
    routeContext: { connector, mailbox, settings, notifier: ctx.notifier },
    refusedMove: null,
  };
}

/** Mails committed in an earlier round and never acknowledged: acknowledged now, nothing created. */
async function acknowledgeAgain(r: Round, again: RemoteMail[]): Promise<void> {
  if (again.length === 0) return;
  await acknowledge(r.ctx.store, r.connector, r.mailbox.id, again, r.action);
  tally(
    r.summary,
    again.map((m) => ({ outcome: 'reacknowledged', identity: m.identity })),
  );
  r.ctx.logger.info('acknowledged again, no new effect', { mailbox: r.mailbox.name, count: again.length });
}

/**
 * The error route for failed mails. False when the mailbox reached its error-folder limit ("stop mail fetching
 * after N mails"): the round ends, and the mails after these stay untouched on the server.
 */
async function routeFailed(r: Round, failed: FailedMail[]): Promise<boolean> {
  const routed = await r.route.route(r.routeContext, failed);
  tally(r.summary, routed.outcomes);
  r.refusedMove ??= routed.moveError ?? null;
  if (routed.stop) r.summary.stopped = 'error-folder-limit';
  return !routed.stop;
}

/**
 * Before each batch: the lease must still be ours (else another worker fetches this mailbox now), and a round
 * that started on an enabled mailbox stops once it was disabled meanwhile (stopped mails stay on the server).
 */
async function mayGoOn(r: Round): Promise<boolean> {
  if (!(await r.hold.renew())) {
    throw new MailintakeError(
      'MAILBOX_BUSY',
      'the fetch lease was lost to another worker; stopping this round',
    );
  }
  if (!r.mailbox.enabled) return true;
  const stopped = await disabledMeanwhile(r.ctx.store, r.mailbox.id);
  if (stopped === null) return true;
  r.summary.stopped = stopped;
  r.ctx.logger.info('round stopped: the mailbox was disabled', { mailbox: r.mailbox.name, reason: stopped });
  return false;
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

/**
 * Fetch, parse and check every mail of the batch (prepare.ts), then make their blobs and raw copies durable.
 * Several mails are prepared at once: parsing is CPU on this thread, while blob writes wait on the file
 * system; overlapping them keeps both busy. Results keep the batch's (UID) order, so a reply is still
 * committed after the mail it answers.
 */
async function prepareBatch(
  r: Round,
  batch: RemoteMail[],
  sources: Map<string, Buffer> | null,
  known: Map<string, Known>,
): Promise<BatchItem[]> {
  const blobs = new DeferredSyncBlobs(r.ctx.blobs);
  const pack = r.ctx.rawPacks.writer();
  const scope = {
    connector: r.connector,
    blobs,
    pack,
    checks: { policy: r.policy, sniff: headSniffer(blobs, r.sniff), limits: r.ctx.parseLimits },
    logger: r.ctx.logger,
  };
  const items = await mapInOrder(batch, PREPARE_CONCURRENCY, async (mail) => {
    r.summary.fetched++;
    const retry = known.get(mail.identity)?.outcome === 'error';
    const item = await prepare(scope, mail, sources?.get(mail.identity), retry);
    r.ctx.logger.debug('mail prepared', { mailbox: r.mailbox.name, identity: mail.identity });
    failpoint('after-parse');
    return item;
  });
  await makeDurable(items, blobs, pack);
  failpoint('after-blob-write');
  return items;
}

async function makeDurable(items: BatchItem[], blobs: DeferredSyncBlobs, pack: RawPackWriter): Promise<void> {
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
}

/**
 * The batch's outcomes, counted and logged: the mails taken in are to be acknowledged (`done`); a failed mail
 * is retried next round or handed to the error route (`failed`), as its code's rule says (kernel/errors.ts).
 */
async function takeStock(
  r: Round,
  batch: RemoteMail[],
  outcomes: CommittedOutcome[],
): Promise<{ done: RemoteMail[]; failed: FailedMail[] }> {
  tally(r.summary, outcomes);
  const done: RemoteMail[] = [];
  const failed: FailedMail[] = [];
  for (const [n, outcome] of outcomes.entries()) {
    const mail = batch[n]!;
    if (outcome.outcome === 'error') {
      if (outcome.error.code === 'STORE_FAILED') r.store.error = outcome.error;
      r.ctx.logger.warn('mail not taken in', {
        mailbox: r.mailbox.name,
        identity: mail.identity,
        code: outcome.error.code,
        error: outcome.error.message,
      });
      if (roundRuleOf(outcome.error) !== 'retry-mail') failed.push({ mail, error: outcome.error });
      continue;
    }
    done.push(mail);
    if (outcome.outcome !== 'ignored') await tellDrops(r, outcome);
    r.ctx.logger.info('mail taken in', {
      mailbox: r.mailbox.name,
      identity: mail.identity,
      outcome: outcome.outcome,
      request: outcome.requestId,
    });
  }
  return { done, failed };
}

async function tellDrops(
  r: Round,
  outcome: Extract<CommittedOutcome, { dropped: DroppedPart[] }>,
): Promise<void> {
  if (!outcome.dropped.length || !r.ctx.notify) return;
  const event: DropEvent = {
    mailbox: r.mailbox.name,
    portalId: r.mailbox.portalId,
    requestId: outcome.requestId,
    conversationId: outcome.outcome === 'appended' ? outcome.conversationId : null,
    dropped: outcome.dropped,
    policy: r.policy,
  };
  await r.ctx
    .notify(event)
    .catch((err: unknown) =>
      r.ctx.logger.error('drop notification failed', { mailbox: r.mailbox.name, error: String(err) }),
    );
}
