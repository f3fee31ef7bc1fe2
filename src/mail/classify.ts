import { createHash } from 'node:crypto';
import type {
  ParsedMail,
  ThreadCandidates,
  ThreadDecision,
  ThreadFacts,
  ThreadingSettings,
} from './types.js';

/*
 * Pure classification of a parsed mail: which request does it belong to, and is it machine-generated.
 * No I/O: the fetch loop computes `threadCandidates(mail)`, asks the store for the facts, then calls
 * `decideThread(mail, settings, facts)`; every decision carries the reasons an admin reads in the intake log.
 */

/** ServiceDesk Plus' subject token, `##123##` (also matches inside `[##123##]` and `Re: [Request ##123##]`). */
const SUBJECT_TOKEN = /##(\d+)##/g;

/** The request id named by the first usable `##<id>##` token of a subject, or null. */
export function subjectRequestId(subject: string): number | null {
  for (const match of subject.matchAll(SUBJECT_TOKEN)) {
    const id = Number(match[1]);
    // `##99999999999999999999##` would round to some other request's id: an absurd number names no request.
    if (Number.isSafeInteger(id) && id > 0) return id;
  }
  return null;
}

export function threadCandidates(mail: ParsedMail): ThreadCandidates {
  // In-Reply-To names the mail answered (most specific); References lists the thread oldest first
  // (RFC 5322 §3.6.4), so the newest ancestor comes next.
  const headerIds: string[] = [];
  for (const id of [...mail.inReplyTo, ...[...mail.references].reverse()]) {
    if (id.length > 0 && !headerIds.includes(id)) headerIds.push(id);
  }
  return { headerIds, subjectRequestId: subjectRequestId(mail.subject) };
}

export function decideThread(
  mail: ParsedMail,
  settings: ThreadingSettings,
  facts: ThreadFacts,
): ThreadDecision {
  if (facts.ownMessageIdRequest !== null) {
    return {
      kind: 'duplicate',
      requestId: facts.ownMessageIdRequest,
      reasons: [
        `Message-ID <${mail.messageId ?? ''}> was taken in already for request #${facts.ownMessageIdRequest} ` +
          '(the same mail reached another of our mailboxes, or was fetched before)',
      ],
    };
  }

  const candidates = threadCandidates(mail);
  const reasons: string[] = [];

  if (settings.headerThreading) {
    for (const id of candidates.headerIds) {
      const requestId = facts.byMessageId.get(id);
      if (requestId !== undefined) {
        const header = mail.inReplyTo.includes(id) ? 'In-Reply-To' : 'References';
        return {
          kind: 'conversation',
          requestId,
          reasons: [`${header} <${id}> matches a mail of request #${requestId}`],
        };
      }
    }
    reasons.push(
      candidates.headerIds.length === 0
        ? 'the mail has no In-Reply-To/References headers'
        : 'no In-Reply-To/References matched a known mail',
    );
  } else {
    reasons.push('header threading is off for this portal (In-Reply-To/References are not used)');
  }

  // The reply address's signature is ours: the answer was sent to the address we gave for this request alone,
  // whatever happened to its headers and subject on the way (and whatever the header-threading switch says).
  const reply = facts.replyAddress;
  if (reply?.kind === 'valid') {
    return {
      kind: 'conversation',
      requestId: reply.requestId,
      reasons: [...reasons, `sent to the reply address <${reply.address}> of request #${reply.requestId}`],
    };
  }
  if (reply?.kind === 'invalid') {
    reasons.push(
      `<${reply.address}> looks like a reply address of request #${reply.requestId} but ${reply.why ?? 'its signature is not ours'}: not used for threading`,
    );
  }

  const subjectId = candidates.subjectRequestId;
  if (subjectId !== null && facts.subjectRequestExists) {
    return {
      kind: 'conversation',
      requestId: subjectId,
      reasons: [...reasons, `subject token ##${subjectId}##`],
    };
  }
  reasons.push(
    subjectId === null
      ? 'subject has no ##id## token'
      : `subject token ##${subjectId}## names no request of this portal`,
  );
  return { kind: 'new-request', reasons };
}

export type AutoSubmittedKind = 'auto-reply' | 'bounce' | 'bulk' | 'loop-suspect';

/**
 * Whether a mail was sent by a machine, and which signal says so (the first that matches, strongest first).
 *
 * The weaker signals, for the trace only: intake decides with mail/machine.ts machineKind (which ignores bounces,
 * our own mail and auto-replies) and adds this flag to the reasons of mails machineKind takes for a person's,
 * so that the signals that were deliberately not enough (X-Auto-Response-Suppress, Precedence: list, a null
 * Return-Path alone) still show where an admin looks.
 */
