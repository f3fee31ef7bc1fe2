import type { Selectable } from 'kysely';
import { MailintakeError } from '../../kernel/errors.js';
import type { DropCode } from '../../mail/attachment-checks.js';
import type { Address } from '../../mail/types.js';
import type { BlobStore } from '../../store/blobs/blob-store.js';
import type { RawPacks } from '../../store/blobs/raw-packs.js';
import type { Store } from '../../store/db.js';
import type { AttachmentTable, DroppedAttachmentTable, IntakeLogTable } from '../../store/schema.js';
import { isSystemLogCategory, SYSTEM_LOG_CATEGORIES } from '../../store/system-log.js';
import type { Page } from '../page.js';
import type { SystemLogEntry } from '../system-log/views.js';
import type {
  AttachmentView,
  DroppedAttachmentView,
  IntakeLogEntry,
  RequestDetail,
  RequestSummary,
} from './views.js';

/**
 * The largest page any list gives, the API's and the CLI's `limit` alike (they used to say 1000 while this said
 * 500). To read more, page on with `before` (or the CLI's `--all`).
 */
export { MAX_PAGE } from '../../kernel/limits.js';

import { MAX_PAGE } from '../../kernel/limits.js';

/** A page of a list: limit (default 50, at most MAX_PAGE) and offset, each a coded INVALID_SETTINGS when bad. */
export function page(
  limit: number | undefined,
  offset: number | undefined,
): { limit: number; offset: number } {
  const l = limit ?? 50;
  const o = offset ?? 0;
  if (!Number.isInteger(l) || l < 1 || l > MAX_PAGE) {
    throw new MailintakeError('INVALID_SETTINGS', `limit must be 1 to ${MAX_PAGE}`, {
      details: { fields: [{ field: 'limit', message: `must be a whole number from 1 to ${MAX_PAGE}` }] },
    });
  }
  if (!Number.isInteger(o) || o < 0) {
    throw new MailintakeError('INVALID_SETTINGS', 'offset must be 0 or more', {
      details: { fields: [{ field: 'offset', message: 'must be a whole number, 0 or more' }] },
    });
  }
  return { limit: l, offset: o };
}

/**
 * A filter naming something that does not exist is an error, not an empty list: "no entries" for a mistyped
 * mailbox reads as "nothing happened", which is the one answer an admin must be able to trust.
 */
export async function assertMailboxExists(store: Store, name: string): Promise<void> {
  // removed mailboxes count: their history is kept under "<name> (removed #<id>)" and can be filtered by it
  const row = await store.db.selectFrom('mailboxes').select('id').where('name', '=', name).executeTakeFirst();
  if (!row) {
    // a removed mailbox's history is under its kept name: say which, rather than leave the admin guessing
    const kept = (
      await store.db.selectFrom('mailboxes').select('name').where('removed_at', 'is not', null).execute()
    )
      .map((r) => r.name)
      .filter((n) => n.startsWith(`${name} (removed #`));
    const hint =
      kept.length > 0 ? `; it was removed, its history is under ${kept.map((n) => `"${n}"`).join(', ')}` : '';
    throw new MailintakeError('NOT_FOUND', `no mailbox named "${name}"${hint}`, {
      details: { fields: [{ field: 'mailbox', message: `no mailbox named "${name}"${hint}` }] },
    });
  }
}

