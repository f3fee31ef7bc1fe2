import { autoSubmitted, decideThread, threadCandidates } from '../pipeline/classify.js';
import type { ParsedMail, ThreadDecision, ThreadFacts } from '../pipeline/types.js';
import type { Outcome } from '../services/views.js';
import type { Store } from '../store/db.js';
import { nowIso } from '../store/db.js';
import { type Tx, withTransaction } from '../store/tx.js';

/** The mailbox a mail came in through, as the store knows it. */
export interface IntakeMailbox {
  id: number;
  name: string;
  portalId: number;
  headerThreading: boolean;
}

export type CommitResult =
  | { outcome: 'created'; requestId: number; reasons: string[] }
  | { outcome: 'appended'; requestId: number; conversationId: number; reasons: string[] }
  | { outcome: 'ignored'; requestId: number | null; reasons: string[] };

/**
 * Commits one parsed mail: the request or conversation, its attachments, its Message-ID, and its intake-log
 * row, all in ONE transaction. This is the heart of "never duplicated": the log row is unique per
 * (mailbox, server identity), so a mail seen again after a crash cannot commit a second effect; and the server
 * is only acknowledged after this returns.
 */
export async function commitMail(
  store: Store,
  mailbox: IntakeMailbox,
  serverIdentity: string,
  mail: ParsedMail,
  rawSha256: string | null,
): Promise<CommitResult> {
  const candidates = threadCandidates(mail);
  return withTransaction(store, async (tx) => {
    const facts = await lookupFacts(tx, mailbox, mail, candidates.headerIds, candidates.subjectRequestId);
    const decision = decideThread(mail, { headerThreading: mailbox.headerThreading }, facts.thread);
    const reasons = [...facts.notes, ...decision.reasons];
    const auto = autoSubmitted(mail);
    if (auto) reasons.push(`flagged ${auto.kind}: ${auto.reason}`);
    const result = await applyDecision(tx, mailbox, mail, decision, reasons);
    await writeLog(tx, mailbox.id, serverIdentity, mail, rawSha256, result);
    return result;
  });
}

async function lookupFacts(
  tx: Tx,
  mailbox: IntakeMailbox,
  mail: ParsedMail,
  headerIds: string[],
  subjectRequestId: number | null,
): Promise<{ thread: ThreadFacts; notes: string[] }> {
  const notes: string[] = [];
  let ownMessageIdRequest: number | null = null;
  if (mail.messageId) {
    const known = await tx
      .selectFrom('message_ids')
      .select('request_id')
      .where('portal_id', '=', mailbox.portalId)
      .where('message_id', '=', mail.messageId)
      .executeTakeFirst();
    if (known) {
      // The same Message-ID twice is usually the same mail sent to several of our mailboxes (To: support,
      // Cc: helpdesk). But some mailers reuse Message-IDs for different mails; treating those as duplicates
      // would silently drop a customer's mail, so the sender and subject must match an earlier copy too.
      const earlier = await tx
        .selectFrom('intake_log')
        .innerJoin('mailboxes', 'mailboxes.id', 'intake_log.mailbox_id')
        .select(['intake_log.from_address', 'intake_log.subject'])
        .where('mailboxes.portal_id', '=', mailbox.portalId)
        .where('intake_log.message_id', '=', mail.messageId)
        .where('intake_log.outcome', 'in', ['created', 'appended'])
        .execute();
      const from = mail.from?.address ?? null;
      if (earlier.some((e) => e.from_address === from && e.subject === mail.subject)) {
        ownMessageIdRequest = known.request_id;
      } else {
        notes.push(
          `Message-ID <${mail.messageId}> was used before by a different mail; not treated as a copy`,
        );
      }
    }
  }
  if (ownMessageIdRequest === null && !mail.messageId) {
    // Without a Message-ID, the content hash is the only way to recognise a mail that came back under a new
    // server identity (UIDVALIDITY reset, a move and back). Only within the same mailbox: copies delivered
    // to two mailboxes differ in their Received headers anyway.
    const same = await tx
      .selectFrom('intake_log')
      .select(['request_id', 'server_identity'])
      .where('mailbox_id', '=', mailbox.id)
      .where('content_hash', '=', mail.contentHash)
      .where('outcome', 'in', ['created', 'appended'])
      .executeTakeFirst();
    if (same?.request_id != null) {
      ownMessageIdRequest = same.request_id;
      notes.push(`same content as ${same.server_identity}, taken in before`);
    }
  }
  const byMessageId = new Map<string, number>();
  if (headerIds.length > 0) {
    const rows = await tx
      .selectFrom('message_ids')
      .select(['message_id', 'request_id'])
      .where('portal_id', '=', mailbox.portalId)
      .where('message_id', 'in', headerIds.slice(0, 200))
      .execute();
    for (const r of rows) byMessageId.set(r.message_id, r.request_id);
  }
  let subjectRequestExists = false;
  if (subjectRequestId !== null) {
    const r = await tx
      .selectFrom('requests')
      .select('id')
      .where('id', '=', subjectRequestId)
      .where('portal_id', '=', mailbox.portalId)
      .executeTakeFirst();
    subjectRequestExists = r !== undefined;
    if (!r) notes.push(`subject names ##${subjectRequestId}## but this portal has no such request`);
  }
  return { thread: { ownMessageIdRequest, byMessageId, subjectRequestExists }, notes };
}

