import { autoSubmitted, decideThread, mailFingerprint, threadCandidates } from '../mail/classify.js';
import { type MachineKind, type MachineVerdict, machineKind } from '../mail/machine.js';
import { checkReplyAddresses } from '../mail/reply-address.js';
import type { ParsedMail, ThreadDecision, ThreadFacts } from '../mail/types.js';
import { valueKey } from '../store/keys.js';
import type { Tx } from '../store/tx.js';
import type { IntakeMailbox } from './intake-mailbox.js';

/** A mail the batch has taken in so far, for the checks of the mails after it in the same batch. */
export interface Earlier {
  messageId: string | null;
  contentHash: string;
  fingerprint: string;
  requestId: number;
}

/** What a batch knows while it classifies its mails in order; grown as each one is taken in. */
export interface BatchMemory {
  /** Message-ID → request, in this portal: looked up once for the batch, then grown as mails are taken in. */
  knownIds: Map<string, number>;
  earlier: Earlier[];
  /** Requests created in this batch (a later mail of the batch may name one by its ##id##). */
  newRequests: Set<number>;
}

/** The classifier's answer with every reason an admin reads in the intake log. */
export interface Classified {
  decision: ThreadDecision;
  reasons: string[];
  /** Our own mail come back, a bounce, an auto-reply (mail/machine.ts), or kind null: a person's mail. */
  machine: MachineVerdict;
}

/**
 * The classify stage, inside the batch's transaction: the pure classifier (mail/classify.ts decideThread) fed
 * with what only the store knows — the request this very mail was taken in for already, the requests its
 * References name, whether the ##id## in its subject exists in this portal. In the transaction because those
 * look-ups must see the rows of the mails committed before it (PostgreSQL's advisory locks, SQLite's write lock).
 */
export async function classifyInBatch(
  tx: Tx,
  mailbox: IntakeMailbox,
  memory: BatchMemory,
  mail: ParsedMail,
): Promise<Classified> {
  const candidates = threadCandidates(mail);
  const notes: string[] = [];
  const ownMessageIdRequest = await sameMailBefore(tx, mailbox, memory, mail, notes);
  const byMessageId = new Map<string, number>();
  for (const id of candidates.headerIds) {
    const requestId = memory.knownIds.get(id);
    if (requestId !== undefined) byMessageId.set(id, requestId);
  }
  const subjectRequestExists = await subjectRequestIn(
    tx,
    mailbox,
    memory,
    candidates.subjectRequestId,
    notes,
  );
  const replyAddress = await replyAddressIn(tx, mailbox, memory, mail);
  const decision = decideThread(
    mail,
    { headerThreading: mailbox.headerThreading },
    { ownMessageIdRequest, byMessageId, subjectRequestExists, ...(replyAddress ? { replyAddress } : {}) },
  );
  const machine = machineKind(mail);
  // the machine's reasons first: for an ignored mail they are the decision
  const reasons =
    machine.kind === null
      ? [...notes, ...decision.reasons]
      : [
          ...machine.reasons.map((r) => `${MACHINE_LABEL[machine.kind as MachineKind]}: ${r}`),
          ...notes,
          ...decision.reasons,
        ];
  if (machine.kind === null) {
    // not a machine we act on; the weaker signals stay in the trace for whoever reads it
    const auto = autoSubmitted(mail);
    if (auto) reasons.push(`flagged ${auto.kind}: ${auto.reason}`);
  }
  // nothing silent: a body cut for display (mail/body-cut.ts) says so where the admin looks
  if (mail.truncatedReason) reasons.push(mail.truncatedReason);
  // and so does a choice the parser made on its own (a charset, an unpacked winmail.dat)
  if (mail.parseNotes) reasons.push(...mail.parseNotes);
  return { decision, reasons, machine };
}

/** How each kind opens its reason lines in the intake log. */
export const MACHINE_LABEL: Record<MachineKind, string> = {
  'own-loop': 'own mail came back',
  bounce: 'bounce',
  'auto-reply': 'auto-reply',
};

/**
 * A per-request reply address among the mail's recipients (To, Cc, and the Delivered-To / X-Original-To the
 * delivering server adds, which survive when a client rewrote To), checked: the signature, then the request in
 * this portal.
 */
