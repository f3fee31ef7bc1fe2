import type { AfterFetch, RemoteMail } from './connector.js';

/** How one protocol with flags and folders (IMAP, EWS, Graph) carries out each after-fetch action. */
export interface AfterFetchSteps {
  markRead(mails: RemoteMail[]): Promise<void>;
  delete(mails: RemoteMail[]): Promise<void>;
  move(mails: RemoteMail[], folder: string): Promise<void>;
}

/**
 * Applies an after-fetch action to mails whose effect is committed. "leave" does nothing: the settings refuse
 * it for protocols with flags (mark-read is their non-destructive action), and it is POP3's own.
 */
export async function applyAfterFetch(
  mails: RemoteMail[],
  action: AfterFetch,
  steps: AfterFetchSteps,
): Promise<void> {
  if (mails.length === 0) return;
  switch (action.action) {
    case 'mark-read':
      return steps.markRead(mails);
    case 'delete':
      return steps.delete(mails);
    case 'move':
      return steps.move(mails, action.folder);
    case 'leave':
      return;
  }
}
