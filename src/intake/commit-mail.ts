import { type Insertable, sql } from 'kysely';
import { MailintakeError } from '../kernel/errors.js';
import { failpoint } from '../kernel/failpoints.js';
import { INSERT_ROWS, SQL_IN_LIST_MAX } from '../kernel/limits.js';
import {
  DEFAULT_ATTACHMENT_POLICY,
  type DroppedPart,
  dropReason,
  isInlineImage,
} from '../mail/attachment-checks.js';
import { autoSubmitted, mailFingerprint, threadCandidates } from '../mail/classify.js';
import { bounceFailure } from '../mail/dsn-status.js';
import type { MachineKind } from '../mail/machine.js';
import { ccParticipants, decideRequester, type RequesterDecision } from '../mail/requester.js';
import type { Address, ParsedMail, StoredPart, ThreadDecision } from '../mail/types.js';
import {
  ACKNOWLEDGEMENT_EVENT,
  acknowledgementRefusal,
  acknowledgementsSince,
  enqueueAcknowledgement,
} from '../notify/acknowledgement.js';
import { dropNotices } from '../notify/drop-notice.js';
import type { Notice, Notifier } from '../notify/notifier.js';
import type { RawLocation } from '../store/blobs/raw-packs.js';
import { type Engine, nowIso, type Store, storeUnavailable } from '../store/db.js';
import { storableText, valueKey } from '../store/keys.js';
import type {
  AttachmentTable,
  ConversationTable,
  DroppedAttachmentTable,
  IntakeLogTable,
  MessageIdTable,
  RequestParticipantTable,
  RequestTable,
} from '../store/schema.js';
import { htmlSearchText, requesterNorm } from '../store/search-text.js';
import { type SystemLogInput, systemLog } from '../store/system-log.js';
import { type Tx, withTransaction } from '../store/tx.js';
import { type BatchMemory, classifyInBatch } from './classify-in-batch.js';
import type { IntakeMailbox } from './intake-mailbox.js';
import type { CommittedOutcome } from './outcome.js';
import { loadPortalFacts, type PortalFacts } from './portal-facts.js';

export type { IntakeMailbox } from './intake-mailbox.js';

/** A mail's outcome once its effect is decided (the error outcome is recorded as a row of its own). */
type TakenIn = Exclude<CommittedOutcome, { outcome: 'error' }>;

/** One fetched mail, ready to be committed: parsed, or failed with a coded error. */
export interface BatchItem {
  serverIdentity: string;
  /** An earlier attempt left an `error` row for this identity; this attempt replaces it. */
  retry: boolean;
  /** sha256 of the raw source; for a large mail also its blob-store key. */
  rawSha256: string | null;
  /** Where the raw source of a batched mail is, in the batch's raw pack. */
  rawPacked: RawLocation | null;
  size: number | undefined;
  parsed: ParsedMail | null;
  error: MailintakeError | null;
  /**
   * The attachment checks' verdict for `parsed.attachments` (run before the commit, see prepare.ts):
   * only `kept` become attachment rows; `dropped` are recorded with their code. Absent: all are kept.
   */
  checked?: { kept: StoredPart[]; dropped: DroppedPart[] };
  /** The header block of the mail's attached message/rfc822 part, if any (forwarded-head.ts; mail/requester.ts). */
  forwardedHead?: string | null;
}

/**
 * Commits a batch of fetched mails in ONE transaction: every mail's request or conversation, attachments,
 * Message-ID and intake-log row, and the error rows of mails that failed before this point.
 *
 * This is the heart of "never duplicated": the log row is unique per (mailbox, server identity), so a mail
 * seen again after a crash cannot commit a second effect; and the server is only acknowledged after this
 * returns. One transaction per batch, with the lookups and the row inserts of the batch gathered into a few
 * statements, instead of a transaction and six statements per mail: each statement is a round trip on
 * PostgreSQL and each commit an fsync on SQLite. The guarantee is the same, since nothing is acknowledged
 * before the commit.
 *
 * If the batch fails (one mail the database refuses), it is rolled back whole and committed again mail by
 * mail, so that only the bad mail ends as an error: one bad mail never blocks the mailbox.
 */
export async function commitBatch(
  store: Store,
  mailbox: IntakeMailbox,
  items: BatchItem[],
  /** Records the drop notification mails in the batch's transaction (the portal's switches decide); kicked after commit. */
  notifier?: Notifier,
): Promise<CommittedOutcome[]> {
  for (const item of items) if (item.parsed) item.parsed = storableMail(item.parsed);
  try {
    let noticed = false;
    const results = await withTransaction(store, async (tx) => {
      const batch = new BatchCommit(tx, mailbox, store.engine, notifier);
      const out = await batch.run(items);
      failpoint('before-commit');
      noticed = batch.noticed;
      return out;
    });
    if (noticed) notifier?.kick();
    return results;
  } catch (err) {
    if (items.length > 1) {
      const results: CommittedOutcome[] = [];
      for (const item of items) results.push(...(await commitBatch(store, mailbox, [item], notifier)));
      return results;
    }
    return [await recordFailure(store, mailbox, items[0]!, databaseError(err, store))];
  }
}