export function autoSubmitted(mail: ParsedMail): null | { kind: AutoSubmittedKind; reason: string } {
  const h = mail.headers;
  const contentType = (h['content-type'] ?? '').toLowerCase();
  const reportType = /^multipart\/report\b/.test(contentType)
    ? (/;\s*report-type\s*=\s*"?([\w-]+)"?/.exec(contentType)?.[1] ?? '')
    : null;

  // Bounces: a DSN (RFC 3464 multipart/report; report-type=delivery-status), or Exim's X-Failed-Recipients.
  if (reportType === 'delivery-status') {
    return {
      kind: 'bounce',
      reason: 'Content-Type multipart/report; report-type=delivery-status (a DSN, RFC 3464)',
    };
  }
  if (h['x-failed-recipients'] !== undefined) {
    return { kind: 'bounce', reason: `X-Failed-Recipients: ${h['x-failed-recipients']}` };
  }

  // X-Loop is set by list managers and help desks (procmail, RT, OTRS) on mail they send out; seeing it on an
  // incoming mail means it passed through such an automaton, possibly ours.
  if (h['x-loop'] !== undefined) {
    return { kind: 'loop-suspect', reason: `X-Loop: ${h['x-loop']}` };
  }

  // RFC 3834 §5: any Auto-Submitted value other than "no" marks a machine-sent mail; the value may carry
  // parameters and comments (`auto-generated (postmaster-notification)`).
  const auto = h['auto-submitted'];
  if (auto !== undefined) {
    const value = (/^\s*([\w-]+)/.exec(auto)?.[1] ?? '').toLowerCase();
    if (value !== 'no') {
      return {
        kind: value === 'auto-replied' ? 'auto-reply' : 'bulk',
        reason: `Auto-Submitted: ${auto} (RFC 3834)`,
      };
    }
  }
  if (reportType === 'disposition-notification') {
    return {
      kind: 'auto-reply',
      reason: 'a read receipt (multipart/report; report-type=disposition-notification)',
    };
  }
  for (const name of ['x-autoreply', 'x-autorespond']) {
    const value = h[name];
    if (value !== undefined && value.trim().toLowerCase() !== 'no') {
      return {
        kind: 'auto-reply',
        reason: `${name === 'x-autoreply' ? 'X-Autoreply' : 'X-Autorespond'}: ${value}`,
      };
    }
  }
  // Precedence is not standard but universal. Note: Google Groups set `Precedence: list` on every mail they
  // forward, so a support address that is a group flags its customers' mails as bulk (auto-responses then stay
  // suppressed for them; the mails themselves are taken in as usual).
  const precedence = (h.precedence ?? '').trim().toLowerCase();
  if (precedence === 'auto_reply') return { kind: 'auto-reply', reason: 'Precedence: auto_reply' };
  if (precedence === 'bulk' || precedence === 'junk' || precedence === 'list') {
    return { kind: 'bulk', reason: `Precedence: ${precedence}` };
  }
  // Microsoft's way of saying "do not auto-answer this" (Exchange sets it on its own out-of-office replies).
  const suppress = h['x-auto-response-suppress'];
  if (suppress !== undefined && suppress.trim() !== '' && suppress.trim().toLowerCase() !== 'none') {
    return { kind: 'auto-reply', reason: `X-Auto-Response-Suppress: ${suppress}` };
  }

  // The null reverse-path is what DSNs must use (RFC 5321 §4.5.5) and auto-responders should (RFC 3834 §3.3).
  const returnPath = h['return-path'];
  const fromDaemon =
    /^mailer-daemon@/i.test(mail.from?.address ?? '') || /<?mailer-daemon\b/i.test(returnPath ?? '');
  if (returnPath !== undefined && /^<\s*>$/.test(returnPath.trim())) {
    return fromDaemon
      ? { kind: 'bounce', reason: 'Return-Path <> from MAILER-DAEMON (null sender, RFC 5321 §4.5.5)' }
      : {
          kind: 'auto-reply',
          reason: 'Return-Path <> (null sender: an automatic reply or a bounce, RFC 3834 §3.3)',
        };
  }
  if (fromDaemon) return { kind: 'bounce', reason: 'sent by MAILER-DAEMON' };
  // Old-style bounces (plain text, no DSN): a postmaster or an unnamed sender (`From: MAILER-DAEMON <>` has
  // no address) together with the subject every MTA uses. The subject alone is not enough: customers forward
  // bounces to the help desk to ask what went wrong.
  const from = mail.from?.address ?? '';
  if ((from === '' || /^postmaster@/i.test(from)) && BOUNCE_SUBJECT.test(mail.subject)) {
    return {
      kind: 'bounce',
      reason: `subject "${mail.subject}" from ${from === '' ? 'an unnamed sender' : from}`,
    };
  }
  return null;
}

const BOUNCE_SUBJECT =
  /^\s*(undeliver|returned mail|mail delivery (failed|failure)|delivery (status notification|failure|notification)|failure notice|non-?delivery|mail system error)/i;

/**
 * What makes two deliveries the same mail: sender, subject, date, bodies and attachment contents — not the
 * headers that servers add on the way (Received, Delivered-To, Return-Path), which differ between the copies
 * delivered to two of our mailboxes. Paired with the Message-ID, it tells a copy from a reused Message-ID.
 */
export function mailFingerprint(mail: ParsedMail): string {
  const parts = [
    mail.from?.address ?? '',
    mail.subject,
    mail.date ?? '',
    mail.text ?? '',
    mail.html ?? '',
    ...mail.attachments.map((a) => `${a.sha256}:${a.filename}`),
  ];
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}
