import type { RoundRunner } from '../../intake/round-runner.js';
import type { MailboxRepo } from '../mailboxes/repo.js';
import type { FetchSummary } from '../mailboxes/views.js';

export interface FetchService {
  /** One round over the enabled mailboxes (or the one named, enabled or not). */
  once(q: { mailbox?: string }): Promise<FetchSummary[]>;
}

/** "Fetch now" (API, CLI): rounds through the same runner as the schedule, so they never meet at the lease. */
export function createFetchService(deps: { mailboxes: MailboxRepo; rounds: RoundRunner }): FetchService {
  return {
    once: async (q) => {
      const names = q.mailbox
        ? [(await deps.mailboxes.row(q.mailbox)).name]
        : (await deps.mailboxes.rows()).filter((r) => r.enabled === 1).map((r) => r.name);
      const out: FetchSummary[] = [];
      // fresh: a caller asking mid-round may know of mail that round listed too early to see
      for (const name of names) out.push(await deps.rounds.run(name, { fresh: true }));
      return out;
    },
  };
}
