import type { Readable } from 'node:stream';
import type { Selectable } from 'kysely';
import { MailintakeError } from '../../kernel/errors.js';
import type { DropCode } from '../../mail/attachment-checks.js';
import { plainTextToHtml, sanitizeMailHtml } from '../../mail/display.js';
import { splitReply } from '../../mail/reply-split.js';
import type { Address } from '../../mail/types.js';
import type { BlobStore } from '../../store/blobs/blob-store.js';
import type { RawPacks } from '../../store/blobs/raw-packs.js';
import type { Store } from '../../store/db.js';
import { fetchPage, page } from '../../store/paging.js';
import type { AttachmentTable, DroppedAttachmentTable, MailOutboxTable } from '../../store/schema.js';
import { storedStrings } from '../../store/stored-json.js';
import { downloadContentType } from '../shared/download.js';
import type { Page } from '../shared/page.js';
import { createReplies, type ReplyInput } from './replies.js';
import { createRequestRepo, type IntakeLogRow, storedAddresses, storedReasons } from './repo.js';
import type {
  AttachmentView,
  DeliveryView,
  DroppedAttachmentView,
  IntakeLogEntry,
  RequestDetail,
  RequestHistoryEntry,
  RequestListItem,
  RequestSummary,
  SentReplyView,
} from './views.js';
import { listRequests, type RequestFilter, requestWork } from './work.js';

/**
 * The largest page any list gives, the API's and the CLI's `limit` alike (they used to say 1000 while this said
 * 500). To read more, page on with `before` (or the CLI's `--all`).
 */
export { MAX_PAGE } from '../../kernel/limits.js';

export interface RequestsService {
  /** Newest first. `before`: only ids below it (page on from the last id seen; new requests do not shift it). */
  list(q: RequestFilter & { limit?: number; offset?: number }): Promise<Page<RequestListItem>>;
  show(id: number): Promise<RequestDetail>;
  /**
   * The portal a request belongs to (NOT_FOUND when there is no such request): what the console checks before
   * a technician sees anything of it, without reading its mails.
   */
  portalOf(id: number): Promise<string>;
  attachment(id: number): Promise<{ meta: AttachmentView; open(): Readable }>;
  /**
   * One mail of a request made safe to show (mail/display.ts): its first mail when `conversationId` is null,
   * else that conversation (404 unless it belongs to the request). The HTML body sanitised, or the plain text
   * as HTML. `cid:` images point at `inlineUrl(attachmentId)` for the parts of that same mail; remote images
   * are left out (and counted) unless `remoteImages`.
   */
  body(q: {
    requestId: number;
    conversationId: number | null;
    remoteImages: boolean;
    inlineUrl: (attachmentId: number) => string;
    /**
     * Inline images carried in the document as `data:` URLs instead (PNG, GIF, JPEG, WebP up to these sizes;
     * other parts are left out). For a frame whose requests carry no session: see body-routes.ts.
     */
    embedImages?: { maxBytes: number; maxTotalBytes: number };
  }): Promise<MailBodyView>;
  /** An attachment of that request (404 for another request's), for the inline images of `body`. */
  inlinePart(requestId: number, attachmentId: number): Promise<{ meta: AttachmentView; open(): Readable }>;
  /** Sets the status (INVALID_SETTINGS naming `status` when it is not one); a change is written to the history. */
  setStatus(id: number, status: string): Promise<RequestSummary>;
  /** Sets or clears (null) the assignee, an email address; a change is written to the history. */
  assign(id: number, assignee: string | null): Promise<RequestSummary>;
  /** The status and assignee changes of a request, oldest first. */
  history(id: number): Promise<RequestHistoryEntry[]>;
  /**
   * Replies to the requester (To defaults to them) and the chosen Cc; the help desk's own addresses are dropped
   * from To, Cc and Bcc. Stored as an outgoing conversation and queued in the outbox in one transaction.
   */
  reply(id: number, input: ReplyInput, opts?: { portal?: string | null }): Promise<SentReplyView>;
  /** Forwards the request to `to` (required), like a reply otherwise; may carry the request's attachments. */
  forward(id: number, input: ReplyInput, opts?: { portal?: string | null }): Promise<SentReplyView>;
}

