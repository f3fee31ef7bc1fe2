import type { Updateable } from 'kysely';
import { CONNECTION_CODES, ERROR_HELP, type MailintakeError } from '../kernel/errors.js';
import { nowIso } from '../store/db.js';
import type { MailboxTable } from '../store/schema.js';
import { systemLog } from '../store/system-log.js';
import type { Tx } from '../store/tx.js';
import { type AlertSettings, readAlertSettings } from './alert-settings.js';
import { consolePaths } from './links.js';
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
      // the run's first failure keeps its time; a round that connects ends the run
      failing_since: failed ? eb.fn.coalesce('failing_since', eb.val(nowIso())) : null,
    }))
    .where('id', '=', round.mailboxId)
    .returning(['name', 'portal_id', 'consecutive_failures', 'failure_alerted'])
    .executeTakeFirst();
  if (!row) return null; // removed meanwhile
  const turn = await turnOfStreak(tx, notifier, round.mailboxId, CONNECTION_STREAK, failed, {
    count: row.consecutive_failures,
    alerted: row.failure_alerted,
    portalId: row.portal_id,
  });

  if (turn?.is === 'alert') {
    const { notifier, settings, portalName } = turn;
    const error = round.error!;
    const count = row.consecutive_failures;
    await notifier.record(tx, {
      event: 'connection-failure',
      portalId: row.portal_id,
      mailboxId: round.mailboxId,
      bell: true,
      link: consolePaths.mailbox(row.name),
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

  if (turn?.is === 'recovered') {
    const { notifier, portalName } = turn;
    const notify = notifier !== null;
    if (notify) {
      await notifier.record(tx, {
        event: 'connection-recovered',
        portalId: row.portal_id,
        mailboxId: round.mailboxId,
        bell: true,
        link: consolePaths.mailbox(row.name),
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
  const turn = await turnOfStreak(tx, notifier, round.mailboxId, STORE_STREAK, failed, {
    count: row.store_failures,
    alerted: row.store_alerted,
    portalId: row.portal_id,
  });

  if (turn?.is === 'alert') {
    const { notifier, settings, portalName } = turn;
    const error = round.storeError!;
    const count = row.store_failures;
    await notifier.record(tx, {
      event: 'mail-error',
      portalId: row.portal_id,
      mailboxId: round.mailboxId,
      bell: true,
      link: consolePaths.mailbox(row.name),
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

  if (turn?.is === 'recovered') {
    const { notifier, portalName } = turn;
    const notify = notifier !== null;
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

/** The two failure streaks a mailbox row counts, each with its "an alert went out" mark. */
interface Streak {
  /** What the row becomes when the alert goes out: the count starts again, the mark is set. */
  alerted: Updateable<MailboxTable>;
  /** What the row becomes once the recovery is told: the mark is cleared. */
  recovered: Updateable<MailboxTable>;
}
const CONNECTION_STREAK: Streak = {
  alerted: { consecutive_failures: 0, failure_alerted: 1 },
  recovered: { failure_alerted: 0 },
};
const STORE_STREAK: Streak = {
  alerted: { store_failures: 0, store_alerted: 1 },
  recovered: { store_alerted: 0 },
};

type StreakTurn =
  | { is: 'alert'; notifier: Notifier; settings: AlertSettings; portalName: string }
  /** `notifier` is null when the recovery is only logged (no notifier, or alerts off). */
  | { is: 'recovered'; notifier: Notifier | null; portalName: string };

/**
 * What a round's count means, the same for both streaks: at the threshold (with a notifier and alerts on),
 * an alert is due and the count starts again; the first good round after an alert is a recovery, told only
 * when alerts are on. The row is updated here; the caller words the notice. Null: nothing to tell.
 */
async function turnOfStreak(
  tx: Tx,
  notifier: Notifier | undefined,
  mailboxId: number,
  streak: Streak,
  failed: boolean,
  row: { count: number; alerted: number; portalId: number },
): Promise<StreakTurn | null> {
  const settings = await readAlertSettings(tx);
  if (failed && notifier && settings.enabled && row.count >= settings.threshold) {
    await tx.updateTable('mailboxes').set(streak.alerted).where('id', '=', mailboxId).execute();
    return { is: 'alert', notifier, settings, portalName: await portalNameOf(tx, row.portalId) };
  }
  if (!failed && row.alerted === 1) {
    await tx.updateTable('mailboxes').set(streak.recovered).where('id', '=', mailboxId).execute();
    const portalName = await portalNameOf(tx, row.portalId);
    return {
      is: 'recovered',
      notifier: notifier !== undefined && settings.enabled ? notifier : null,
      portalName,
    };
  }
  return null;
}

/** The portal's name for a notice; its id when the portal is gone. */
async function portalNameOf(tx: Tx, portalId: number): Promise<string> {
  return (
    (await tx.selectFrom('portals').select('name').where('id', '=', portalId).executeTakeFirst())?.name ??
    String(portalId)
  );
}
