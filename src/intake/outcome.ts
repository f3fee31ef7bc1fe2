import type { MailintakeError } from '../kernel/errors.js';
import type { DroppedPart } from '../mail/attachment-checks.js';

/**
 * What one mail came to in one round: the one answer of the round's stages (round.ts). The commit gives
 * created / appended / ignored / error, the acknowledge stage reacknowledged, the error route
 * moved-to-error-folder / left / skipped. It is what the intake-log row records (commit-mail.ts), what the
 * round's summary counts (`tally`), and what the API and the CLI show through those two.
 */
export type MailOutcome =
  | {
      outcome: 'created';
      identity: string;
      requestId: number;
      reasons: string[];
      /** Items the attachment checks dropped (listed with the request, never silently lost). */
      dropped: DroppedPart[];
    }
  | {
      outcome: 'appended';
      identity: string;
      requestId: number;
      conversationId: number;
      reasons: string[];
      dropped: DroppedPart[];
    }
  /**
   * No new effect: a copy of a mail taken in before (same Message-ID and fingerprint, or the same content;
   * requestId names its request), or a machine's mail that makes no request (a bounce, our own mail come back,
   * an auto-reply threading nowhere: mail/machine.ts; requestId null). The raw is kept either way.
   */
  | { outcome: 'ignored'; identity: string; requestId: number | null; reasons: string[] }
  /**
   * Not taken in; an `error` row with the code is recorded. What follows is the code's rule
   * (kernel/errors.ts roundRuleOf): tried again next round, or the error route's.
   */
  | { outcome: 'error'; identity: string; error: MailintakeError }
  /** Committed in an earlier round, but its acknowledgement had not happened: acknowledged now, nothing created. */
  | { outcome: 'reacknowledged'; identity: string }
  /** A failed mail moved to the error folder (POP3: kept by Mailintake, deleted from the server). */
  | { outcome: 'moved-to-error-folder'; identity: string }
  /** A mail that failed this round, left where it is (the mailbox does not move failed mail aside). */
  | { outcome: 'left'; identity: string }
  /** A mail that failed in an earlier round, left where it is again and skipped. */
  | { outcome: 'skipped'; identity: string };

/** What a commit decides for one mail: the outcomes an intake-log row records. */
export type CommittedOutcome = Extract<MailOutcome, { outcome: Outcome }>;

/** The intake log's `outcome` column (and IntakeLogEntry's): the outcomes the commit records. */
export type Outcome = 'created' | 'appended' | 'ignored' | 'error';

/** One row of the intake log, as the API (GET /api/v1/log) and the CLI (`log`) show it. */
export interface IntakeLogEntry {
  id: number;
  mailbox: string;
  serverIdentity: string;
  messageId: string | null;
  contentHash: string | null;
  /** The raw source as fetched is kept and can be downloaded (`log raw ID`, GET /api/v1/log/{id}/raw). */
  rawAvailable: boolean;
  outcome: Outcome;
  requestId: number | null;
  conversationId: number | null;
  errorCode: string | null;
  reasons: string[];
  subject: string | null;
  from: string | null;
  size: number | null;
  attempts: number;
  acknowledged: boolean;
  createdAt: string;
  updatedAt: string;
}

/** One mailbox's result of one fetch round (`fetch --once` prints these). */
export interface FetchSummary {
  mailbox: string;
  /** false: the mailbox could not be reached (or was busy); `error` says why. */
  reached: boolean;
  /** Mails downloaded this round (counted by the fetch stage, whatever became of them). */
  fetched: number;
  created: number;
  appended: number;
  ignored: number;
  errored: number;
  /** Mails seen again after a crash or a failed acknowledgement: acknowledged now, no new effect. */
  reacknowledged: number;
  /** Mails that failed before with an error a retry cannot fix, left in the inbox (no error folder set). */
  skippedErrors: number;
  /** Mails moved to the error folder this round (POP3: kept by Mailintake and deleted from the server). */
  movedToErrorFolder: number;
  error: { code: string; message: string } | null;
  /**
   * The round ended early because the mailbox was disabled meanwhile: the reason ('settings-changed',
   * 'error-folder-limit', 'admin'). Mails not reached stay on the server for a later round.
   */
  stopped: string | null;
  durationMs: number;
}

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

/** The summary's counter each outcome adds one to (`left` is counted as `errored` already, when it failed). */
const COUNTER: Record<MailOutcome['outcome'], keyof FetchSummary | null> = {
  created: 'created',
  appended: 'appended',
  ignored: 'ignored',
  error: 'errored',
  reacknowledged: 'reacknowledged',
  'moved-to-error-folder': 'movedToErrorFolder',
  left: null,
  skipped: 'skippedErrors',
};

/** Folds outcomes into the round's counters: the summary is nothing but their count (and `fetched`). */
export function tally(summary: FetchSummary, outcomes: readonly MailOutcome[]): void {
  for (const { outcome } of outcomes) {
    const counter = COUNTER[outcome];
    if (counter !== null) (summary[counter] as number)++;
  }
}