/** A mail body ready for the sandboxed frame: an HTML fragment, and how many remote images were left out. */
export interface MailBodyView {
  html: string;
  blockedRemoteImages: number;
}

export interface IntakeLogService {
  list(q: {
    mailbox?: string;
    outcome?: string;
    /** Only the entries of this request: the mails that made or extended it, and copies recognised as such. */
    request?: number;
    limit?: number;
    offset?: number;
    before?: number;
  }): Promise<Page<IntakeLogEntry>>;
  /** The raw mail of a log entry, as it was fetched (message/rfc822). */
  raw(id: number): Promise<{ meta: AttachmentView; open(): Readable }>;
}

/**
 * A filter naming something that does not exist is an error, not an empty list: "no entries" for a mistyped
 * mailbox reads as "nothing happened", which is the one answer an admin must be able to trust.
 */
export async function assertMailboxExists(store: Store, name: string): Promise<void> {
  const repo = createRequestRepo(store);
  // removed mailboxes count: their history is kept under "<name> (removed #<id>)" and can be filtered by it
  if (await repo.mailboxExists(name)) return;
  // a removed mailbox's history is under its kept name: say which, rather than leave the admin guessing
  const kept = (await repo.removedMailboxNames()).filter((n) => n.startsWith(`${name} (removed #`));
  const hint =
    kept.length > 0 ? `; it was removed, its history is under ${kept.map((n) => `"${n}"`).join(', ')}` : '';
  throw new MailintakeError('NOT_FOUND', `no mailbox named "${name}"${hint}`, {
    details: { fields: [{ field: 'mailbox', message: `no mailbox named "${name}"${hint}` }] },
  });
}

/** The To and Cc of a request's first mail or of a conversation, as stored. */
const recipientsOf = (
  table: 'requests' | 'conversations',
  r: { id: number; to_addresses: string; cc_addresses: string },
): { to: Address[]; cc: Address[] } => ({
  to: storedAddresses(r.to_addresses, { table, column: 'to_addresses', id: r.id }),
  cc: storedAddresses(r.cc_addresses, { table, column: 'cc_addresses', id: r.id }),
});

const person = (address: string | null, name: string | null): Address | null =>
  address ? { address, name: name ?? '' } : null;