async function applyDecision(
  tx: Tx,
  mailbox: IntakeMailbox,
  mail: ParsedMail,
  decision: ThreadDecision,
  reasons: string[],
): Promise<CommitResult> {
  const now = nowIso();
  const to = JSON.stringify(mail.to);
  const cc = JSON.stringify(mail.cc);
  if (decision.kind === 'duplicate') {
    return { outcome: 'ignored', requestId: decision.requestId, reasons };
  }
  let requestId: number;
  let conversationId: number | null = null;
  if (decision.kind === 'new-request') {
    const row = await tx
      .insertInto('requests')
      .values({
        portal_id: mailbox.portalId,
        mailbox_id: mailbox.id,
        subject: mail.subject,
        requester_address: mail.from?.address ?? null,
        requester_name: mail.from?.name || null,
        to_addresses: to,
        cc_addresses: cc,
        message_id: mail.messageId,
        text_body: mail.text,
        html_body: mail.html,
        mail_date: mail.date,
        status: 'open',
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    requestId = row.id;
  } else {
    requestId = decision.requestId;
    const row = await tx
      .insertInto('conversations')
      .values({
        request_id: requestId,
        mailbox_id: mailbox.id,
        from_address: mail.from?.address ?? null,
        from_name: mail.from?.name || null,
        to_addresses: to,
        cc_addresses: cc,
        subject: mail.subject,
        message_id: mail.messageId,
        text_body: mail.text,
        html_body: mail.html,
        mail_date: mail.date,
        created_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    conversationId = row.id;
    await tx.updateTable('requests').set({ updated_at: now }).where('id', '=', requestId).execute();
  }
  if (mail.attachments.length > 0) {
    await tx
      .insertInto('attachments')
      .values(
        mail.attachments.map((a) => ({
          request_id: requestId,
          conversation_id: conversationId,
          filename: a.filename,
          content_type: a.contentType,
          size: a.size,
          sha256: a.sha256,
          content_id: a.contentId,
          disposition: a.disposition,
          created_at: now,
        })),
      )
      .execute();
  }
  if (mail.messageId) {
    await tx
      .insertInto('message_ids')
      .values({ portal_id: mailbox.portalId, message_id: mail.messageId, request_id: requestId })
      .onConflict((oc) => oc.columns(['portal_id', 'message_id']).doNothing())
      .execute();
  }
  return conversationId === null
    ? { outcome: 'created', requestId, reasons }
    : { outcome: 'appended', requestId, conversationId, reasons };
}

async function writeLog(
  tx: Tx,
  mailboxId: number,
  serverIdentity: string,
  mail: ParsedMail,
  rawSha256: string | null,
  result: CommitResult,
): Promise<void> {
  const now = nowIso();
  const values = {
    message_id: mail.messageId,
    content_hash: mail.contentHash,
    raw_sha256: rawSha256,
    outcome: result.outcome as Outcome,
    request_id: result.requestId,
    conversation_id: result.outcome === 'appended' ? result.conversationId : null,
    error_code: null,
    reasons: JSON.stringify(result.reasons),
    subject: mail.subject,
    from_address: mail.from?.address ?? null,
    size: mail.size,
    acknowledged: 0,
    updated_at: now,
  };
  // A row exists only when an earlier attempt failed with a retryable error: that row becomes the outcome.
  // A row with a committed outcome cannot exist here (the fetch loop checked), and if a racing process wrote
  // one meanwhile, the unique constraint makes this insert fail and the whole transaction roll back.
  const updated = await tx
    .updateTable('intake_log')
    .set((eb) => ({ ...values, attempts: eb('attempts', '+', 1) }))
    .where('mailbox_id', '=', mailboxId)
    .where('server_identity', '=', serverIdentity)
    .where('outcome', '=', 'error')
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) {
    await tx
      .insertInto('intake_log')
      .values({ ...values, mailbox_id: mailboxId, server_identity: serverIdentity, created_at: now })
      .execute();
  }
}

/** Records a mail that could not be taken in (its own transaction; the effect, if any, was rolled back). */
export async function recordMailError(
  store: Store,
  mailboxId: number,
  serverIdentity: string,
  info: {
    code: string;
    message: string;
    size?: number | undefined;
    mail?: Partial<ParsedMail> | undefined;
    rawSha256: string | null;
  },
): Promise<void> {
  const now = nowIso();
  const values = {
    outcome: 'error',
    error_code: info.code,
    reasons: JSON.stringify([info.message]),
    message_id: info.mail?.messageId ?? null,
    content_hash: info.mail?.contentHash ?? null,
    raw_sha256: info.rawSha256,
    subject: info.mail?.subject ?? null,
    from_address: info.mail?.from?.address ?? null,
    size: info.size ?? null,
    updated_at: now,
  };
  await withTransaction(store, async (tx) => {
    const updated = await tx
      .updateTable('intake_log')
      .set((eb) => ({ ...values, attempts: eb('attempts', '+', 1) }))
      .where('mailbox_id', '=', mailboxId)
      .where('server_identity', '=', serverIdentity)
      .where('outcome', '=', 'error')
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) {
      await tx
        .insertInto('intake_log')
        .values({ ...values, mailbox_id: mailboxId, server_identity: serverIdentity, created_at: now })
        .onConflict((oc) => oc.columns(['mailbox_id', 'server_identity']).doNothing())
        .execute();
    }
  });
}
