import type { AfterFetch, RemoteMail } from '../connectors/connector.js';
import { retriedNextRound } from '../kernel/errors.js';
import { SQL_IN_LIST_MAX } from '../kernel/limits.js';
import type { Store } from '../store/db.js';
import type { ErrorRoute, FailedMail } from './error-folder.js';

/** What the intake log knows of a listed mail. */
export interface Known {
  outcome: string;
  errorCode: string | null;
  acknowledged: boolean;
  /** When the row was last written (an error row: the last failed attempt). */
  updatedAt: string;
}

/** The stage "skip known": the intake log's rows for the listed mails, by server identity. */
export async function knownIdentities(
  store: Store,
  mailboxId: number,
  mails: RemoteMail[],
): Promise<Map<string, Known>> {
  const out = new Map<string, Known>();
  for (let i = 0; i < mails.length; i += SQL_IN_LIST_MAX) {
    const rows = await store.db
      .selectFrom('intake_log')
      .select(['server_identity', 'outcome', 'error_code', 'acknowledged', 'updated_at'])
      .where('mailbox_id', '=', mailboxId)
      .where(
        'server_identity',
        'in',
        mails.slice(i, i + SQL_IN_LIST_MAX).map((m) => m.identity),
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
 * Mails whose effect committed earlier but whose acknowledgement did not happen (crash between commit and
 * acknowledge, or a failed acknowledge): to be acknowledged now, creating nothing. With "leave" (POP3) the
 * server keeps listing every mail taken in: one already acknowledged needs nothing.
 */
export function committedBefore(
  waiting: RemoteMail[],
  known: Map<string, Known>,
  action: AfterFetch,
): RemoteMail[] {
  return waiting.filter((m) => {
    const k = known.get(m.identity);
    return k !== undefined && k.outcome !== 'error' && !(action.action === 'leave' && k.acknowledged);
  });
}

/** A mail that failed before with a code the next round does not retry (kernel/errors.ts ROUND_RULES). */
function failedForGood(k: Known | undefined): boolean {
  return k?.outcome === 'error' && !retriedNextRound(k.errorCode);
}

/**
 * The listed mails the round takes in (`todo`: new ones, and failed ones the rule retries), and those that
 * failed before for good (`stillFailed`: the error route's — moved to the error folder, also the rest of a move
 * a crash cut short, or skipped). Unless an admin moved them back to the inbox since, keeping their identity
 * (Graph): then they are taken in again like new mail.
 */
export async function sortWaiting(
  waiting: RemoteMail[],
  known: Map<string, Known>,
  route: ErrorRoute,
  mailboxId: number,
): Promise<{ todo: RemoteMail[]; stillFailed: FailedMail[] }> {
  const failedBefore = waiting.filter((m) => failedForGood(known.get(m.identity)));
  const released =
    failedBefore.length > 0 && route.released
      ? await route.released(
          mailboxId,
          failedBefore.map((m) => ({ identity: m.identity, failedAt: known.get(m.identity)!.updatedAt })),
        )
      : new Set<string>();
  const todo: RemoteMail[] = [];
  const stillFailed: FailedMail[] = [];
  for (const m of waiting) {
    const k = known.get(m.identity);
    if (k === undefined && m.flaggedDeleted) continue; // flagged by someone else, not ours to take in
    if (k === undefined) todo.push(m);
    else if (k.outcome === 'error') {
      if (!failedForGood(k) || released.has(m.identity)) todo.push(m);
      else stillFailed.push({ mail: m, error: null });
    }
  }
  return { todo, stillFailed };
}
