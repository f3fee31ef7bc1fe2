import type { Readable } from 'node:stream';

/**
 * The contract every mailbox protocol implements (IMAP, POP3, EWS and Graph, one folder each). The fetch loop
 * only talks to this interface, so the exactly-once rules live in one place (src/intake) and not in each
 * protocol.
 *
 * Rules every implementation keeps:
 * - `identity` is stable for the life of the mail on the server and never a sequence number
 *   (IMAP: folder + UIDVALIDITY + UID; POP3: UIDL; Graph/EWS: immutable id).
 * - Nothing is removed, flagged or moved on the server except by `acknowledge` / `moveTo`, which the loop calls
 *   only after the mail's effect is committed.
 * - Failures are thrown as MailintakeError with a connection code (CONNECT_FAILED, TLS_FAILED, AUTH_FAILED, …).
 */
export interface Connector {
  /** What this protocol can and cannot do; the contract suite and the settings follow it. */
  readonly traits: ConnectorTraits;
  /** Connects and logs in. */
  open(): Promise<void>;
  /** The mails waiting to be taken in, oldest first. */
  listNew(): Promise<RemoteMail[]>;
  /** The raw RFC 5322 source, streamed. The stream must be consumed or destroyed before the next call. */
  stream(mail: RemoteMail): Promise<Readable>;
  /**
   * Raw sources of several small mails at once (pipelined), in the order asked. Optional: the loop falls back
   * to `stream` one by one. Implementations keep the batch's total size bounded by the caller's choice.
   */
  fetchMany?(mails: RemoteMail[]): Promise<Map<string, Buffer>>;
  /** Applies the after-fetch action (mark read, delete, move) to mails whose effect is committed. */
  acknowledge(mails: RemoteMail[], action: AfterFetch): Promise<void>;
  /** Moves mails to a named folder, creating it when missing (error folder seam). */
  moveTo(mails: RemoteMail[], folder: string): Promise<void>;
  /**
   * The error folder's "move mails to inbox": moves the mails of `folder` that `wanted` describes back to the
   * folder listNew reads, where the next round takes them in as new mail. Only mails that match are moved (an
   * admin's own mails in that folder stay). Resolves with the `key`s of the wanted mails it moved; a wanted
   * mail that is not in `folder` (any more) is left out. A missing folder moves nothing. Optional: protocols
   * with folders implement it (IMAP: by size and sha256 of the raw source, because a MOVE gives the mail a new
   * UID; Graph: by immutable id, which a move keeps); POP3 has no folders.
   */
  moveBack?(folder: string, wanted: WantedMail[]): Promise<string[]>;
  /** Logs out and closes; never throws. */
  close(): Promise<void>;
}

/** Differences between protocols that callers (and the shared contract suite) must know. */
export interface ConnectorTraits {
  /** The after-fetch action that keeps a mail on the server: IMAP mark-read, POP3 leave. */
  keepAction: 'mark-read' | 'leave';
  /**
   * Whether a mail acknowledged with `keepAction` is still listed by listNew. IMAP: no (only unseen mail is new).
   * POP3: yes (no flags); the intake log recognises it and nothing is created twice.
   */
  listsKeptMail: boolean;
  /** Named folders exist, so moveTo can work (POP3 has none). */
  folders: boolean;
}

export interface RemoteMail {
  /** Stable server identity, e.g. `INBOX;1700000000;42`. Unique within the mailbox. */
  identity: string;
  /** Size in bytes as the server reports it (RFC822.SIZE), when known. */
  size?: number;
  /**
   * Marked for deletion on the server but not yet removed (IMAP \Deleted without EXPUNGE). Such a mail is
   * only ours to finish when we committed it (a crash between flagging and expunging); one a person flagged in
   * another client is left alone.
   */
  flaggedDeleted?: boolean;
  /** Protocol-specific handle (IMAP UID, POP3 message number…). Opaque to the loop. */
  handle: unknown;
}

/** A mail Mailintake put into an error folder, as `moveBack` looks for it. */
export interface WantedMail {
  /** The caller's name for it, given back when it was moved. */
  key: string;
  /** Its identity in the folder it was taken from (Graph: the immutable id, the same in every folder). */
  identity: string;
  /** Size in bytes and sha256 of its raw source as fetched, when kept. */
  size?: number;
  sha256?: string;
}

/**
 * After-fetch actions. `leave` changes nothing on the server (POP3: the intake log remembers the UIDL, and a
 * mail listed again is recognised and only acknowledged again, as a no-op).
 */
export type AfterFetch =
  | { action: 'mark-read' }
  | { action: 'delete' }
  | { action: 'move'; folder: string }
  | { action: 'leave' };

/** What `mailbox test` (the reference's "fetch a sample mail") shows of the oldest mail. */
export interface SampleMail {
  from: string | null;
  subject: string | null;
  date: string | null;
  size: number;
  attachments: string[];
}
