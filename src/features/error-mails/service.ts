import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { Selectable } from 'kysely';
import type { Connector, WantedMail } from '../../connectors/connector.js';
import type { MailboxSettings } from '../../connectors/settings.js';
import type { ErrorReport } from '../../intake/error-folder.js';
import type { MailboxLease } from '../../intake/lease.js';
import { MailintakeError } from '../../kernel/errors.js';
import type { Logger } from '../../kernel/logger.js';
import { openedLength, type SecretBox } from '../../kernel/secret-box.js';
import type { BlobStore } from '../../store/blobs/blob-store.js';
import { nowIso, type Store } from '../../store/db.js';
import type { ErrorMailTable } from '../../store/schema.js';
import { systemLog } from '../../store/system-log.js';
import { withTransaction } from '../../store/tx.js';
import type { Page } from '../page.js';
import { assertMailboxExists, page } from '../requests/service.js';
import type { AttachmentView } from '../requests/views.js';
import { type ResealResult, resealAll } from '../secret-key/service.js';
import type { ErrorMailView, MoveToInboxResult } from './views.js';

/** The error folder's operations in `Services` (services/index.ts). */
export interface ErrorFolderServices {
  errorMails: {
    /** Newest first; `mailbox` NOT_FOUND when unknown; `status` 'in-error-folder' or 'moved-to-inbox'. */
    list(q: {
      mailbox?: string;
      status?: string;
      limit?: number;
      offset?: number;
    }): Promise<Page<ErrorMailView>>;
    /** The sealed report, opened: mail details and the exception. */
    report(id: number): Promise<{ errorMail: ErrorMailView; report: ErrorReport }>;
    /** POP3: the raw mail Mailintake kept, opened (NOT_FOUND for mails kept in a server folder). */
    raw(id: number): Promise<{ meta: AttachmentView; open(): Readable }>;
    /** The reference's "Move mails to inbox" (see ErrorMails.moveToInbox). */
    moveToInbox(mailbox: string): Promise<MoveToInboxResult>;
  };
  secretKey: {
    /** Key rotation: seals everything sealed with a previous key again with the current one. */
    reseal(): Promise<ResealResult>;
  };
}

/**
 * The error folder for admins: the list of error mails, their reports (opened with the secret box only here,
 * for the caller), POP3's kept raw mails, and "move mails to inbox".
 */
export class ErrorMails {
  constructor(
    private readonly deps: {
      store: Store;
      blobs: BlobStore;
      box: SecretBox;
      lease: MailboxLease;
      logger: Logger;
      /** The mailbox row's id and settings (secrets opened), NOT_FOUND when there is none. */
      mailbox(name: string): Promise<{ id: number; name: string; settings: MailboxSettings }>;
      connect(settings: MailboxSettings, mailbox: { id: number; name: string }): Connector;
    },
  ) {}

  async list(q: {
    mailbox?: string;
    status?: string;
    limit?: number;
    offset?: number;
  }): Promise<Page<ErrorMailView>> {
    const { limit, offset } = page(q.limit, q.offset);
    let base = this.deps.store.db
      .selectFrom('error_mails')
      .innerJoin('mailboxes', 'mailboxes.id', 'error_mails.mailbox_id');
    if (q.mailbox) {
      // NOT_FOUND for a mistyped name rather than an empty list
      await assertMailboxExists(this.deps.store, q.mailbox);
      base = base.where('mailboxes.name', '=', q.mailbox);
    }
    if (q.status) base = base.where('error_mails.status', '=', q.status);
    const total = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const rows = await base
      .selectAll('error_mails')
      .select('mailboxes.name as mailbox_name')
      .orderBy('error_mails.id', 'desc')
      .limit(limit)
      .offset(offset)
      .execute();
    return { items: rows.map(errorMailView), total: Number(total.n), limit, offset };
  }

  private async row(id: number) {
    const row = await this.deps.store.db
      .selectFrom('error_mails')
      .innerJoin('mailboxes', 'mailboxes.id', 'error_mails.mailbox_id')
      .selectAll('error_mails')
      .select('mailboxes.name as mailbox_name')
      .where('error_mails.id', '=', id)
      .executeTakeFirst();
    if (!row) throw new MailintakeError('NOT_FOUND', `no error mail #${id}`);
    return row;
  }

  /** The report, opened: mail details and the exception. Only an admin's API key or the CLI reach this. */
  async report(id: number): Promise<{ errorMail: ErrorMailView; report: ErrorReport }> {
    const row = await this.row(id);
    const sealed = await buffer(this.deps.blobs.get(row.report_blob));
    let report: ErrorReport;
    try {
      report = JSON.parse(this.deps.box.openBytes(sealed).toString('utf8')) as ErrorReport;
    } catch (err) {
      throw new MailintakeError(
        'INTERNAL',
        `the report of error mail #${id} cannot be opened: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    return { errorMail: errorMailView(row), report };
  }

  /** POP3: the kept raw mail, opened (message/rfc822). */
  async raw(id: number): Promise<{ meta: AttachmentView; open(): Readable }> {
    const row = await this.row(id);
    if (!row.raw_blob) {
      throw new MailintakeError(
        'NOT_FOUND',
        `error mail #${id} is in the error folder "${row.folder ?? ''}" on the server; Mailintake keeps the raw mail only for POP3 (its copy as fetched: mailintake raw <intake log id>)`,
      );
    }
    const rawBlob = row.raw_blob;
    const sealedSize = await this.deps.blobs.size(rawBlob);
    const meta: AttachmentView = {
      id: row.id,
      filename: `error-mail-${row.id}.eml`,
      contentType: 'message/rfc822',
      size: openedLength(sealedSize),
      sha256: rawBlob,
      contentId: null,
      disposition: 'attachment',
      conversationId: null,
    };
    return {
      meta,
      open: () => {
        const sealed = this.deps.blobs.get(rawBlob);
        const opener = this.deps.box.openStream();
        sealed.once('error', (err) => opener.destroy(err));
        return sealed.pipe(opener);
      },
    };
  }

