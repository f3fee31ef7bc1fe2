import type { ParsedMail } from './types.js';

/*
 * What a bounce says went wrong, for the delivery it reports on: the DSN's Status (RFC 3464 §2.3.4, an RFC 3463
 * code such as 5.1.1) and Diagnostic-Code (§2.3.6, the remote server's own words), or, for the non-standard
 * forms, the first line that reads like an SMTP refusal. Pure, no I/O. mailparser reads a message/delivery-status
 * part into the text, so the fields are found there.
 */

export interface BounceFailure {
  /** The RFC 3463 status (5.1.1), or an SMTP reply code (550) from a non-standard bounce; null if none. */
  status: string | null;
  /** The Diagnostic-Code, or the refusal's line; never empty. */
  reason: string;
}

const MAX_REASON_CHARS = 1000;

export function bounceFailure(mail: ParsedMail): BounceFailure {
  const text = `${mail.text ?? ''}`.slice(0, 100_000);
  const status = /^[ \t]*status:\s*([245]\.\d{1,3}\.\d{1,3})\b/im.exec(text)?.[1] ?? null;
  const diag = /^[ \t]*diagnostic-code:\s*(.+(?:\r?\n[ \t]+.+)*)/im.exec(text)?.[1];
  // a Diagnostic-Code of blanks alone ("Diagnostic-Code:   ") is no reason: the lines below may hold one
  const diagReason = diag === undefined ? '' : clean(diag);
  if (diagReason !== '') return { status, reason: diagReason };
  // Exim, qmail, Exchange's text bounces: the remote server's refusal is quoted on a line of its own
  const smtp = /^.*\b([45]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3})?.*$/m.exec(text);
  if (smtp) return { status: status ?? smtp[2] ?? smtp[1] ?? null, reason: clean(smtp[0]) };
  const failed = mail.headers['x-failed-recipients'];
  return {
    status,
    reason: failed
      ? `delivery to ${clean(failed)} failed (no reason given)`
      : `the bounce "${clean(mail.subject)}" gives no reason`,
  };
}

function clean(value: string): string {
  const one = value.replace(/\s+/g, ' ').trim();
  return one.length > MAX_REASON_CHARS ? `${one.slice(0, MAX_REASON_CHARS)}…` : one;
}
