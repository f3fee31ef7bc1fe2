import { serverLabel } from '../connectors/net-errors.js';
import type { MailboxSettings } from '../connectors/settings.js';
import { type MailintakeError, toMailintakeError } from '../kernel/errors.js';
import { recordRoundOutcome } from '../notify/connection-alerts.js';
import { withTransaction } from '../store/tx.js';
import type { IntakeMailbox } from './intake-mailbox.js';
import { emptySummary, type FetchSummary } from './outcome.js';
import { type FetchContext, type StoreOutcome, takeIn } from './round.js';

/**
 * What happens to a mail that failed processing with a code a retry cannot fix: `leaveOnServer` leaves it where
 * it is (unacknowledged, so nothing is lost, and later rounds skip it); the error folder (error-folder.ts)
 * moves it aside with an encrypted report, notifies, and stops the mailbox at its limit.
 */
export { type ErrorRoute, leaveOnServer } from './error-folder.js';
export { emptySummary, type FetchSummary } from './outcome.js';
export type { DropEvent, DropNotifier, FetchContext } from './round.js';

/**
 * One fetch round of one mailbox, around the stage list of round.ts: the mailbox's lease (one round per
 * mailbox across processes), the connection, and afterwards the round on the mailbox row with its alerts.
 */
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