/**
 * The database's refusal as an admin can act on it: a database that is away, full or failing is coded by the
 * store's one mapper (store/db.ts storeUnavailable: "the disk under … is full"); a statement it refused stays
 * in the database's own words.
 */
export function databaseError(err: unknown, store: Store, what = 'the mail'): MailintakeError {
  const coded = storeUnavailable(err, store.location ?? `the ${store.engine} database`);
  if (coded) return coded;
  if (err instanceof MailintakeError) return err;
  // Not the database being away: it refused this statement (a value it cannot take). Retried next round, and
  // recordFailure falls back to a row without the mail's values.
  const text = err instanceof Error ? err.message : String(err);
  return new MailintakeError('STORE_FAILED', text, { cause: err, details: { what } });
}

/**
 * A lone mail the database refused: recorded as an error row in a transaction of its own. When even that row
 * is refused (the value that broke the commit is in the error row too: the subject, the sender, the Message-ID),
 * a minimal row is written instead, with nothing of the mail but its server identity: without any row the
 * mail would be tried again in every round and stop the mailbox there, silently.
 */
export async function recordFailure(
  store: Store,
  mailbox: IntakeMailbox,
  item: BatchItem,
  error: MailintakeError,
): Promise<CommittedOutcome> {
  try {
    return await recordFullFailure(store, mailbox, item, error);
  } catch (err) {
    const refused = databaseError(err, store, 'the error row');
    const minimal = new MailintakeError(
      error.code,
      `${short(error.message)} (the full error row was refused too: ${short(refused.message)}; the mail's details are in its raw copy on the server)`,
      { cause: error },
    );
    try {
      await withTransaction(store, async (tx) => {
        const batch = new BatchCommit(tx, mailbox, store.engine);
        batch.logError({ ...item, rawSha256: null, rawPacked: null }, minimal);
        await batch.flushLog();
      });
    } catch (lastErr) {
      // Not even a row without the mail's values: the database itself refuses writes (a full disk). The round
      // ends here with that, coded and naming the database; the mail stays on the server for the next round.
      throw databaseError(lastErr, store, 'a minimal error row (after the mail and its full error row)');
    }
    return { outcome: 'error', identity: item.serverIdentity, error: minimal };
  }
}

/** A reason short enough for any row, without what a database may refuse. */
function short(text: string): string {
  const clean = storableText(text);
  return clean.length > 300 ? `${clean.slice(0, 300)}…` : clean;
}

async function recordFullFailure(
  store: Store,
  mailbox: IntakeMailbox,
  item: BatchItem,
  error: MailintakeError,
): Promise<CommittedOutcome> {
  return withTransaction(store, async (tx) => {
    // A racing worker that committed this very mail meanwhile makes our insert break the unique constraint:
    // that is the guarantee working, not an error of the mail.
    const committed = await tx
      .selectFrom('intake_log')
      .select(['outcome', 'request_id'])
      .where('mailbox_id', '=', mailbox.id)
      .where('server_identity', '=', item.serverIdentity)
      .where('outcome', '!=', 'error')
      .executeTakeFirst();
    if (committed) {
      return {
        outcome: 'ignored',
        identity: item.serverIdentity,
        requestId: committed.request_id,
        reasons: ['taken in meanwhile by another worker'],
      };
    }
    const batch = new BatchCommit(tx, mailbox, store.engine);
    batch.logError(item, error, item.parsed ?? undefined);
    await batch.flushLog();
    return { outcome: 'error', identity: item.serverIdentity, error };
  });
}

/**
 * The mail with every text a database column may refuse made storable (see storableText). Done once, before
 * the lookups, so that the Message-ID looked up is the one stored.
 */
function storableMail(mail: ParsedMail): ParsedMail {
  const addr = (a: Address) => ({ address: storableText(a.address), name: storableText(a.name) });
  return {
    ...mail,
    messageId: storableText(mail.messageId),
    inReplyTo: mail.inReplyTo.map(storableText),
    references: mail.references.map(storableText),
    subject: storableText(mail.subject),
    from: mail.from && addr(mail.from),
    to: mail.to.map(addr),
    cc: mail.cc.map(addr),
    replyTo: mail.replyTo.map(addr),
    text: storableText(mail.text),
    html: storableText(mail.html),
    attachments: mail.attachments.map((a) => ({
      ...a,
      filename: storableText(a.filename),
      contentType: storableText(a.contentType),
      contentId: storableText(a.contentId),
    })),
    headers: Object.fromEntries(Object.entries(mail.headers).map(([k, v]) => [k, storableText(v)])),
  };
}

function rawColumns(item: BatchItem) {
  return {
    raw_sha256: item.rawSha256,
    raw_pack: item.rawPacked?.pack ?? null,
    raw_offset: item.rawPacked?.offset ?? null,
    raw_length: item.rawPacked?.length ?? null,
  };
}

type LogValues = Omit<
  Insertable<IntakeLogTable>,
  'mailbox_id' | 'created_at' | 'updated_at' | 'acknowledged'
>;