async function replyAddressIn(
  tx: Tx,
  mailbox: IntakeMailbox,
  memory: BatchMemory,
  mail: ParsedMail,
): Promise<ThreadFacts['replyAddress']> {
  const keys = mailbox.replyAddresses;
  if (!keys || keys.keys.length === 0) return undefined;
  // every hop's Delivered-To / X-Original-To (mail/parse.ts keeps them all, joined by ", ")
  const delivered = [mail.headers['delivered-to'], mail.headers['x-original-to']]
    .filter((v): v is string => v !== undefined)
    .flatMap((v) => v.split(','))
    .map((v) => v.replace(/^[\s<]+|[\s>]+$/g, ''))
    .filter((v) => v !== '');
  const addresses = [...mail.to, ...mail.cc].map((a) => a.address).concat(delivered);
  const check = checkReplyAddresses(addresses, keys.own, mailbox.portalId, keys.keys);
  if (check.kind === 'none') return undefined;
  if (check.kind === 'invalid')
    return { kind: 'invalid', requestId: check.requestId, address: check.address };
  if (memory.newRequests.has(check.requestId))
    return { kind: 'valid', requestId: check.requestId, address: check.address };
  const r = await tx
    .selectFrom('requests')
    .select('id')
    .where('id', '=', check.requestId)
    .where('portal_id', '=', mailbox.portalId)
    .executeTakeFirst();
  return r
    ? { kind: 'valid', requestId: check.requestId, address: check.address }
    : {
        kind: 'invalid',
        requestId: check.requestId,
        address: check.address,
        why: 'this portal has no such request',
      };
}

/** Whether the request a subject names (`##id##`) exists in this portal (created earlier, or in this batch). */
async function subjectRequestIn(
  tx: Tx,
  mailbox: IntakeMailbox,
  memory: BatchMemory,
  requestId: number | null,
  notes: string[],
): Promise<boolean> {
  if (requestId === null) return false;
  if (memory.newRequests.has(requestId)) return true;
  const r = await tx
    .selectFrom('requests')
    .select('id')
    .where('id', '=', requestId)
    .where('portal_id', '=', mailbox.portalId)
    .executeTakeFirst();
  if (!r) notes.push(`subject names ##${requestId}## but this portal has no such request`);
  return r !== undefined;
}

/**
 * The request this very mail was taken in for already, if it was: the same mail sent to several of our
 * mailboxes (To: support, Cc: helpdesk), or seen again under a new server identity.
 */
async function sameMailBefore(
  tx: Tx,
  mailbox: IntakeMailbox,
  memory: BatchMemory,
  mail: ParsedMail,
  notes: string[],
): Promise<number | null> {
  if (!mail.messageId) return sameContentBefore(tx, mailbox, memory, mail, notes);
  const known = memory.knownIds.get(mail.messageId);
  if (known === undefined) return null;
  const fingerprint = mailFingerprint(mail);
  // Some mailers reuse Message-IDs for different mails (a monitoring script sending "disk full" again and
  // again); treating those as copies would silently drop a customer's mail. A copy delivered to two of our
  // mailboxes differs only in the headers servers add on the way, so its fingerprint (sender, subject,
  // date, bodies, attachments) matches an earlier copy's.
  if (memory.earlier.some((e) => e.messageId === mail.messageId && e.fingerprint === fingerprint))
    return known;
  const before = await tx
    .selectFrom('intake_log')
    .innerJoin('mailboxes', 'mailboxes.id', 'intake_log.mailbox_id')
    .select('intake_log.id')
    .where('mailboxes.portal_id', '=', mailbox.portalId)
    .where('intake_log.message_key', '=', valueKey(mail.messageId))
    .where('intake_log.fingerprint', '=', fingerprint)
    .where('intake_log.message_id', '=', mail.messageId)
    .where('intake_log.outcome', 'in', ['created', 'appended'])
    .executeTakeFirst();
  if (before) return known;
  notes.push(`Message-ID <${mail.messageId}> was used before by a different mail; not treated as a copy`);
  return null;
}

/**
 * Without a Message-ID, the content hash is the only way to recognise a mail that came back under a new server
 * identity (UIDVALIDITY reset, a move and back). Only within the same mailbox: copies delivered to two
 * mailboxes differ in their Received headers anyway.
 */
async function sameContentBefore(
  tx: Tx,
  mailbox: IntakeMailbox,
  memory: BatchMemory,
  mail: ParsedMail,
  notes: string[],
): Promise<number | null> {
  const inBatch = memory.earlier.find((e) => e.messageId === null && e.contentHash === mail.contentHash);
  if (inBatch) {
    notes.push('same content as an earlier mail of this round');
    return inBatch.requestId;
  }
  const same = await tx
    .selectFrom('intake_log')
    .select(['request_id', 'server_identity'])
    .where('mailbox_id', '=', mailbox.id)
    .where('content_hash', '=', mail.contentHash)
    .where('outcome', 'in', ['created', 'appended'])
    .executeTakeFirst();
  if (same?.request_id == null) return null;
  notes.push(`same content as ${same.server_identity}, taken in before`);
  return same.request_id;
}
