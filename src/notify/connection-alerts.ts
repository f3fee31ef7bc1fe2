import { CONNECTION_CODES, ERROR_HELP, type MailintakeError } from '../kernel/errors.js';
import { nowIso } from '../store/db.js';
import { systemLog } from '../store/system-log.js';
import type { Tx } from '../store/tx.js';
import { readAlertSettings } from './alert-settings.js';
import type { Notifier } from './notifier.js';

/**
 * The reference's "Configure Notifications for Connectivity Issues". A round that cannot connect is skipped
 * (the next schedule tries again) and counted; at the threshold, admins get a bell notification and the
 * technicians of the 'connection-failure' rule an email, and the count starts again from 0 (so the notice
 * repeats every `threshold` failed rounds while the mailbox stays unreachable). The first round that connects
 * after a notice sends the 'connection-recovered' notice. All of it in the round's own transaction: the
 * counter, the notice and its outbox mail commit together or not at all.
 */

export interface RoundFacts {
  mailboxId: number;
  /** `host:port` (Graph: the endpoint), for the notice. */
  server: string;
  /** The round's error; null when it went through. */
  error: MailintakeError | null;
  /**
   * The round's last STORE_FAILED (a mail's or the round's); null when the round reached the mailbox and stored
   * everything it took in; undefined when the round did not reach the mailbox (it says nothing of the store).
   */
  storeError?: MailintakeError | null | undefined;
}

export type RoundNotice =
  | 'connection-failure'
  | 'connection-recovered'
  | 'store-failure'
  | 'store-recovered'
  | null;

/**
 * Records one round on the mailbox row (last fetch, last error, the consecutive-failure count) and raises a
 * notice when one is due. Only connection codes count as failures: a round that connected and then stopped on
 * something else (an acknowledgement refused) did reach the mailbox. Without a notifier nothing is notified
 * and the count is not reset. Returns the notice recorded, if any: the caller kicks the outbox after commit.
 */
export async function recordRoundOutcome(
  tx: Tx,
  notifier: Notifier | undefined,
  round: RoundFacts,
): Promise<RoundNotice> {
  const connection = await recordConnectionOutcome(tx, notifier, round);
  const store = await recordStoreOutcome(tx, notifier, round);
  return connection ?? store;
}

async function recordConnectionOutcome(
  tx: Tx,
  notifier: Notifier | undefined,
  round: RoundFacts,
): Promise<RoundNotice> {
  const failed = round.error !== null && CONNECTION_CODES.has(round.error.code);
  const row = await tx
    .updateTable('mailboxes')
    .set((eb) => ({
      last_fetch_at: nowIso(),
      last_error_code: round.error?.code ?? null,
      last_error_message: round.error?.message ?? null,
      consecutive_failures: failed ? eb('consecutive_failures', '+', 1) : 0,
    }))
    .where('id', '=', round.mailboxId)
    .returning(['name', 'portal_id', 'consecutive_failures', 'failure_alerted'])
    .executeTakeFirst();
  if (!row) return null; // removed meanwhile
  const settings = await readAlertSettings(tx);
  const portal = async () =>
    (await tx.selectFrom('portals').select('name').where('id', '=', row.portal_id).executeTakeFirst())
      ?.name ?? String(row.portal_id);

  if (failed && notifier && settings.enabled && row.consecutive_failures >= settings.threshold) {
    const error = round.error!;
    const count = row.consecutive_failures;
    await tx
      .updateTable('mailboxes')
      .set({ consecutive_failures: 0, failure_alerted: 1 })
      .where('id', '=', round.mailboxId)
      .execute();
    const portalName = await portal();
    await notifier.record(tx, {
      event: 'connection-failure',
      portalId: row.portal_id,
      mailboxId: round.mailboxId,
      bell: true,
      title: `Mailbox ${row.name} cannot connect: ${count} failed round${count === 1 ? '' : 's'} in a row`,
      body: [
        `Mailintake could not connect to the mailbox "${row.name}" (${round.server}, portal ${portalName}) in ${count} consecutive fetch rounds.`,
        '',
        `Last error: ${error.code}: ${error.message}`,
        `What to check: ${ERROR_HELP[error.code]}`,
        '',
        'No mail is lost: it stays on the server, and every scheduled round tries again.',
        `While the mailbox stays unreachable, this notice repeats every ${settings.threshold} failed rounds; you will be told when it connects again.`,
      ].join('\n'),
    });
    await systemLog(tx, {
      level: 'error',
      category: 'connection-failure',
      message: `mailbox ${row.name}: ${count} consecutive rounds could not connect (${error.code}); admins and technicians notified, count reset`,
      details: {
        mailbox: row.name,
        portal: portalName,
        server: round.server,
        failures: count,
        threshold: settings.threshold,
        code: error.code,
        error: error.message,
      },
    });
    return 'connection-failure';
  }

  if (!failed && row.failure_alerted === 1) {
    await tx.updateTable('mailboxes').set({ failure_alerted: 0 }).where('id', '=', round.mailboxId).execute();
    const portalName = await portal();
    const notify = notifier !== undefined && settings.enabled;
    if (notify) {
      await notifier.record(tx, {
        event: 'connection-recovered',
        portalId: row.portal_id,
        mailboxId: round.mailboxId,
        bell: true,
        title: `Mailbox ${row.name} connects again`,
        body: [
          `Mailintake reached the mailbox "${row.name}" (${round.server}, portal ${portalName}) again after it had been reported unreachable.`,
          'Fetching goes on as scheduled; mail that arrived meanwhile was waiting on the server and is taken in now.',
        ].join('\n'),
      });
    }
    await systemLog(tx, {
      level: 'info',
      category: 'connection-recovered',
      message: `mailbox ${row.name} connects again${notify ? '; admins and technicians notified' : ' (notifications are off)'}`,
      details: { mailbox: row.name, portal: portalName, server: round.server, notified: notify },
    });
    return notify ? 'connection-recovered' : null;
  }
  return null;
}