async function assertPortalExists(store: Store, name: string): Promise<void> {
  const row = await store.db.selectFrom('portals').select('id').where('name', '=', name).executeTakeFirst();
  if (!row) {
    throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`, {
      details: { fields: [{ field: 'portal', message: `no portal named "${name}"` }] },
    });
  }
}

const addresses = (json: string): Address[] => JSON.parse(json) as Address[];
const person = (address: string | null, name: string | null): Address | null =>
  address ? { address, name: name ?? '' } : null;

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

export class RequestQueries {
  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly rawPacks: RawPacks,
  ) {}

  async list(q: {
    portal?: string;
    limit?: number;
    offset?: number;
    before?: number;
  }): Promise<Page<RequestSummary>> {
    const { limit, offset } = page(q.limit, q.offset);
    if (q.portal) await assertPortalExists(this.store, q.portal);
    let base = this.store.db.selectFrom('requests').innerJoin('portals', 'portals.id', 'requests.portal_id');
    if (q.portal) base = base.where('portals.name', '=', q.portal);
    if (q.before !== undefined) base = base.where('requests.id', '<', q.before);
    const total = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const rows = await base
      .selectAll('requests')
      .select('portals.name as portal_name')
      .select((eb) =>
        eb
          .selectFrom('conversations')
          .select((e) => e.fn.countAll<number>().as('c'))
          .whereRef('conversations.request_id', '=', 'requests.id')
          .as('conversation_count'),
      )
      .orderBy('requests.id', 'desc')
      .limit(limit)
      .offset(offset)
      .execute();
    return {
      items: rows.map((r) => ({
        id: r.id,
        portal: r.portal_name,
        subject: r.subject,
        requester: person(r.requester_address, r.requester_name),
        status: r.status,
        conversationCount: Number(r.conversation_count ?? 0),
        createdAt: r.created_at,
        updatedAt: r.updated_at,
      })),
      total: Number(total.n),
      limit,
      offset,
    };
  }

  async show(id: number): Promise<RequestDetail> {
    const r = await this.store.db
      .selectFrom('requests')
      .innerJoin('portals', 'portals.id', 'requests.portal_id')
      .leftJoin('mailboxes', 'mailboxes.id', 'requests.mailbox_id')
      .selectAll('requests')
      .select(['portals.name as portal_name', 'mailboxes.name as mailbox_name'])
      .where('requests.id', '=', id)
      .executeTakeFirst();
    if (!r) throw new MailintakeError('NOT_FOUND', `no request #${id}`);
    const convs = await this.store.db
      .selectFrom('conversations')
      .leftJoin('mailboxes', 'mailboxes.id', 'conversations.mailbox_id')
      .selectAll('conversations')
      .select('mailboxes.name as mailbox_name')
      .where('request_id', '=', id)
      .orderBy('conversations.id')
      .execute();
    // The log entry of each mail, so that `requests show` leads to its raw source (`raw` takes a log id).
    // The first entry is the mail that made it; a later one for the same request and conversation would be a
    // copy recognised as such.
    const logIds = new Map<number | null, number>();
    for (const l of await this.store.db
      .selectFrom('intake_log')
      .select(['id', 'conversation_id'])
      .where('request_id', '=', id)
      .where('outcome', 'in', ['created', 'appended'])
      .orderBy('id')
      .execute()) {
      if (!logIds.has(l.conversation_id)) logIds.set(l.conversation_id, l.id);
    }
    const atts = (
      await this.store.db
        .selectFrom('attachments')
        .selectAll()
        .where('request_id', '=', id)
        .orderBy('id')
        .execute()
    ).map(attachmentView);
    const dropped = (
      await this.store.db
        .selectFrom('dropped_attachments')
        .selectAll()
        .where('request_id', '=', id)
        .orderBy('id')
        .execute()
    ).map(droppedView);
    return {
      id: r.id,
      portal: r.portal_name,
      subject: r.subject,
      requester: person(r.requester_address, r.requester_name),
      status: r.status,
      conversationCount: convs.length,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      to: addresses(r.to_addresses),
      cc: addresses(r.cc_addresses),
      messageId: r.message_id,
      text: r.text_body,
      html: r.html_body,
      date: r.mail_date,
      mailbox: r.mailbox_name,
      logId: logIds.get(null) ?? null,
      attachments: atts.filter((a) => a.conversationId === null),
      droppedAttachments: dropped.filter((d) => d.conversationId === null),
      conversations: convs.map((c) => ({
        id: c.id,
        from: person(c.from_address, c.from_name),
        to: addresses(c.to_addresses),
        cc: addresses(c.cc_addresses),
        subject: c.subject,
        messageId: c.message_id,
        text: c.text_body,
        html: c.html_body,
        date: c.mail_date,
        mailbox: c.mailbox_name,
        logId: logIds.get(c.id) ?? null,
        createdAt: c.created_at,
        attachments: atts.filter((a) => a.conversationId === c.id),
        droppedAttachments: dropped.filter((d) => d.conversationId === c.id),
      })),
    };
  }

  async attachment(id: number) {
    const a = await this.store.db
      .selectFrom('attachments')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!a) throw new MailintakeError('NOT_FOUND', `no attachment #${id}`);
    return { meta: attachmentView(a), open: () => this.blobs.get(a.sha256) };
  }

  async raw(id: number) {
    const r = await this.store.db
      .selectFrom('intake_log')
      .select(['id', 'raw_sha256', 'raw_pack', 'raw_offset', 'raw_length'])
      .where('id', '=', id)
      .executeTakeFirst();
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
      size: packed ? packed.length : await this.blobs.size(sha256),
      sha256,
      contentId: null,
      disposition: 'attachment',
      conversationId: null,
    };
    return { meta, open: () => (packed ? this.rawPacks.open(packed) : this.blobs.get(sha256)) };
  }

  async log(q: {
    mailbox?: string;
    outcome?: string;
    limit?: number;
    offset?: number;
    before?: number;
  }): Promise<Page<IntakeLogEntry>> {
    const { limit, offset } = page(q.limit, q.offset);
    if (q.mailbox) await assertMailboxExists(this.store, q.mailbox);
    let base = this.store.db
      .selectFrom('intake_log')
      .innerJoin('mailboxes', 'mailboxes.id', 'intake_log.mailbox_id');
    if (q.mailbox) base = base.where('mailboxes.name', '=', q.mailbox);
    if (q.before !== undefined) base = base.where('intake_log.id', '<', q.before);
    if (q.outcome) base = base.where('intake_log.outcome', '=', q.outcome);
    const total = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const rows = await base
      .selectAll('intake_log')
      .select('mailboxes.name as mailbox_name')
      .orderBy('intake_log.id', 'desc')
      .limit(limit)
      .offset(offset)
      .execute();
    return { items: rows.map(logEntry), total: Number(total.n), limit, offset };
  }
}