  /**
   * The reference's "Move mails to inbox": every error mail of the mailbox still in the error folder goes back
   * to the inbox (IMAP/Graph: moved on the server; POP3: its kept copy is taken in by the next round), and the
   * rows are marked `moved-to-inbox`, which resets the count. Holds the fetch lease meanwhile, so no round
   * moves a mail into the folder while it is being emptied. Rows whose mail is no longer in the folder are
   * marked too (named in `notFound`): someone moved or deleted it, or an earlier attempt moved it and was cut
   * short before marking.
   */
  async moveToInbox(name: string): Promise<MoveToInboxResult> {
    const mailbox = await this.deps.mailbox(name);
    const { store, lease } = this.deps;
    const hold = await lease.acquire(mailbox.id);
    if (!hold) {
      throw new MailintakeError('MAILBOX_BUSY', `mailbox "${name}" is being fetched right now; try again`);
    }
    try {
      const open = await store.db
        .selectFrom('error_mails')
        .leftJoin('intake_log', (j) =>
          j
            .onRef('intake_log.mailbox_id', '=', 'error_mails.mailbox_id')
            .onRef('intake_log.server_identity', '=', 'error_mails.server_identity'),
        )
        .select([
          'error_mails.id',
          'error_mails.server_identity',
          'error_mails.location',
          'error_mails.folder',
          'intake_log.size',
          'intake_log.raw_sha256',
        ])
        .where('error_mails.mailbox_id', '=', mailbox.id)
        .where('error_mails.status', '=', 'in-error-folder')
        .orderBy('error_mails.id')
        .execute();
      const moved: number[] = [];
      const notFound: number[] = [];
      for (const r of open.filter((x) => x.location === 'kept-locally')) moved.push(r.id);
      const onServer = open.filter((x) => x.location === 'server-folder');
      if (onServer.length > 0) {
        const connector = this.deps.connect(mailbox.settings, mailbox);
        if (!connector.moveBack) {
          throw new MailintakeError(
            'INVALID_SETTINGS',
            `mailbox "${name}" (${mailbox.settings.protocol}) cannot move mails back from its error folder`,
          );
        }
        try {
          await connector.open();
          const byFolder = new Map<string, typeof onServer>();
          for (const r of onServer) {
            const folder = r.folder ?? '';
            byFolder.set(folder, [...(byFolder.get(folder) ?? []), r]);
          }
          for (const [folder, rows] of byFolder) {
            const wanted: WantedMail[] = rows.map((r) => ({
              key: String(r.id),
              identity: r.server_identity,
              ...(r.size !== null && r.size !== undefined ? { size: Number(r.size) } : {}),
              ...(r.raw_sha256 ? { sha256: r.raw_sha256 } : {}),
            }));
            const back = new Set(await connector.moveBack(folder, wanted));
            for (const r of rows) (back.has(String(r.id)) ? moved : notFound).push(r.id);
          }
        } finally {
          await connector.close();
        }
      }
      const ids = [...moved, ...notFound];
      await withTransaction(store, async (tx) => {
        if (ids.length > 0) {
          await tx
            .updateTable('error_mails')
            .set({ status: 'moved-to-inbox', moved_back_at: nowIso() })
            .where('id', 'in', ids)
            .where('status', '=', 'in-error-folder')
            .execute();
        }
        await systemLog(tx, {
          level: 'info',
          category: 'error-folder',
          message: `mailbox ${name}: ${moved.length} error mails moved to the inbox${notFound.length ? `, ${notFound.length} no longer in the error folder` : ''}`,
          details: { mailbox: name, change: 'moved-to-inbox', moved, notFound },
        });
      });
      const { n } = await store.db
        .selectFrom('error_mails')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('mailbox_id', '=', mailbox.id)
        .where('status', '=', 'in-error-folder')
        .executeTakeFirstOrThrow();
      return { mailbox: name, moved, notFound, remaining: Number(n) };
    } finally {
      await hold.release().catch(() => undefined);
    }
  }
}

function errorMailView(r: Selectable<ErrorMailTable> & { mailbox_name: string }): ErrorMailView {
  return {
    id: r.id,
    mailbox: r.mailbox_name,
    serverIdentity: r.server_identity,
    errorCode: r.error_code,
    location: r.location === 'kept-locally' ? 'kept-locally' : 'server-folder',
    folder: r.folder,
    status: r.status === 'moved-to-inbox' ? 'moved-to-inbox' : 'in-error-folder',
    rawAvailable: r.raw_blob !== null,
    createdAt: r.created_at,
    movedBackAt: r.moved_back_at,
  };
}

/** The error folder's services, built once by the runtime. */
export function errorFolderServices(deps: ConstructorParameters<typeof ErrorMails>[0]): ErrorFolderServices {
  const mails = new ErrorMails(deps);
  return {
    errorMails: {
      list: (q) => mails.list(q),
      report: (id) => mails.report(id),
      raw: (id) => mails.raw(id),
      moveToInbox: (mailbox) => mails.moveToInbox(mailbox),
    },
    secretKey: { reseal: () => resealAll(deps) },
  };
}
