import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { Connector, WantedMail } from '../../connectors/connector.js';
import type { MailboxSettings } from '../../connectors/settings.js';
import type { ErrorReport } from '../../intake/error-folder.js';
import type { MailboxLease } from '../../intake/lease.js';
import { MailintakeError } from '../../kernel/errors.js';
import type { Logger } from '../../kernel/logger.js';
import { openedLength, type SecretBox } from '../../kernel/secret-box.js';
import type { BlobStore } from '../../store/blobs/blob-store.js';
import type { Store } from '../../store/db.js';
import { fetchPage, page } from '../../store/paging.js';
import { storedStrings } from '../../store/stored-json.js';
import { systemLog } from '../../store/system-log.js';
import { withTransaction } from '../../store/tx.js';
import { assertMailboxExists } from '../requests/service.js';
import type { AttachmentView } from '../requests/views.js';
import type { SecretKeyService } from '../secret-key/service.js';
import type { Page } from '../shared/page.js';
import { createErrorMailRepo, type ErrorMailRepo, type ErrorMailRow, storedReport } from './repo.js';
import type { ErrorMailView, MoveToInboxResult } from './views.js';

/** The error folder's operations in `Services` (features/services.ts). */
export interface ErrorFolderServices {
  errorMails: {
    /**
     * Newest first; `mailbox` NOT_FOUND when unknown; `portal` only that portal's mailboxes (a technician's
     * view); `status` 'in-error-folder' or 'moved-to-inbox'.
     */
    list(q: {
      mailbox?: string;
      portal?: string;
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
    /**
     * "Move mails to inbox" for the chosen error mails only (the console's check boxes), mailbox by mailbox:
     * one result per mailbox. NOT_FOUND names ids that are no error mail; ids already moved back are skipped.
     */
    moveSelectedToInbox(ids: number[]): Promise<MoveToInboxResult[]>;
  };
  secretKey: SecretKeyService;
}

export type ErrorMailsService = ErrorFolderServices['errorMails'];

export interface ErrorMailsDeps {
  store: Store;
  blobs: BlobStore;
  box: SecretBox;
  lease: MailboxLease;
  logger: Logger;
  /** The mailbox row's id and settings (secrets opened), NOT_FOUND when there is none. */
  mailbox(name: string): Promise<{ id: number; name: string; settings: MailboxSettings }>;
  connect(settings: MailboxSettings, mailbox: { id: number; name: string }): Connector;
}

/**
 * The error folder for admins: the list of error mails, their reports (opened with the secret box only here,
 * for the caller), POP3's kept raw mails, and "move mails to inbox".
 */
export function createErrorMailsService(deps: ErrorMailsDeps): ErrorMailsService {
  const repo = createErrorMailRepo(deps.store);
  const existing = async (id: number): Promise<ErrorMailRow> => {
    const row = await repo.byId(id);
    if (!row) throw new MailintakeError('NOT_FOUND', `no error mail #${id}`);
    return row;
  };

  /** POP3: the kept raw mail, opened (message/rfc822). */
  const raw = async (id: number): Promise<{ meta: AttachmentView; open(): Readable }> => {
    const row = await existing(id);
    if (!row.raw_blob) {
      throw new MailintakeError(
        'NOT_FOUND',
        `error mail #${id} is in the error folder "${row.folder ?? ''}" on the server; Mailintake keeps the raw mail only for POP3 (its copy as fetched: mailintake raw <intake log id>)`,
      );
    }
    const rawBlob = row.raw_blob;
    const sealedSize = await deps.blobs.size(rawBlob);
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
        const sealed = deps.blobs.get(rawBlob);
        const opener = deps.box.openStream();
        sealed.once('error', (err) => opener.destroy(err));
        return sealed.pipe(opener);
      },
    };
  };

