import { type Insertable, sql } from 'kysely';
import { MailintakeError, toMailintakeError } from '../errors.js';
import { autoSubmitted, decideThread, threadCandidates } from '../pipeline/classify.js';
import type { ParsedMail, ThreadDecision, ThreadFacts } from '../pipeline/types.js';
import type { Outcome } from '../services/views.js';
import type { Store } from '../store/db.js';
import { nowIso } from '../store/db.js';
import type { IntakeLogTable } from '../store/schema.js';
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

/** One fetched mail, ready to be committed: parsed, or failed with a coded error. */
export interface BatchItem {
  serverIdentity: string;
  /** An earlier attempt left an `error` row for this identity; this attempt replaces it. */
  retry: boolean;
  rawSha256: string | null;
  size: number | undefined;
  parsed: ParsedMail | null;
  error: MailintakeError | null;
}

export type ItemResult = CommitResult | { outcome: 'error'; error: MailintakeError };

/**
 * Commits a batch of fetched mails in ONE transaction, each mail inside its own savepoint: a mail's request
 * or conversation, attachments, Message-ID and intake-log row commit together or not at all, and a mail that
 * fails to store is rolled back alone and recorded as an error row in the same transaction.
 *
 * This is the heart of "never duplicated": the log row is unique per (mailbox, server identity), so a mail
 * seen again after a crash cannot commit a second effect; and the server is only acknowledged after this
 * returns. One transaction per batch rather than per mail saves a durable commit (an fsync on SQLite, a round
 * trip on PostgreSQL) per mail; the guarantee is the same, since nothing is acknowledged before the commit.
 */
export async function commitBatch(
  store: Store,
  mailbox: IntakeMailbox,
  items: BatchItem[],
): Promise<ItemResult[]> {
  return withTransaction(store, async (tx) => {
    const results: ItemResult[] = [];
    for (const item of items) {
      if (!item.parsed) {
        const error = item.error ?? new MailintakeError('INTERNAL', 'a mail without a parse result');
        await writeErrorRow(tx, mailbox.id, item, error);
        results.push({ outcome: 'error', error });
        continue;
      }
      await sql`savepoint mail`.execute(tx);
      try {
        const result = await commitOne(tx, mailbox, item.parsed);
        await writeLog(tx, mailbox.id, item, item.parsed, result);
        await sql`release savepoint mail`.execute(tx);
        results.push(result);
      } catch (err) {
        await sql`rollback to savepoint mail`.execute(tx);
        await sql`release savepoint mail`.execute(tx);
        const error = toMailintakeError(err, 'STORE_FAILED');
        await writeErrorRow(tx, mailbox.id, item, error, item.parsed);
        results.push({ outcome: 'error', error });
      }
    }
    return results;
  });
}

async function commitOne(tx: Tx, mailbox: IntakeMailbox, mail: ParsedMail): Promise<CommitResult> {
  const candidates = threadCandidates(mail);
  const facts = await lookupFacts(tx, mailbox, mail, candidates.headerIds, candidates.subjectRequestId);
  const decision = decideThread(mail, { headerThreading: mailbox.headerThreading }, facts.thread);
  const reasons = [...facts.notes, ...decision.reasons];
  const auto = autoSubmitted(mail);
  if (auto) reasons.push(`flagged ${auto.kind}: ${auto.reason}`);
  return applyDecision(tx, mailbox, mail, decision, reasons);
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
  // One round trip for the mail's own Message-ID and the ids it answers.
  const ids = [...new Set([...(mail.messageId ? [mail.messageId] : []), ...headerIds.slice(0, 200)])];
  const knownIds = new Map<string, number>();
  if (ids.length > 0) {
    const rows = await tx
      .selectFrom('message_ids')
      .select(['message_id', 'request_id'])
      .where('portal_id', '=', mailbox.portalId)
      .where('message_id', 'in', ids)
      .execute();
    for (const r of rows) knownIds.set(r.message_id, r.request_id);
  }
  const known = mail.messageId ? knownIds.get(mail.messageId) : undefined;
  if (mail.messageId && known !== undefined) {
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
      ownMessageIdRequest = known;
    } else {
      notes.push(`Message-ID <${mail.messageId}> was used before by a different mail; not treated as a copy`);
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
  for (const id of headerIds) {
    const requestId = knownIds.get(id);
    if (requestId !== undefined) byMessageId.set(id, requestId);
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
  item: BatchItem,
  mail: ParsedMail,
  result: CommitResult,
): Promise<void> {
  await upsertLog(tx, mailboxId, item, {
    message_id: mail.messageId,
    content_hash: mail.contentHash,
    raw_sha256: item.rawSha256,
    outcome: result.outcome as Outcome,
    request_id: result.requestId,
    conversation_id: result.outcome === 'appended' ? result.conversationId : null,
    error_code: null,
    reasons: JSON.stringify(result.reasons),
    subject: mail.subject,
    from_address: mail.from?.address ?? null,
    size: mail.size,
  });
}

async function writeErrorRow(
  tx: Tx,
  mailboxId: number,
  item: BatchItem,
  error: MailintakeError,
  mail?: ParsedMail,
): Promise<void> {
  await upsertLog(tx, mailboxId, item, {
    message_id: mail?.messageId ?? null,
    content_hash: mail?.contentHash ?? null,
    raw_sha256: item.rawSha256,
    outcome: 'error',
    request_id: null,
    conversation_id: null,
    error_code: error.code,
    reasons: JSON.stringify([error.message]),
    subject: mail?.subject ?? null,
    from_address: mail?.from?.address ?? null,
    size: mail?.size ?? item.size ?? null,
  });
}

type LogValues = Omit<
  Insertable<IntakeLogTable>,
  'mailbox_id' | 'server_identity' | 'created_at' | 'updated_at' | 'attempts' | 'acknowledged'
>;

/**
 * One statement per mail: the fetch round knows whether an earlier attempt left an `error` row (then this
 * attempt's outcome replaces it) or not (then a new row). A committed outcome is never overwritten: the
 * UPDATE only matches error rows, and a racing second INSERT breaks the unique constraint and rolls back.
 */
async function upsertLog(tx: Tx, mailboxId: number, item: BatchItem, values: LogValues): Promise<void> {
  const now = nowIso();
  if (item.retry) {
    const updated = await tx
      .updateTable('intake_log')
      .set((eb) => ({ ...values, acknowledged: 0, updated_at: now, attempts: eb('attempts', '+', 1) }))
      .where('mailbox_id', '=', mailboxId)
      .where('server_identity', '=', item.serverIdentity)
      .where('outcome', '=', 'error')
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 1) return;
  }
  const insert = tx.insertInto('intake_log').values({
    ...values,
    mailbox_id: mailboxId,
    server_identity: item.serverIdentity,
    acknowledged: 0,
    created_at: now,
    updated_at: now,
  });
  // An error row never displaces an existing row (it would hide a committed outcome); an outcome row must
  // conflict loudly instead, so that its savepoint rolls the effect back.
  await (values.outcome === 'error'
    ? insert.onConflict((oc) => oc.columns(['mailbox_id', 'server_identity']).doNothing())
    : insert
  ).execute();
}