/** One batch inside one transaction: lookups up front, row inserts gathered, per-mail inserts only where ids are needed. */
class BatchCommit {
  private readonly now = nowIso();
  /** What the classify stage reads of the mails before (classify-in-batch.ts BatchMemory). */
  private readonly memory: BatchMemory = { knownIds: new Map(), earlier: [], newRequests: new Set() };
  private readonly logRows: (LogValues & { retry: boolean })[] = [];
  private readonly attachmentRows: Insertable<AttachmentTable>[] = [];
  private readonly messageIdRows: Insertable<MessageIdTable>[] = [];
  private readonly droppedRows: Insertable<DroppedAttachmentTable>[] = [];
  private readonly systemLogEntries: SystemLogInput[] = [];
  private readonly touchedRequests = new Set<number>();
  /**
   * PostgreSQL: ids drawn from the tables' sequences up front, so that the batch's requests and conversations
   * go in as two multi-row INSERTs instead of a round trip each. SQLite runs in-process (no round trips):
   * there each row is inserted as it is decided.
   */
  private ids: { requests: number[]; conversations: number[] } | null = null;
  private readonly requestRows: Insertable<RequestTable>[] = [];
  private readonly conversationRows: Insertable<ConversationTable>[] = [];

  /** The portal's mail settings, our own addresses, which senders are users (portal-facts.ts); read in run(). */
  private portal: PortalFacts | null = null;
  /** Each mail's requester (mail/requester.ts), decided before the locks: the per-sender lock needs it. */
  private readonly requesters = new Map<BatchItem, RequesterDecision>();
  /** Per sender key: requests counted in the rate-limit window (read once, then counted up in the batch). */
  private readonly requestCounts = new Map<string, number>();
  /** Per sender key: acknowledgements of the last hour (read once, then counted up in the batch). */
  private readonly ackCounts = new Map<string, number>();
  /** New requests' requester addresses in this batch (a later conversation's CC must not re-add them). */
  private readonly batchRequesters = new Map<number, string | null>();
  private readonly participantRows: Insertable<RequestParticipantTable>[] = [];
  private readonly acks: {
    requestId: number;
    requester: Address;
    subject: string;
    messageId: string | null;
  }[] = [];

  /** Drop notification mails of the batch's mails, recorded with the batch's rows (see flushRows). */
  private readonly notices: Notice[] = [];
  /** True once notices were recorded: the caller wakes the outbox after the commit. */
  noticed = false;

  constructor(
    private readonly tx: Tx,
    private readonly mailbox: IntakeMailbox,
    private readonly engine: Engine = 'sqlite',
    private readonly notifier?: Notifier,
  ) {}

  async run(items: BatchItem[]): Promise<CommittedOutcome[]> {
    const senders = items.flatMap((i) =>
      i.parsed && !i.error && i.parsed.from ? [i.parsed.from.address.toLowerCase()] : [],
    );
    this.portal = await loadPortalFacts(this.tx, this.mailbox.portalId, senders);
    for (const item of items) {
      if (!item.parsed || item.error) continue;
      const from = item.parsed.from?.address.toLowerCase();
      this.requesters.set(
        item,
        decideRequester(item.parsed, {
          formSenders: this.portal.settings.formSenders,
          fromIsUser: from !== undefined && this.portal.users.has(from),
          forwardedHead: item.forwardedHead ?? null,
        }),
      );
    }
    await this.lockIdentities(items);
    await this.loadSenderCounts();
    await this.loadKnownIds(items);
    const parsed = items.filter((i) => i.parsed && !i.error).length;
    if (this.engine === 'postgres' && parsed > 1) {
      const draw = async (table: 'requests' | 'conversations') =>
        (
          await sql<{
            id: number;
          }>`select nextval(pg_get_serial_sequence(${table}, 'id'))::int as id from generate_series(1, ${parsed})`.execute(
            this.tx,
          )
        ).rows
          .map((r) => r.id)
          .reverse();
      this.ids = { requests: await draw('requests'), conversations: await draw('conversations') };
    }
    const results: CommittedOutcome[] = [];
    for (const item of items) {
      if (!item.parsed || item.error) {
        const error = item.error ?? new MailintakeError('INTERNAL', 'a mail without a parse result');
        // A mail parsed and then refused by the store (a full disk) keeps its sender and subject in the row.
        this.logError(item, error, item.parsed ?? undefined);
        results.push({ outcome: 'error', identity: item.serverIdentity, error });
        continue;
      }
      const result = await this.takeIn(item.parsed, item);
      if (result.outcome === 'error') this.logError(item, result.error, item.parsed);
      else this.logOutcome(item, item.parsed, result);
      results.push(result);
    }
    await this.flushRows();
    return results;
  }