  return {
    list: async (q) => {
      const window = page(q.limit, q.offset);
      // NOT_FOUND for a mistyped name rather than an empty list
      if (q.mailbox) await assertMailboxExists(deps.store, q.mailbox);
      if (q.portal) await assertPortalExists(deps.store, q.portal);
      return fetchPage(repo.list(q), window, errorMailView);
    },
    /** The report, opened: mail details and the exception. Only an admin's API key or the CLI reach this. */
    report: async (id) => {
      const row = await existing(id);
      const sealed = await buffer(deps.blobs.get(row.report_blob));
      let report: ErrorReport;
      try {
        report = storedReport(deps.box.openBytes(sealed).toString('utf8'), id);
      } catch (err) {
        throw new MailintakeError(
          'INTERNAL',
          `the report of error mail #${id} cannot be opened: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      }
      return { errorMail: errorMailView(row), report };
    },
    raw,
    moveToInbox: (name) => moveToInbox(deps, repo, name),
    moveSelectedToInbox: async (ids) => {
      const wanted = [...new Set(ids)];
      if (wanted.length === 0) {
        throw new MailintakeError('INVALID_SETTINGS', 'choose at least one error mail to move', {
          details: { fields: [{ field: 'ids', message: 'choose at least one error mail' }] },
        });
      }
      const found = await repo.mailboxesOf(wanted);
      const missing = wanted.filter((id) => !found.some((f) => f.id === id));
      if (missing.length > 0) {
        throw new MailintakeError('NOT_FOUND', `no error mail ${missing.map((id) => `#${id}`).join(', ')}`);
      }
      const byMailbox = new Map<string, Set<number>>();
      for (const f of found)
        byMailbox.set(f.mailbox_name, (byMailbox.get(f.mailbox_name) ?? new Set()).add(f.id));
      const results: MoveToInboxResult[] = [];
      for (const [name, only] of byMailbox) results.push(await moveToInbox(deps, repo, name, only));
      return results;
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
async function moveToInbox(
  deps: ErrorMailsDeps,
  repo: ErrorMailRepo,
  name: string,
  /** Only these error mails (the others stay in the folder); absent: all of the mailbox's. */
  only?: ReadonlySet<number>,
): Promise<MoveToInboxResult> {
  const mailbox = await deps.mailbox(name);
  const { store, lease } = deps;
  const hold = await lease.acquire(mailbox.id);
  if (!hold) {
    throw new MailintakeError('MAILBOX_BUSY', `mailbox "${name}" is being fetched right now; try again`);
  }
  try {
    const open = (await repo.openOf(mailbox.id)).filter((r) => !only || only.has(r.id));
    const moved: number[] = [];
    const notFound: number[] = [];
    for (const r of open.filter((x) => x.location === 'kept-locally')) moved.push(r.id);
    const onServer = open.filter((x) => x.location === 'server-folder');
    if (onServer.length > 0) {
      const connector = deps.connect(mailbox.settings, mailbox);
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
        await repo.markMovedToInbox(tx, ids);
      }
      await systemLog(tx, {
        level: 'info',
        category: 'error-folder',
        message: `mailbox ${name}: ${moved.length} error mails moved to the inbox${notFound.length ? `, ${notFound.length} no longer in the error folder` : ''}`,
        details: { mailbox: name, change: 'moved-to-inbox', moved, notFound },
      });
    });
    return { mailbox: name, moved, notFound, remaining: await repo.countOpen(mailbox.id) };
  } finally {
    await hold.release().catch(() => undefined);
  }
}

function errorMailView(r: ErrorMailRow): ErrorMailView {
  return {
    id: r.id,
    mailbox: r.mailbox_name,
    portal: r.portal_name,
    serverIdentity: r.server_identity,
    errorCode: r.error_code,
    errorMessage: errorMessage(r),
    location: r.location === 'kept-locally' ? 'kept-locally' : 'server-folder',
    folder: r.folder,
    status: r.status === 'moved-to-inbox' ? 'moved-to-inbox' : 'in-error-folder',
    rawAvailable: r.raw_blob !== null,
    createdAt: r.created_at,
    movedBackAt: r.moved_back_at,
  };
}

/** The failed attempt's message, from the intake log's reasons (null once the mail was taken in again). */
function errorMessage(r: ErrorMailRow): string | null {
  if (r.error_reasons === null) return null;
  const reasons = storedStrings(r.error_reasons, { table: 'intake_log', column: 'reasons' });
  return reasons.length > 0 ? reasons.join('; ') : null;
}

async function assertPortalExists(store: Store, name: string): Promise<void> {
  const row = await store.db.selectFrom('portals').select('id').where('name', '=', name).executeTakeFirst();
  if (!row) {
    throw new MailintakeError('NOT_FOUND', `no portal named "${name}"`, {
      details: { fields: [{ field: 'portal', message: `no portal named "${name}"` }] },
    });
  }
}