/**
 * A store that keeps failing (a full disk, a database that refuses writes) is told like a connection that keeps
 * failing: each round with a STORE_FAILED mail counts, and at the same threshold (and switch) as connection
 * alerts, admins get a bell notification and the technicians of the 'mail-error' rule (the reference's "send
 * e-mail when an application error occurs") an email, naming what failed and where. The mails stay on the
 * server unacknowledged and are tried again each round, so the count grows while the cause lasts and the
 * notice repeats every `threshold` rounds. The first round that stores everything again tells admins (bell).
 */
async function recordStoreOutcome(
  tx: Tx,
  notifier: Notifier | undefined,
  round: RoundFacts,
): Promise<RoundNotice> {
  if (round.storeError === undefined) return null;
  const failed = round.storeError !== null;
  const row = await tx
    .updateTable('mailboxes')
    .set((eb) => ({ store_failures: failed ? eb('store_failures', '+', 1) : 0 }))
    .where('id', '=', round.mailboxId)
    .returning(['name', 'portal_id', 'store_failures', 'store_alerted'])
    .executeTakeFirst();
  if (!row) return null;
  const settings = await readAlertSettings(tx);
  const portal = async () =>
    (await tx.selectFrom('portals').select('name').where('id', '=', row.portal_id).executeTakeFirst())
      ?.name ?? String(row.portal_id);

  if (failed && notifier && settings.enabled && row.store_failures >= settings.threshold) {
    const error = round.storeError!;
    const count = row.store_failures;
    await tx
      .updateTable('mailboxes')
      .set({ store_failures: 0, store_alerted: 1 })
      .where('id', '=', round.mailboxId)
      .execute();
    const portalName = await portal();
    await notifier.record(tx, {
      event: 'mail-error',
      portalId: row.portal_id,
      mailboxId: round.mailboxId,
      bell: true,
      title: `Mailbox ${row.name} cannot store mail: ${count} round${count === 1 ? '' : 's'} in a row`,
      body: [
        `Mailintake could not store mail of the mailbox "${row.name}" (portal ${portalName}) in ${count} consecutive fetch rounds.`,
        '',
        `Last error: ${error.code}: ${error.message}`,
        `What to check: ${ERROR_HELP[error.code]}`,
        '',
        'No mail is lost: the mails stay on the server, unacknowledged, and every round tries them again.',
        `While storing keeps failing, this notice repeats every ${settings.threshold} such rounds; you will be told when it works again.`,
      ].join('\n'),
    });
    await systemLog(tx, {
      level: 'error',
      category: 'store-failure',
      message: `mailbox ${row.name}: ${count} consecutive rounds could not store mail (${error.code}); admins and technicians notified, count reset`,
      details: {
        mailbox: row.name,
        portal: portalName,
        failures: count,
        threshold: settings.threshold,
        code: error.code,
        error: error.message,
        ...(typeof error.details.path === 'string' ? { path: error.details.path } : {}),
      },
    });
    return 'store-failure';
  }

  if (!failed && row.store_alerted === 1) {
    await tx.updateTable('mailboxes').set({ store_alerted: 0 }).where('id', '=', round.mailboxId).execute();
    const portalName = await portal();
    const notify = notifier !== undefined && settings.enabled;
    if (notify) {
      await notifier.record(tx, {
        event: 'mail-error',
        portalId: row.portal_id,
        mailboxId: round.mailboxId,
        bell: true,
        email: false,
        title: `Mailbox ${row.name} stores mail again`,
        body: `Mailintake stored every mail of a round of the mailbox "${row.name}" (portal ${portalName}) again after storing had been reported failing; the mails that waited on the server are taken in.`,
      });
    }
    await systemLog(tx, {
      level: 'info',
      category: 'store-recovered',
      message: `mailbox ${row.name} stores mail again${notify ? '; admins notified' : ' (notifications are off)'}`,
      details: { mailbox: row.name, portal: portalName, notified: notify },
    });
    return notify ? 'store-recovered' : null;
  }
  return null;
}