/** The system log, newest first (store/system-log.ts writes it). */
export async function listSystemLog(
  store: Store,
  q: { category?: string; limit?: number; offset?: number; before?: number },
): Promise<Page<SystemLogEntry>> {
  const { limit, offset } = page(q.limit, q.offset);
  if (q.category !== undefined && !isSystemLogCategory(q.category)) {
    const known = SYSTEM_LOG_CATEGORIES.join(', ');
    throw new MailintakeError(
      'INVALID_SETTINGS',
      `no system log category "${q.category}"; the categories are ${known}`,
      {
        details: { fields: [{ field: 'category', message: `must be one of ${known}` }] },
      },
    );
  }
  let base = store.db.selectFrom('system_log');
  if (q.category) base = base.where('category', '=', q.category);
  if (q.before !== undefined) base = base.where('id', '<', q.before);
  const total = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  const rows = await base.selectAll().orderBy('id', 'desc').limit(limit).offset(offset).execute();
  return {
    items: rows.map((r) => ({
      id: r.id,
      createdAt: r.created_at,
      actor: r.actor,
      level: r.level,
      category: r.category,
      message: r.message,
      details: JSON.parse(r.details) as Record<string, unknown>,
    })),
    total: Number(total.n),
    limit,
    offset,
  };
}

function logEntry(r: Selectable<IntakeLogTable> & { mailbox_name: string }): IntakeLogEntry {
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
    reasons: JSON.parse(r.reasons) as string[],
    subject: r.subject,
    from: r.from_address,
    size: r.size,
    attempts: r.attempts,
    acknowledged: r.acknowledged === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