  /**
   * PostgreSQL: the same mail delivered to two of our mailboxes may be committed by two rounds at once. Under
   * READ COMMITTED both would look its Message-ID up before either committed, both would create a request,
   * and the second Message-ID row would be skipped on conflict: two requests for one mail. A transaction-scoped
   * advisory lock per (portal, Message-ID), taken before the lookups, makes the second round wait for the
   * first one's commit; its lookups (new statements, new snapshots) then see the first one's rows, and the
   * copy is recognised as such. Locks are taken in one statement in sorted order, so two batches sharing
   * several Message-IDs cannot deadlock on them. Mails without a Message-ID are only ever recognised within
   * one mailbox (by content hash), which the mailbox lease serialises already.
   * The per-sender limit needs the same: two mailboxes racing with mails of one sender would both count the
   * requests before either committed and both let the last one in. So a lock per (portal, requester) is taken
   * in the same statement, and the counts read after it see every committed request of that sender.
   * SQLite needs none of this: `BEGIN IMMEDIATE` (store/tx.ts) takes the write lock before the lookups.
   */
  private async lockIdentities(items: BatchItem[]): Promise<void> {
    if (this.engine !== 'postgres') return;
    const keys = new Set<bigint>();
    const add = (text: string) => {
      const key = valueKey(text);
      keys.add(BigInt.asIntN(64, BigInt(`0x${key.slice(0, 16)}`)));
    };
    for (const item of items) {
      const { parsed, error } = item;
      if (!parsed || error) continue;
      if (parsed.messageId) add(`${this.mailbox.portalId}\n${parsed.messageId}`);
      const requester = this.requesters.get(item)?.requester;
      if (requester) add(`sender\n${this.mailbox.portalId}\n${requester.address.toLowerCase()}`);
    }
    if (keys.size === 0) return;
    const sorted = [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(String);
    await sql`select count(pg_advisory_xact_lock(k)) from unnest(${sorted}::bigint[]) as k`.execute(this.tx);
  }

  /**
   * The per-sender counts of the batch's requesters, in one statement per kind after the locks (instead of one
   * per new request: a batch of a hundred mails from a hundred senders is the usual case): requests in the
   * rate-limit window, and acknowledgements of the last hour when the portal sends them. Senders with none
   * count 0; overLimit and acknowledge count up from here as the batch goes.
   */
  private async loadSenderCounts(): Promise<void> {
    const { rateLimit, acknowledgement } = this.portal!.settings;
    const keys = new Set<string>();
    for (const d of this.requesters.values()) {
      const address = d.requester?.address.toLowerCase();
      if (address && !this.portal!.own.has(address)) keys.add(valueKey(address));
    }
    const all = [...keys];
    const since = (minutes: number) => new Date(Date.parse(this.now) - minutes * 60_000).toISOString();
    for (let i = 0; i < all.length; i += SQL_IN_LIST_MAX) {
      const slice = all.slice(i, i + SQL_IN_LIST_MAX);
      if (rateLimit.maxRequests > 0) {
        for (const k of slice) this.requestCounts.set(k, 0);
        const rows = await this.tx
          .selectFrom('requests')
          .select(['requester_key', (eb) => eb.fn.countAll<number | string>().as('n')])
          .where('portal_id', '=', this.mailbox.portalId)
          .where('requester_key', 'in', slice)
          .where('created_at', '>=', since(rateLimit.windowMinutes))
          .groupBy('requester_key')
          .execute();
        for (const r of rows) if (r.requester_key) this.requestCounts.set(r.requester_key, Number(r.n));
      }
      if (acknowledgement.enabled) {
        for (const k of slice) this.ackCounts.set(k, 0);
        const rows = await this.tx
          .selectFrom('acknowledgements')
          .select(['sender_key', (eb) => eb.fn.countAll<number | string>().as('n')])
          .where('portal_id', '=', this.mailbox.portalId)
          .where('sender_key', 'in', slice)
          .where('created_at', '>=', since(60))
          .groupBy('sender_key')
          .execute();
        for (const r of rows) this.ackCounts.set(r.sender_key, Number(r.n));
      }
    }
  }

  private async loadKnownIds(items: BatchItem[]): Promise<void> {
    const ids = new Set<string>();
    for (const { parsed, error } of items) {
      if (!parsed || error) continue;
      if (parsed.messageId) ids.add(parsed.messageId);
      for (const id of threadCandidates(parsed).headerIds.slice(0, 200)) ids.add(id);
    }
    const byKey = new Map([...ids].map((id) => [valueKey(id), id]));
    const all = [...byKey.keys()];
    for (let i = 0; i < all.length; i += SQL_IN_LIST_MAX) {
      const rows = await this.tx
        .selectFrom('message_ids')
        .select(['message_key', 'message_id', 'request_id'])
        .where('portal_id', '=', this.mailbox.portalId)
        .where('message_key', 'in', all.slice(i, i + SQL_IN_LIST_MAX))
        .execute();
      // The key found the row; the full value decides (a sha256 collision must not thread a mail wrongly).
      for (const r of rows) {
        if (byKey.get(r.message_key) === r.message_id) this.memory.knownIds.set(r.message_id, r.request_id);
      }
    }
  }

  /** Classify (classify-in-batch.ts), then apply: the mail's rows, and what later mails of the batch must know. */
  private async takeIn(mail: ParsedMail, item: BatchItem): Promise<CommittedOutcome> {
    const { decision, reasons, machine } = await classifyInBatch(this.tx, this.mailbox, this.memory, mail);
    if (machine.kind === 'bounce' && machine.bouncedMessageId) {
      const linked = await this.linkBounce(mail, machine.bouncedMessageId, reasons);
      if (linked !== null)
        return { outcome: 'ignored', identity: item.serverIdentity, requestId: linked, reasons };
    }
    const requester = this.requesters.get(item) ?? { requester: null, via: null, reasons: [] };
    if (decision.kind === 'new-request' && machine.kind === null) {
      const limited = await this.overLimit(requester.requester, [...reasons, ...requester.reasons]);
      if (limited) return { outcome: 'error', identity: item.serverIdentity, error: limited };
    }
    const result = await this.apply(mail, decision, reasons, item, machine.kind, requester);
    if (result.outcome !== 'ignored') {
      this.memory.earlier.push({
        messageId: mail.messageId,
        contentHash: mail.contentHash,
        fingerprint: mailFingerprint(mail),
        requestId: result.requestId,
      });
    }
    return result;
  }

  /**
   * A bounce of a reply we sent (issue 13 §4): its outbox row, found by the reported Message-ID (by key, then the
   * full value), is marked failed with the DSN's Status and Diagnostic-Code in this transaction, and the bounce
   * stays ignored but points at the request. The request of the reply, or null when we sent no such mail.
   */
  private async linkBounce(mail: ParsedMail, reported: string, reasons: string[]): Promise<number | null> {
    const row = await this.tx
      .selectFrom('mail_outbox')
      .innerJoin('requests', 'requests.id', 'mail_outbox.request_id')
      .select(['mail_outbox.id', 'mail_outbox.message_id', 'mail_outbox.request_id', 'mail_outbox.event'])
      .where('mail_outbox.message_key', '=', valueKey(reported))
      .where('requests.portal_id', '=', this.mailbox.portalId)
      .executeTakeFirst();
    if (!row || row.message_id !== reported || row.request_id === null) return null;
    const failure = bounceFailure(mail);
    await this.tx
      .updateTable('mail_outbox')
      .set({ bounced_at: this.now, failure_status: failure.status, failure_reason: failure.reason })
      .where('id', '=', row.id)
      .execute();
    reasons.push(
      `bounce of our ${row.event === ACKNOWLEDGEMENT_EVENT ? 'acknowledgement' : 'reply'} on request #${row.request_id} (outbox ${row.id}): ${failure.status ?? 'no status'} ${failure.reason}`,
    );
    return row.request_id;
  }

  /**
   * The classifier's answer (mail/classify.ts ThreadDecision) made into the mail's outcome: the one place a
   * decision becomes created, appended or ignored, with the rows that go with it.
   */
  private async apply(
    mail: ParsedMail,
    decision: ThreadDecision,
    reasons: string[],
    item: BatchItem,
    machine: MachineKind | null,
    requester: RequesterDecision,
  ): Promise<TakenIn> {
    const identity = item.serverIdentity;
    if (decision.kind === 'duplicate')
      return { outcome: 'ignored', identity, requestId: decision.requestId, reasons };
    // A machine's mail never creates a request (and so nothing answers it): it is ignored with its raw kept
    // and its reasons logged; only an auto-reply that threads to a request is kept there, marked automatic.
    if (machine === 'own-loop' || machine === 'bounce')
      return { outcome: 'ignored', identity, requestId: null, reasons };
    if (machine === 'auto-reply' && decision.kind !== 'conversation')
      return { outcome: 'ignored', identity, requestId: null, reasons };
    const { requestId, conversationId } =
      decision.kind === 'new-request'
        ? { requestId: await this.insertRequest(mail, requester.requester), conversationId: null }
        : {
            requestId: decision.requestId,
            conversationId: await this.insertConversation(mail, decision.requestId, machine === 'auto-reply'),
          };
    if (conversationId === null) {
      reasons.push(...requester.reasons);
      await this.acknowledge(mail, requestId, requester.requester, machine, reasons);
    }
    // an auto-reply's CC are not people joining the conversation
    if (machine === null) await this.addParticipants(mail, requestId, conversationId, requester, reasons);
    this.recordParts(mail, item, requestId, conversationId);
    const dropped = item.checked?.dropped ?? [];
    this.recordDrops(dropped, identity, requestId, conversationId, reasons);
    this.noticeDrops(mail, dropped, requestId, conversationId);
    return conversationId === null
      ? { outcome: 'created', identity, requestId, reasons, dropped }
      : { outcome: 'appended', identity, requestId, conversationId, reasons, dropped };
  }

  /** The columns a request and a conversation share. */
  private commonColumns(mail: ParsedMail) {
    return {
      mailbox_id: this.mailbox.id,
      to_addresses: JSON.stringify(mail.to),
      cc_addresses: JSON.stringify(mail.cc),
      subject: mail.subject,
      message_id: mail.messageId,
      text_body: mail.text,
      html_body: mail.html,
      // the search's text of an HTML-only body (its triggers cannot turn HTML into text)
      html_text: htmlSearchText(mail.text, mail.html),
      mail_date: mail.date,
      created_at: this.now,
    };
  }

  /** A new request: inserted now (SQLite), or with an id drawn up front and inserted with the batch (PostgreSQL). */
  private async insertRequest(mail: ParsedMail, requester: Address | null): Promise<number> {
    const address = requester?.address.toLowerCase() ?? null;
    const row = {
      ...this.commonColumns(mail),
      portal_id: this.mailbox.portalId,
      requester_address: address,
      requester_name: requester?.name || null,
      requester_norm: requesterNorm(address),
      requester_key: address === null ? null : valueKey(address),
      status: 'open',
      updated_at: this.now,
    };
    let requestId = this.ids?.requests.pop();
    if (requestId === undefined) {
      requestId = (await this.tx.insertInto('requests').values(row).returning('id').executeTakeFirstOrThrow())
        .id;
    } else {
      this.requestRows.push({ ...row, id: requestId });
    }
    this.memory.newRequests.add(requestId);
    this.batchRequesters.set(requestId, address);
    if (row.requester_key !== null && this.requestCounts.has(row.requester_key)) {
      this.requestCounts.set(row.requester_key, this.requestCounts.get(row.requester_key)! + 1);
    }
    return requestId;
  }

  /**
   * The per-sender limit (the portal's mailSettings.rateLimit): a sender who opened maxRequests requests in
   * the window gets no more; the mail becomes RATE_LIMITED, which the error route takes (never silently, and
   * its raw copy is kept). Conversations are not limited (this is only asked for a new request), nor are our
   * own addresses, nor a mail without a requester address (there is no sender to count). Counted after the
   * per-sender lock (lockIdentities), so two mailboxes racing cannot both let the last one in.
   */
  private async overLimit(requester: Address | null, reasons: string[]): Promise<MailintakeError | null> {
    const { maxRequests, windowMinutes } = this.portal!.settings.rateLimit;
    if (maxRequests === 0 || requester === null) return null;
    const address = requester.address.toLowerCase();
    if (this.portal!.own.has(address)) return null;
    const key = valueKey(address);
    let count = this.requestCounts.get(key);
    if (count === undefined) {
      const since = new Date(Date.parse(this.now) - windowMinutes * 60_000).toISOString();
      const row = await this.tx
        .selectFrom('requests')
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('portal_id', '=', this.mailbox.portalId)
        .where('requester_key', '=', key)
        .where('created_at', '>=', since)
        .executeTakeFirstOrThrow();
      count = Number(row.n);
      this.requestCounts.set(key, count);
    }
    if (count < maxRequests) return null;
    return new MailintakeError(
      'RATE_LIMITED',
      `${address} opened ${count} new requests in this portal within ${windowMinutes} minutes (the limit is ${maxRequests}); this mail opens none and goes to the error route${reasons.length > 0 ? ` (${reasons.join('; ')})` : ''}`,
      { details: { sender: address, count, maxRequests, windowMinutes } },
    );
  }

  /**
   * The acknowledgement of a new request (notify/acknowledgement.ts): queued with the batch's rows when the
   * portal has it on and nothing forbids it; the decision, either way, is a reason line in the intake log.
   */
  private async acknowledge(
    mail: ParsedMail,
    requestId: number,
    requester: Address | null,
    machine: MachineKind | null,
    reasons: string[],
  ): Promise<void> {
    const ack = this.portal!.settings.acknowledgement;
    if (!ack.enabled) return;
    const flagged = autoSubmitted(mail);
    const refusal = acknowledgementRefusal(
      mail,
      requester,
      machine,
      this.portal!.own,
      flagged ? `${flagged.kind}: ${flagged.reason}` : null,
    );
    if (refusal !== null || requester === null) {
      reasons.push(`no acknowledgement: ${refusal ?? 'no requester'}`);
      return;
    }
    const address = requester.address.toLowerCase();
    const key = valueKey(address);
    let count = this.ackCounts.get(key);
    if (count === undefined) {
      const since = new Date(Date.parse(this.now) - 60 * 60_000).toISOString();
      count = await acknowledgementsSince(this.tx, this.mailbox.portalId, key, since);
    }
    if (count >= ack.perSenderPerHour) {
      this.ackCounts.set(key, count);
      reasons.push(
        `no acknowledgement: ${address} had ${count} in the last hour (at most ${ack.perSenderPerHour})`,
      );
      return;
    }
    this.ackCounts.set(key, count + 1);
    this.acks.push({
      requestId,
      requester: { ...requester, address },
      subject: mail.subject,
      messageId: mail.messageId,
    });
    reasons.push(`acknowledgement queued to ${address}`);
  }

  /**
   * The mail's CC'd people become participants of the request (the portal's ccParticipants switch), minus our
   * own addresses and the requester; a conversation's new CC people join too. Unique per (request, address
   * key): someone CC'd again is not added twice.
   */
  private async addParticipants(
    mail: ParsedMail,
    requestId: number,
    conversationId: number | null,
    requester: RequesterDecision,
    reasons: string[],
  ): Promise<void> {
    if (mail.cc.length === 0) return;
    if (!this.portal!.settings.ccParticipants) {
      reasons.push('CC not made participants: off in this portal');
      return;
    }
    let requesterAddress: string | null | undefined;
    if (conversationId === null) requesterAddress = requester.requester?.address;
    else if (this.batchRequesters.has(requestId)) requesterAddress = this.batchRequesters.get(requestId);
    else {
      requesterAddress = (
        await this.tx
          .selectFrom('requests')
          .select('requester_address')
          .where('id', '=', requestId)
          .executeTakeFirst()
      )?.requester_address;
    }
    const found = ccParticipants(mail, this.portal!.own, [requesterAddress]);
    reasons.push(...found.reasons);
    for (const p of found.participants) {
      this.participantRows.push({
        request_id: requestId,
        address_key: valueKey(p.address),
        address: p.address,
        name: p.name || null,
        added_at: this.now,
        source: 'cc',
        conversation_id: conversationId,
      });
    }
  }

  /** A conversation on an existing request (inserted like insertRequest's rows). */
  private async insertConversation(mail: ParsedMail, requestId: number, automatic: boolean): Promise<number> {
    const row = {
      ...this.commonColumns(mail),
      request_id: requestId,
      from_address: mail.from?.address ?? null,
      from_name: mail.from?.name || null,
      automatic: automatic ? 1 : 0,
    };
    let conversationId = this.ids?.conversations.pop();
    if (conversationId === undefined) {
      conversationId = (
        await this.tx.insertInto('conversations').values(row).returning('id').executeTakeFirstOrThrow()
      ).id;
    } else {
      this.conversationRows.push({ ...row, id: conversationId });
    }
    this.touchedRequests.add(requestId);
    return conversationId;
  }

  /** The kept attachments' rows and the mail's Message-ID row (the first mail with an id owns it). */
  private recordParts(
    mail: ParsedMail,
    item: BatchItem,
    requestId: number,
    conversationId: number | null,
  ): void {
    for (const a of item.checked?.kept ?? mail.attachments) {
      this.attachmentRows.push({
        request_id: requestId,
        conversation_id: conversationId,
        filename: a.filename,
        content_type: a.contentType,
        size: a.size,
        sha256: a.sha256,
        content_id: a.contentId,
        disposition: a.disposition,
        created_at: this.now,
      });
    }
    if (mail.messageId && !this.memory.knownIds.has(mail.messageId)) {
      this.memory.knownIds.set(mail.messageId, requestId);
      this.messageIdRows.push({
        portal_id: this.mailbox.portalId,
        message_key: valueKey(mail.messageId),
        message_id: mail.messageId,
        request_id: requestId,
      });
    }
  }

  /** The drop notification mails, recorded with the batch's rows when a notifier is set (the portal's switches decide). */
  private noticeDrops(
    mail: ParsedMail,
    dropped: DroppedPart[],
    requestId: number,
    conversationId: number | null,
  ): void {
    if (!this.notifier || dropped.length === 0) return;
    this.notices.push(
      ...dropNotices({
        mailbox: { id: this.mailbox.id, name: this.mailbox.name, portalId: this.mailbox.portalId },
        requestId,
        conversationId,
        subject: mail.subject,
        from: mail.from?.address ?? null,
        dropped,
        policy: this.mailbox.attachmentPolicy ?? DEFAULT_ATTACHMENT_POLICY,
      }),
    );
  }

  /**
   * A dropped item never drops the mail: it is listed with the request (or conversation), gets a reason line in
   * the intake log and an entry in the system log, all in this transaction. Its body stays in the blob store
   * (content-addressed, never deleted here), so an admin can still recover it by its sha256.
   */
  private recordDrops(
    dropped: DroppedPart[],
    serverIdentity: string,
    requestId: number,
    conversationId: number | null,
    reasons: string[],
  ): void {
    for (const d of dropped) {
      reasons.push(dropReason(d));
      this.droppedRows.push({
        request_id: requestId,
        conversation_id: conversationId,
        mailbox_id: this.mailbox.id,
        server_identity: serverIdentity,
        filename: d.part.filename,
        content_type: d.part.contentType,
        size: d.part.size,
        sha256: d.part.sha256,
        content_id: d.part.contentId,
        disposition: d.part.disposition,
        code: d.code,
        message: d.message,
        detail: d.detail,
        created_at: this.now,
      });
      this.systemLogEntries.push({
        level: 'warn',
        category: 'attachment-dropped',
        message: `${dropReason(d)} (request #${requestId}${conversationId === null ? '' : `, conversation ${conversationId}`})`,
        details: {
          code: d.code,
          reason: d.message,
          detail: d.detail,
          inlineImage: isInlineImage(d.part),
          filename: d.part.filename,
          contentType: d.part.contentType,
          size: d.part.size,
          sha256: d.part.sha256,
          requestId,
          conversationId,
          portalId: this.mailbox.portalId,
          mailbox: this.mailbox.name,
          serverIdentity,
        },
      });
    }
  }

  private logOutcome(item: BatchItem, mail: ParsedMail, result: TakenIn): void {
    this.logRows.push({
      retry: item.retry,
      server_identity: item.serverIdentity,
      message_id: mail.messageId,
      message_key: mail.messageId === null ? null : valueKey(mail.messageId),
      content_hash: mail.contentHash,
      fingerprint: mailFingerprint(mail),
      ...rawColumns(item),
      outcome: result.outcome,
      request_id: result.requestId,
      conversation_id: result.outcome === 'appended' ? result.conversationId : null,
      error_code: null,
      reasons: JSON.stringify(result.reasons),
      subject: mail.subject,
      from_address: mail.from?.address ?? null,
      size: mail.size,
      attempts: 1,
    });
  }

  logError(item: BatchItem, error: MailintakeError, mail?: ParsedMail): void {
    this.logRows.push({
      retry: item.retry,
      server_identity: item.serverIdentity,
      message_id: mail?.messageId ?? null,
      message_key: mail?.messageId ? valueKey(mail.messageId) : null,
      content_hash: mail?.contentHash ?? null,
      fingerprint: mail ? mailFingerprint(mail) : null,
      ...rawColumns(item),
      outcome: 'error',
      request_id: null,
      conversation_id: null,
      error_code: error.code,
      reasons: JSON.stringify([error.message]),
      subject: mail?.subject ?? null,
      from_address: mail?.from?.address ?? null,
      size: mail?.size ?? item.size ?? null,
      attempts: 1,
    });
  }

  private async flushRows(): Promise<void> {
    // Parents before children: requests, then conversations and attachments that refer to them.
    for (let i = 0; i < this.requestRows.length; i += INSERT_ROWS.wide) {
      await this.tx
        .insertInto('requests')
        .values(this.requestRows.slice(i, i + INSERT_ROWS.wide))
        .execute();
    }
    for (let i = 0; i < this.conversationRows.length; i += INSERT_ROWS.wide) {
      await this.tx
        .insertInto('conversations')
        .values(this.conversationRows.slice(i, i + INSERT_ROWS.wide))
        .execute();
    }
    for (let i = 0; i < this.participantRows.length; i += INSERT_ROWS.parts) {
      await this.tx
        .insertInto('request_participants')
        .values(this.participantRows.slice(i, i + INSERT_ROWS.parts))
        .onConflict((oc) => oc.columns(['request_id', 'address_key']).doNothing())
        .execute();
    }
    // The acknowledgements commit with their requests: a crash after the commit delays them, never loses them.
    for (const a of this.acks) {
      await enqueueAcknowledgement(this.tx, {
        portalId: this.mailbox.portalId,
        requestId: a.requestId,
        requester: a.requester,
        subject: a.subject,
        template: this.portal!.settings.acknowledgement,
        now: this.now,
        from: this.mailbox.sendFrom,
        inReplyTo: a.messageId,
      });
    }
    for (let i = 0; i < this.attachmentRows.length; i += INSERT_ROWS.parts) {
      await this.tx
        .insertInto('attachments')
        .values(this.attachmentRows.slice(i, i + INSERT_ROWS.parts))
        .execute();
    }
    for (let i = 0; i < this.droppedRows.length; i += INSERT_ROWS.parts) {
      await this.tx
        .insertInto('dropped_attachments')
        .values(this.droppedRows.slice(i, i + INSERT_ROWS.parts))
        .execute();
    }
    if (this.systemLogEntries.length > 0) await systemLog(this.tx, this.systemLogEntries);
    // The drop emails commit with the drops they tell about: a crash after the commit delays them, never loses them.
    for (const notice of this.notices) await this.notifier!.record(this.tx, notice);
    this.noticed = this.notices.length > 0 || this.acks.length > 0;
    for (let i = 0; i < this.messageIdRows.length; i += INSERT_ROWS.messageIds) {
      await this.tx
        .insertInto('message_ids')
        .values(this.messageIdRows.slice(i, i + INSERT_ROWS.messageIds))
        .onConflict((oc) => oc.columns(['portal_id', 'message_key']).doNothing())
        .execute();
    }
    if (this.touchedRequests.size > 0) {
      await this.tx
        .updateTable('requests')
        .set({ updated_at: this.now })
        .where('id', 'in', [...this.touchedRequests])
        .execute();
    }
    await this.flushLog();
  }

  /**
   * The intake-log rows, in one INSERT for the batch. A mail that failed before leaves an `error` row; its
   * next attempt replaces that row (UPDATE, only ever of an error row). A committed outcome is never
   * overwritten: a second INSERT for the same identity breaks the unique constraint and rolls the batch back.
   */
  async flushLog(): Promise<void> {
    const fresh: Insertable<IntakeLogTable>[] = [];
    for (const { retry, ...row } of this.logRows) {
      if (retry) {
        const { server_identity, attempts: _attempts, ...values } = row;
        const updated = await this.tx
          .updateTable('intake_log')
          .set((eb) => ({
            ...values,
            acknowledged: 0,
            updated_at: this.now,
            attempts: eb('attempts', '+', 1),
          }))
          .where('mailbox_id', '=', this.mailbox.id)
          .where('server_identity', '=', server_identity)
          .where('outcome', '=', 'error')
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) === 1) continue;
      }
      fresh.push({
        ...row,
        mailbox_id: this.mailbox.id,
        acknowledged: 0,
        created_at: this.now,
        updated_at: this.now,
      });
    }
    for (let i = 0; i < fresh.length; i += INSERT_ROWS.wide) {
      await this.tx
        .insertInto('intake_log')
        .values(fresh.slice(i, i + INSERT_ROWS.wide))
        .execute();
    }
  }
}
