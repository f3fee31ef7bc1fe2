import type { AfterFetch, Connector, RemoteMail } from '../connectors/connector.js';
import type { MailboxSettings } from '../connectors/settings.js';
import { MailintakeError, roundRuleOf, toMailintakeError } from '../kernel/errors.js';
import { SQL_IN_LIST_MAX } from '../kernel/limits.js';
import type { Store } from '../store/db.js';
import { nowIso } from '../store/db.js';

/** The after-fetch action of the mailbox's settings, as the connector takes it. */
export function afterFetchOf(settings: MailboxSettings): AfterFetch {
  if (settings.afterFetch === 'move') return { action: 'move', folder: settings.moveToFolder ?? 'Processed' };
  return { action: settings.afterFetch };
}

/**
 * The acknowledge stage: the after-fetch action on the server, for mails whose effect is COMMITTED (never
 * before), then noted in the intake log. A refusal ends the round as ACK_FAILED (a lost connection keeps its
 * own code): the effects are committed, so the mails are seen again next round and acknowledged then, never
 * stored twice.
 */
export async function acknowledge(
  store: Store,
  connector: Connector,
  mailboxId: number,
  mails: RemoteMail[],
  action: AfterFetch,
): Promise<void> {
  try {
    await connector.acknowledge(mails, action);
  } catch (err) {
    const coded = toMailintakeError(err, 'ACK_FAILED');
    throw coded.code === 'ACK_FAILED' || roundRuleOf(coded) === 'stop-round'
      ? coded
      : new MailintakeError('ACK_FAILED', coded.message, { cause: err });
  }
  await markAcknowledged(
    store,
    mailboxId,
    mails.map((m) => m.identity),
  );
}

async function markAcknowledged(store: Store, mailboxId: number, identities: string[]): Promise<void> {
  for (let i = 0; i < identities.length; i += SQL_IN_LIST_MAX) {
    await store.db
      .updateTable('intake_log')
      .set({ acknowledged: 1, updated_at: nowIso() })
      .where('mailbox_id', '=', mailboxId)
      .where('server_identity', 'in', identities.slice(i, i + SQL_IN_LIST_MAX))
      .execute();
  }
}

/**
 * A crash between the server's acknowledgement and our note of it leaves committed rows marked unacknowledged
 * although the server already took the action (the mail is read, deleted or moved, so it is not offered as new
 * any more). Such rows are settled here: whatever the server no longer offers needs no acknowledgement.
 */
export async function settleAcknowledged(
  store: Store,
  mailboxId: number,
  waiting: RemoteMail[],
): Promise<void> {
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