/** Requests and their conversations, attachments and source mails, as the help desk took them in. */
export function createRequestsService(deps: {
  store: Store;
  blobs: BlobStore;
  rawPacks: RawPacks;
  /** The keys of the per-request reply address (SecretBox.derivedKeys); absent: replies carry none. */
  replyKeys?: () => Buffer[];
  /** Wakes the outbox after a reply is queued; absent: its timer sends it. */
  kickOutbox?: () => void;
}): RequestsService {
  const repo = createRequestRepo(deps.store);
  const replies = createReplies({
    store: deps.store,
    blobs: deps.blobs,
    replyKeys: deps.replyKeys ?? (() => []),
    kick: deps.kickOutbox ?? (() => undefined),
  });
  /** The request; `only`: with that one conversation alone (a reply just queued, without reading the thread). */
  const detail = async (id: number, only?: number): Promise<RequestDetail> => {
    const r = await repo.request(id);
    if (!r) throw new MailintakeError('NOT_FOUND', `no request #${id}`);
    const convs = await repo.conversations(id, only);
    // The log entry of each mail, so that `requests show` leads to its raw source (`raw` takes a log id).
    // The first entry is the mail that made it; a later one for the same request and conversation would be a
    // copy recognised as such.
    const logIds = new Map<number | null, number>();
    for (const l of await repo.takenInEntries(id)) {
      if (!logIds.has(l.conversation_id)) logIds.set(l.conversation_id, l.id);
    }
    const deliveries = new Map(
      (await repo.deliveriesOf(id, only)).map((d) => [d.conversation_id, deliveryView(d)] as const),
    );
    const atts = (await repo.attachmentsOf(id, only)).map(attachmentView);
    const dropped = (await repo.droppedOf(id)).map(droppedView);
    return {
      id: r.id,
      portal: r.portal_name,
      subject: r.subject,
      requester: person(r.requester_address, r.requester_name),
      status: r.status as RequestDetail['status'],
      assignee: r.assignee,
      conversationCount: only === undefined ? convs.length : await repo.conversationCount(id),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      ...recipientsOf('requests', r),
      messageId: r.message_id,
      text: r.text_body,
      html: r.html_body,
      newPart: newPartOf(r.text_body, r.html_body),
      date: r.mail_date,
      mailbox: r.mailbox_name,
      logId: logIds.get(null) ?? null,
      attachments: atts.filter((a) => a.conversationId === null),
      droppedAttachments: dropped.filter((d) => d.conversationId === null),
      // the one outbox row of the request without a conversation is its acknowledgement (notify/acknowledgement.ts)
      acknowledgement: only === undefined ? (deliveries.get(null) ?? null) : null,
      participants: (await repo.participants(id)).map((p) => ({
        address: p.address,
        name: p.name,
        source: p.source,
        conversationId: p.conversation_id,
        addedAt: p.added_at,
      })),
      conversations: convs.map((c) => ({
        id: c.id,
        from: person(c.from_address, c.from_name),
        ...recipientsOf('conversations', c),
        subject: c.subject,
        automatic: c.automatic === 1,
        direction: c.direction === 'out' ? ('out' as const) : ('in' as const),
        actor: c.actor,
        delivery: deliveries.get(c.id) ?? null,
        messageId: c.message_id,
        text: c.text_body,
        html: c.html_body,
        newPart: newPartOf(c.text_body, c.html_body),
        date: c.mail_date,
        mailbox: c.mailbox_name,
        logId: logIds.get(c.id) ?? null,
        createdAt: c.created_at,
        attachments: atts.filter((a) => a.conversationId === c.id),
        droppedAttachments: dropped.filter((d) => d.conversationId === c.id),
      })),
    };
  };
  const show = (id: number) => detail(id);
  return {
    list: async (q) => {
      const found = await listRequests(deps.store, q, {
        portal: async (name) => {
          if (!(await repo.portalExists(name))) {
            throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`, {
              details: { fields: [{ field: 'portal', message: `no portal named "${name}"` }] },
            });
          }
        },
        mailbox: (name) => assertMailboxExists(deps.store, name),
      });
      // one query for the page's mailboxes, beside the list query (which stays on the requests table alone)
      const names = new Map(
        (await repo.mailboxesOf(found.items.map((r) => r.id))).map((m) => [m.id, m.name]),
      );
      return { ...found, items: found.items.map((r) => ({ ...r, mailbox: names.get(r.id) ?? null })) };
    },
    show,
    portalOf: async (id) => {
      const portal = await repo.portalOfRequest(id);
      if (portal === undefined) throw new MailintakeError('NOT_FOUND', `no request #${id}`);
      return portal;
    },
    attachment: async (id) => {
      const a = await repo.attachment(id);
      if (!a) throw new MailintakeError('NOT_FOUND', `no attachment #${id}`);
      return { meta: attachmentView(a), open: () => deps.blobs.get(a.sha256) };
    },
    body: async (q) => {
      const mail = await repo.mailBody(q.requestId, q.conversationId);
      if (!mail) {
        throw new MailintakeError(
          'NOT_FOUND',
          q.conversationId === null
            ? `no request #${q.requestId}`
            : `no conversation #${q.conversationId} in request #${q.requestId}`,
        );
      }
      if (mail.html_body !== null && mail.html_body.trim() !== '') {
        const parts = await repo.contentIdsOf(q.requestId, q.conversationId);
        const byCid = new Map<string, number>();
        for (const p of parts)
          if (p.content_id !== null && !byCid.has(p.content_id)) byCid.set(p.content_id, p.id);
        const embedded = q.embedImages ? await embeddable(deps.blobs, parts, q.embedImages) : null;
        return sanitizeMailHtml(mail.html_body, {
          remoteImages: q.remoteImages,
          cidUrl: (cid) => {
            const id = byCid.get(cid) ?? byCid.get(cid.replace(/^<|>$/g, ''));
            if (id === undefined) return null;
            return embedded ? (embedded.get(id) ?? null) : q.inlineUrl(id);
          },
        });
      }
      return { html: plainTextToHtml(mail.text_body ?? ''), blockedRemoteImages: 0 };
    },
    inlinePart: async (requestId, attachmentId) => {
      const a = await repo.attachmentOfRequest(requestId, attachmentId);
      if (!a)
        throw new MailintakeError('NOT_FOUND', `no attachment #${attachmentId} in request #${requestId}`);
      return { meta: attachmentView(a), open: () => deps.blobs.get(a.sha256) };
    },
    ...requestWork(deps.store),
    reply: async (id, input, opts) => sent(id, await replies.send(id, input, { ...opts, forward: false })),
    forward: async (id, input, opts) => sent(id, await replies.send(id, input, { ...opts, forward: true })),
  };
  async function sent(id: number, r: { conversationId: number; dropped: string[] }): Promise<SentReplyView> {
    const c = (await detail(id, r.conversationId)).conversations.find((x) => x.id === r.conversationId);
    if (!c) throw new MailintakeError('INTERNAL', `reply ${r.conversationId} of request #${id} vanished`);
    return { ...c, leftOut: r.dropped };
  }
}

/** An outgoing conversation's outbox row as its delivery state (a bounce after sending makes it failed). */
function deliveryView(d: Selectable<MailOutboxTable>): DeliveryView {
  const state = d.bounced_at
    ? 'failed'
    : d.sent_at
      ? 'sent'
      : d.failed_at
        ? 'failed'
        : // claimed and being sent (attempts counted, no error yet) is still pending to whoever looks
          d.last_error !== null
          ? 'retrying'
          : 'pending';
  return {
    outboxId: d.id,
    state,
    attempts: d.attempts,
    sentAt: d.sent_at,
    failedAt: d.bounced_at ?? d.failed_at,
    status: d.failure_status,
    reason: d.failure_reason ?? (state === 'retrying' || state === 'failed' ? d.last_error : null),
    bounced: d.bounced_at !== null,
    bcc: d.bcc ? storedStrings(d.bcc, { table: 'mail_outbox', column: 'bcc', id: d.id }) : [],
  };
}

/** The intake log: every mail a round took in, skipped or failed, and its raw source as fetched. */
export function createIntakeLogService(deps: {
  store: Store;
  blobs: BlobStore;
  rawPacks: RawPacks;
}): IntakeLogService {
  const repo = createRequestRepo(deps.store);
  const raw = async (id: number) => {
    const r = await repo.rawOf(id);
    if (!r) {
      throw new MailintakeError(
        'NOT_FOUND',
        `no intake log entry #${id} (this takes an intake log id, not a request id: "requests show" gives a request's log id)`,
      );
    }
    if (!r.raw_sha256)
      throw new MailintakeError('NOT_FOUND', `the raw mail of log entry #${id} was not kept`);
    const sha256 = r.raw_sha256;
    const packed =
      r.raw_pack !== null && r.raw_offset !== null && r.raw_length !== null
        ? { pack: r.raw_pack, offset: r.raw_offset, length: r.raw_length }
        : null;
    const meta: AttachmentView = {
      id: r.id,
      filename: `mail-${r.id}.eml`,
      contentType: 'message/rfc822',
      size: packed ? packed.length : await deps.blobs.size(sha256),
      sha256,
      contentId: null,
      disposition: 'attachment',
      conversationId: null,
    };
    return { meta, open: () => (packed ? deps.rawPacks.open(packed) : deps.blobs.get(sha256)) };
  };
  return {
    list: async (q) => {
      const window = page(q.limit, q.offset);
      if (q.mailbox) await assertMailboxExists(deps.store, q.mailbox);
      if (q.request !== undefined && (await repo.portalOfRequest(q.request)) === undefined) {
        throw new MailintakeError('NOT_FOUND', `no request #${q.request}`, {
          details: { fields: [{ field: 'request', message: `no request #${q.request}` }] },
        });
      }
      return fetchPage(repo.intakeLog(q), window, logEntry);
    },
    raw,
  };
}

/** The image types a `data:` URL may carry into the frame (display.ts keeps only these). */
const EMBEDDABLE = new Set(['image/png', 'image/gif', 'image/jpeg', 'image/webp']);

/**
 * The mail's inline images, read from the store as `data:` URLs by attachment id, within the limits
 * (each, and all together: a mail of many large images shows the first ones, not a frame of hundreds of MB).
 */
async function embeddable(
  blobs: BlobStore,
  parts: { id: number; content_id: string | null; content_type: string; size: number; sha256: string }[],
  limits: { maxBytes: number; maxTotalBytes: number },
): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  let total = 0;
  for (const p of parts) {
    const type = downloadContentType(p.content_type);
    if (p.content_id === null || !EMBEDDABLE.has(type)) continue;
    if (p.size > limits.maxBytes || total + p.size > limits.maxTotalBytes) continue;
    const chunks: Buffer[] = [];
    for await (const chunk of blobs.get(p.sha256)) chunks.push(chunk as Buffer);
    total += p.size;
    out.set(p.id, `data:${type};base64,${Buffer.concat(chunks).toString('base64')}`);
  }
  return out;
}

function attachmentView(a: Selectable<AttachmentTable>): AttachmentView {
  return {
    id: a.id,
    filename: a.filename,
    contentType: a.content_type,
    size: a.size,
    sha256: a.sha256,
    contentId: a.content_id,
    disposition: a.disposition === 'inline' ? 'inline' : 'attachment',
    conversationId: a.conversation_id,
  };
}

function droppedView(d: Selectable<DroppedAttachmentTable>): DroppedAttachmentView {
  return {
    id: d.id,
    filename: d.filename,
    contentType: d.content_type,
    size: Number(d.size),
    sha256: d.sha256,
    contentId: d.content_id,
    disposition: d.disposition === 'inline' ? 'inline' : 'attachment',
    conversationId: d.conversation_id,
    code: d.code as DropCode,
    message: d.message,
    detail: d.detail,
    createdAt: d.created_at,
  };
}

function logEntry(r: IntakeLogRow): IntakeLogEntry {
  return {
    id: r.id,
    mailbox: r.mailbox_name,
    serverIdentity: r.server_identity,
    messageId: r.message_id,
    contentHash: r.content_hash,
    rawAvailable: r.raw_sha256 !== null,
    outcome: r.outcome as IntakeLogEntry['outcome'],
    requestId: r.request_id,
    conversationId: r.conversation_id,
    errorCode: r.error_code,
    reasons: storedReasons(r),
    subject: r.subject,
    from: r.from_address,
    size: r.size,
    attempts: r.attempts,
    acknowledged: r.acknowledged === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The API's `newPart` of a mail: what the sender wrote (mail/reply-split.ts), null without a body. */
function newPartOf(text: string | null, html: string | null): string | null {
  if (text === null && html === null) return null;
  return splitReply({ text, html }).newPart;
}
