import { folderLoopIssues, type MailboxSettings } from '../connectors/settings.js';
import { MailintakeError, toMailintakeError } from '../kernel/errors.js';
import type { Logger } from '../kernel/logger.js';
import type { IntakeMailbox } from './commit-mail.js';
import { emptySummary, type FetchContext, fetchMailbox } from './fetch-mailbox.js';
import { RoundGate } from './scheduler.js';

type FetchSummary = Awaited<ReturnType<typeof fetchMailbox>>;

export interface RoundRunnerOptions {
  ctx: FetchContext;
  /**
   * The mailbox as a round sees it, with its settings (secrets opened); NOT_FOUND when there is none. Read once
   * per round with the portal's attachment policy: a change applies from the next round on, never halfway
   * through a batch.
   */
  load(name: string): Promise<{ mailbox: IntakeMailbox; settings: MailboxSettings }>;
  logger: Logger;
  /** Told after every round, whoever asked for it (see RuntimeOptions.onFetchRound). */
  onFetchRound?: (summary: FetchSummary) => void;
  /** Told how each request for a round was served (see RuntimeOptions.onRoundAsked). */
  onRoundAsked?: (event: { mailbox: string; how: 'started' | 'joined' | 'queued' }) => void;
}

export interface RoundRunner {
  /** A round of `name`; every round of this process goes through here (one per mailbox at a time). */
  run(name: string, opts: { fresh: boolean }): Promise<FetchSummary>;
  /**
   * A round the schedule or an IDLE push asked for: a round that could not even start (the database went away
   * before the lease or the mailbox row was read) is still a round, reported with its code like any other, and
   * the schedule tries again. Never throws.
   */
  scheduled(name: string, opts: { fresh: boolean }): Promise<void>;
  /** Resolves once no round runs or waits. */
  idle(): Promise<void>;
}

/** One fetch round of one mailbox at a time, in this process (the lease keeps other processes out). */
export function createRoundRunner(o: RoundRunnerOptions): RoundRunner {
  const fetchOne = async (name: string): Promise<FetchSummary> => {
    const { mailbox, settings } = await o.load(name);
    // rows saved before the folder-loop rule are refused here rather than taking their mail in forever
    const loops = folderLoopIssues(settings);
    if (loops.length > 0) {
      throw new MailintakeError('INVALID_SETTINGS', `mailbox "${name}": ${loops[0]!.message}`, {
        details: { fields: loops },
      });
    }
    return fetchMailbox(o.ctx, mailbox, settings);
  };
  const report = (s: FetchSummary) => {
    o.logger.info('fetch round', { ...s });
    o.onFetchRound?.(s);
  };
  const gate = new RoundGate(
    async (name: string) => {
      const s = await fetchOne(name);
      report(s);
      return s;
    },
    o.onRoundAsked ? (mailbox, how) => o.onRoundAsked?.({ mailbox, how }) : undefined,
  );
  return {
    run: (name, opts) => gate.run(name, opts),
    scheduled: async (name, { fresh }) => {
      const started = Date.now();
      try {
        await gate.run(name, { fresh });
      } catch (err) {
        const coded = toMailintakeError(err, 'INTERNAL');
        o.logger.warn('fetch round failed', { mailbox: name, code: coded.code, error: coded.message });
        report({
          ...emptySummary(name),
          error: { code: coded.code, message: coded.message },
          durationMs: Date.now() - started,
        });
      }
    },
    idle: () => gate.idle(),
  };
}
