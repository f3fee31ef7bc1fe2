/** A mail after parsing: what the pipeline decides on and the store keeps. Bodies of attachments are in the
 * blob store already (streamed there while parsing); only their metadata is here. */
export interface ParsedMail {
  messageId: string | null;
  inReplyTo: string[];
  references: string[];
  subject: string;
  from: Address | null;
  to: Address[];
  cc: Address[];
  replyTo: Address[];
  date: string | null; // ISO 8601
  text: string | null;
  html: string | null; // as received; sanitising is for display
  attachments: StoredPart[];
  /** Headers the classifier looks at, lower-cased names: auto-submitted, precedence, x-auto-response-suppress… */
  headers: Record<string, string>;
  /** sha256 hex of the raw source, for the processed log's fallback identity. */
  contentHash: string;
  /** Raw size in bytes. */
  size: number;
  /** Set when the text or HTML body was cut at `ParseLimits.maxTextBytes` (see parse.ts); absent otherwise. */
  truncated?: boolean;
  /** A delivery report's returned mail's Message-ID (report-peek.ts); absent otherwise. */
  returnedMessageId?: string;
  /** With `truncated`: what was cut and how much, for the intake log. */
  truncatedReason?: string;
  /**
   * What the parser had to decide on its own, for the intake log: a charset chosen for raw 8-bit header bytes
   * or for a body whose label did not fit, an uuencoded block or a winmail.dat unpacked (or why not). Absent
   * when there is nothing to say.
   */
  parseNotes?: string[];
}

export interface Address {
  address: string; // lower-cased
  name: string;
}

export interface StoredPart {
  filename: string; // as sent (decoded); never used as a file system path
  contentType: string;
  size: number;
  sha256: string; // blob key
  contentId: string | null; // without angle brackets
  disposition: 'attachment' | 'inline';
}

/** What the classifier decided for one mail, with the reasons an admin sees in the intake log. */
export type ThreadDecision =
  | { kind: 'new-request'; reasons: string[] }
  | { kind: 'conversation'; requestId: number; reasons: string[] }
  | { kind: 'duplicate'; requestId: number; reasons: string[] };

/** Per-portal settings the classifier reads. */
export interface ThreadingSettings {
  /** false: In-Reply-To/References are ignored; only `##<id>##` in the subject threads (the reference's switch). */
  headerThreading: boolean;
}

/**
 * Facts the store looked up for the classifier, so that the classifier itself stays a pure function.
 * The fetch loop computes `threadCandidates(mail)`, asks the store, then calls `decideThread(mail, settings, facts)`.
 */
export interface ThreadFacts {
  /** The mail's own Message-ID is already known in this portal (the same mail reached another of our mailboxes). */
  ownMessageIdRequest: number | null;
  /** For each In-Reply-To/References id known in this portal: the request it belongs to. */
  byMessageId: Map<string, number>;
  /** The subject's `##<id>##` names a request of this portal. */
  subjectRequestExists: boolean;
  /**
   * A per-request reply address (mail/reply-address.ts) among the mail's recipients: `valid` when its signature
   * is ours and the request exists in this portal; `invalid` otherwise (never used for threading). Absent: none.
   */
  replyAddress?: { kind: 'valid' | 'invalid'; requestId: number; address: string; why?: string };
}

export interface ThreadCandidates {
  /** In-Reply-To first (most specific), then References newest first, de-duplicated, without angle brackets. */
  headerIds: string[];
  /** The request id from a `##<id>##` subject token, or null. */
  subjectRequestId: number | null;
}
