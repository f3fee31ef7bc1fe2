import { PassThrough, Readable } from 'node:stream';
import { simpleParser } from 'mailparser';
import type { AfterFetch, Connector, ConnectorTraits, RemoteMail } from '../connectors/connector.js';
import type { MailboxSettings } from '../connectors/settings.js';
import { DEFAULT_ERROR_FOLDER } from '../connectors/settings.js';
import {
  ERROR_HELP,
  type ErrorCode,
  MailintakeError,
  roundRuleOf,
  toMailintakeError,
} from '../kernel/errors.js';
import { failpoint } from '../kernel/failpoints.js';
import { ERROR_REPORT_HEADER_SCAN_BYTES as HEADER_SCAN_BYTES, SQL_IN_LIST_MAX } from '../kernel/limits.js';
import type { Logger } from '../kernel/logger.js';
import type { SecretBox } from '../kernel/secret-box.js';
import { consolePaths } from '../notify/links.js';
import type { Notifier } from '../notify/notifier.js';
import type { BlobStore } from '../store/blobs/blob-store.js';
import type { RawPacks } from '../store/blobs/raw-packs.js';
import type { Store } from '../store/db.js';
import { nowIso } from '../store/db.js';
import { storedStrings } from '../store/stored-json.js';
import { systemLog } from '../store/system-log.js';
import { type Tx, withTransaction } from '../store/tx.js';
import type { IntakeMailbox } from './intake-mailbox.js';
import type { MailOutcome } from './outcome.js';

/**
 * The reference's error folder ("Move messages to error folder"), per mailbox.
 *
 * A mail whose processing failed with a code a retry cannot fix (rule `error-folder` in kernel/errors.ts
 * ROUND_RULES: PARSE_FAILED, MAIL_TOO_LARGE…; `retry-mail` codes are retried instead) is, when the mailbox has
 * `moveToErrorFolder` on:
 * 1. reported: mail details and the exception, as JSON sealed with the secret box (AES-256-GCM) into a blob;
 *    POP3 also seals the raw mail, because it has no folder to keep it in;
 * 2. recorded, in ONE transaction: the `error_mails` row, a system-log entry (category `error-folder`), the
 *    `mail-error` notice (when `notifyOnErrorFolder`), and — when the open rows reach `stopAfterErrors` — the
 *    mailbox disabled with reason `error-folder-limit`, with its own entry and bell notice;
 * 3. moved aside on the server: IMAP/Graph/EWS move it to `errorFolder` (created when missing); POP3 deletes
 *    it, now that the sealed copy is committed.
 *
 * Record before move, so a crash in between never loses the report; the partial unique index on (mailbox,
 * server identity) of open rows and the look-up below make the next round only finish the move when it lists
 * the mail again — one row, one log entry, one notice. A crash before the record leaves an `error` row in the
 * intake log and no error row: the next round reports and moves the mail then.
 *
 * "Move mails to inbox" (features/error-mails/service.ts) sets the rows to `moved-to-inbox` (the count is the open
 * rows, so it resets once all are back). IMAP gives the moved mails new UIDs, which the intake log has never
 * seen; Graph keeps their ids, so `released` tells the loop to take such an identity in again; POP3's kept
 * copies are offered by `inbox` as mails of their own (`kept;<row id>`) until one has an outcome.
 */

/** What the loop hands the route for one round. */
export interface ErrorRouteContext {
  connector: Connector;
  mailbox: IntakeMailbox;
  settings: MailboxSettings;
  notifier?: Notifier | undefined;
}

/** A mail that failed; `error` is null for one that failed in an earlier round (read from the intake log). */
export interface FailedMail {
  mail: RemoteMail;
  error: MailintakeError | null;
}

export interface RouteResult {
  /**
   * Per mail: moved to the error folder (or, POP3, kept and deleted) in this call; or left where it is, as the
   * mailbox does not move failed mail aside (`skipped` when it failed in an earlier round, `left` this round).
   */
  outcomes: RouteOutcome[];
  /** The mailbox reached its error-folder limit: the round must end now. */
  stop: boolean;
  /**
   * The server refused the move (ACK_FAILED): the mails are recorded and stay in the inbox until a later round
   * finishes the move. Returned, not thrown, so that the round goes on with the other mails (a bad folder name
   * must not block the mailbox) and reports it at its end. A lost connection is thrown as usual.
   */
  moveError?: MailintakeError;
}

export interface ErrorRoute {
  /** Sorts failed mails aside (see above). Throws a coded error when the server refused the move. */
  route(c: ErrorRouteContext, failed: FailedMail[]): Promise<RouteResult>;
  /**
   * Of mails that failed before (identity and when their intake-log row was last written), those an admin moved
   * back to the inbox since: the loop takes them in again. Needed where a move keeps the identity (Graph).
   */
  released?(mailboxId: number, failed: { identity: string; failedAt: string }[]): Promise<Set<string>>;
  /** The connector a round reads through: POP3's kept error mails, once moved back, are offered with the server's. */
  inbox?(connector: Connector, mailbox: IntakeMailbox): Connector;
}

/** What the error route made of one failed mail. */
export type RouteOutcome = Extract<MailOutcome, { outcome: 'moved-to-error-folder' | 'left' | 'skipped' }>;

/** A failed mail left where it is: `skipped` when it failed in an earlier round (its error is read from the log). */
function leftOutcome(f: FailedMail): RouteOutcome {
  return { outcome: f.error === null ? 'skipped' : 'left', identity: f.mail.identity };
}

/** The behaviour without an error folder: a failed mail stays where it is, and later rounds skip it. */
export const leaveOnServer: ErrorRoute = {
  route: async (_c, failed) => ({ outcomes: failed.map(leftOutcome), stop: false }),
};

/** The report sealed for every error mail. */
export interface ErrorReport {
  format: 'mailintake-error-report/1';
  mailbox: string;
  protocol: string;
  serverIdentity: string;
  /** The intake-log entry of the failed attempt. */
  intakeLogId: number | null;
  failedAt: string | null;
  reportedAt: string;
  movedTo: { location: 'server-folder'; folder: string } | { location: 'kept-locally' };
  mail: {
    from: string | null;
    to: string | null;
    cc: string | null;
    subject: string | null;
    date: string | null;
    messageId: string | null;
    size: number | null;
    rawSha256: string | null;
    /** Why the details are missing, when the headers could not be read. */
    headerProblem?: string;
  };
  error: {
    code: string;
    message: string;
    /** What to check (the documented help of the code). */
    help: string | null;
    /** The chain of causes, outermost first, as `Name: message`. */
    causes: string[];
    details: Record<string, unknown>;
  };
}

export const KEPT_PREFIX = 'kept;';

export interface ErrorFolderDeps {
  store: Store;
  blobs: BlobStore;
  rawPacks: RawPacks;
  box: SecretBox;
  logger: Logger;
}

interface IntakeRow {
  id: number;
  error_code: string | null;
  reasons: string;
  raw_sha256: string | null;
  raw_pack: string | null;
  raw_offset: number | null;
  raw_length: number | null;
  size: number | null;
  subject: string | null;
  from_address: string | null;
  updated_at: string;
}

export class ErrorFolder implements ErrorRoute {
  constructor(private readonly deps: ErrorFolderDeps) {}

  async route(c: ErrorRouteContext, failed: FailedMail[]): Promise<RouteResult> {
    const result: RouteResult = { outcomes: [], stop: false };
    const toMove: { mail: RemoteMail; folder: string | null }[] = [];
    for (const f of failed) {
      // Recorded already: in the error folder (the move is still to do), or — POP3 — kept by us, whatever its
      // status: the server's copy only needs deleting, the kept one is what "move to inbox" takes in again.
      const open = await this.deps.store.db
        .selectFrom('error_mails')
        .select(['id', 'folder'])
        .where('mailbox_id', '=', c.mailbox.id)
        .where('server_identity', '=', f.mail.identity)
        .where((eb) => eb.or([eb('status', '=', 'in-error-folder'), eb('location', '=', 'kept-locally')]))
        .executeTakeFirst();
      if (open) {
        // recorded in an earlier round that ended before the move (crash, refused move): only finish it
        toMove.push({ mail: f.mail, folder: open.folder });
        continue;
      }
      if (!c.settings.moveToErrorFolder) {
        result.outcomes.push(leftOutcome(f));
        continue;
      }
      const recorded = await this.record(c, f);
      if (recorded.folder !== undefined) toMove.push({ mail: f.mail, folder: recorded.folder });
      if (recorded.stop) {
        result.stop = true;
        break; // the mails after it stay untouched until the mailbox is enabled again
      }
    }
    if (toMove.length > 0) failpoint('after-error-record');
    try {
      await this.moveAside(c, toMove);
      for (const { mail } of toMove)
        result.outcomes.push({ outcome: 'moved-to-error-folder', identity: mail.identity });
    } catch (err) {
      const coded = toMailintakeError(err, 'ACK_FAILED');
      if (coded.code !== 'ACK_FAILED') throw coded;
      result.moveError = coded;
      this.deps.logger.warn('error mails recorded, but the server refused to move them', {
        mailbox: c.mailbox.name,
        count: toMove.length,
        error: coded.message,
      });
    }
    return result;
  }

  /** Writes report, row, log entry and notices; `folder` undefined when the row was there already. */
  private async record(
    c: ErrorRouteContext,
    f: FailedMail,
  ): Promise<{ folder?: string | null; stop: boolean }> {
    const { store, blobs, box } = this.deps;
    const intake = await this.intakeRow(c.mailbox.id, f.mail.identity);
    const error =
      f.error ??
      new MailintakeError(
        (intake?.error_code ?? 'INTERNAL') as ErrorCode,
        storedStrings(intake?.reasons ?? '[]', { table: 'intake_log', column: 'reasons' })[0] ??
          'failed in an earlier round',
      );
    const folders = c.connector.traits.folders;
    const folder = folders ? (c.settings.errorFolder ?? DEFAULT_ERROR_FOLDER) : null;
    const kept = f.mail.identity.startsWith(KEPT_PREFIX) ? await this.keptRow(c.mailbox.id, f.mail) : null;

    // Sealed blobs first (durable before the row names them), outside the transaction: no I/O holds the lock.
    let rawBlob: string | null = null;
    if (!folders) {
      rawBlob = kept?.raw_blob ?? (await this.sealRaw(c.connector, f.mail, intake));
    }
    const report = await this.report(c, f.mail, error, intake, folder);
    const reportBlob = (await blobs.put(Readable.from([box.sealBytes(Buffer.from(JSON.stringify(report)))])))
      .sha256;
    const entry: ErrorEntry = {
      mail: f.mail,
      error,
      report,
      reportBlob,
      rawBlob,
      folder,
      intakeLogId: intake?.id ?? null,
    };
    const outcome = await withTransaction(store, async (tx) => {
      if (!(await insertErrorMail(tx, c, entry))) return { inserted: false, stop: false };
      return { inserted: true, stop: await reachedLimit(tx, c) };
    });
    if (!outcome.inserted) return { stop: false };
    c.notifier?.kick();
    this.deps.logger.warn('mail moved to the error folder', {
      mailbox: c.mailbox.name,
      identity: f.mail.identity,
      code: error.code,
      ...(outcome.stop ? { stopped: 'error-folder-limit' } : {}),
    });
    return { folder, stop: outcome.stop };
  }

  /** The failed attempt's intake-log row: the error, the raw copy and the mail's details for the report. */
  private intakeRow(mailboxId: number, identity: string): Promise<IntakeRow | undefined> {
    return this.deps.store.db
      .selectFrom('intake_log')
      .select([
        'id',
        'error_code',
        'reasons',
        'raw_sha256',
        'raw_pack',
        'raw_offset',
        'raw_length',
        'size',
        'subject',
        'from_address',
        'updated_at',
      ])
      .where('mailbox_id', '=', mailboxId)
      .where('server_identity', '=', identity)
      .executeTakeFirst();
  }

  /** The server side, after the records committed: move to the error folder, or (POP3) delete. */
  private async moveAside(
    c: ErrorRouteContext,
    mails: { mail: RemoteMail; folder: string | null }[],
  ): Promise<void> {
    if (mails.length === 0) return;
    try {
      if (c.connector.traits.folders) {
        const byFolder = new Map<string, RemoteMail[]>();
        for (const m of mails) {
          const folder = m.folder ?? c.settings.errorFolder ?? DEFAULT_ERROR_FOLDER;
          byFolder.set(folder, [...(byFolder.get(folder) ?? []), m.mail]);
        }
        for (const [folder, list] of byFolder) await c.connector.moveTo(list, folder);
      } else {
        // The sealed copy is committed: the server's copy may go. Kept copies have no server side.
        const onServer = mails.map((m) => m.mail).filter((m) => !m.identity.startsWith(KEPT_PREFIX));
        if (onServer.length > 0) await c.connector.acknowledge(onServer, { action: 'delete' });
      }
    } catch (err) {
      const coded = toMailintakeError(err, 'ACK_FAILED');
      // Recorded already: the next round lists these mails again and only finishes the move.
      throw coded.code === 'ACK_FAILED' || roundRuleOf(coded) === 'stop-round'
        ? coded
        : new MailintakeError('ACK_FAILED', coded.message, { cause: err });
    }
  }

  async released(mailboxId: number, failed: { identity: string; failedAt: string }[]): Promise<Set<string>> {
    const out = new Set<string>();
    const failedAt = new Map(failed.map((f) => [f.identity, f.failedAt]));
    const identities = [...failedAt.keys()];
    for (let i = 0; i < identities.length; i += SQL_IN_LIST_MAX) {
      const rows = await this.deps.store.db
        .selectFrom('error_mails')
        .select(['server_identity', 'status', 'moved_back_at'])
        .where('mailbox_id', '=', mailboxId)
        // POP3's kept copies come back as mails of their own (`inbox`); the server's copy is never released
        .where('location', '=', 'server-folder')
        .where('server_identity', 'in', identities.slice(i, i + SQL_IN_LIST_MAX))
        .orderBy('id')
        .execute();
      const latest = new Map<string, (typeof rows)[number]>();
      for (const r of rows) latest.set(r.server_identity, r);
      for (const [identity, r] of latest) {
        // moved back after the attempt that failed: the admin released it; a later failure has its own row
        if (r.status === 'moved-to-inbox' && r.moved_back_at && r.moved_back_at >= failedAt.get(identity)!) {
          out.add(identity);
        }
      }
    }
    return out;
  }

  inbox(connector: Connector, mailbox: IntakeMailbox): Connector {
    if (connector.traits.folders) return connector;
    return new KeptMailsConnector(connector, mailbox.id, this.deps);
  }

  private async keptRow(mailboxId: number, mail: RemoteMail) {
    const id = Number(mail.identity.slice(KEPT_PREFIX.length));
    return this.deps.store.db
      .selectFrom('error_mails')
      .select(['id', 'raw_blob'])
      .where('id', '=', id)
      .where('mailbox_id', '=', mailboxId)
      .executeTakeFirst();
  }

  /** POP3: the raw mail, sealed into a blob, from our raw copy (or the server when the copy is missing). */
  private async sealRaw(
    connector: Connector,
    mail: RemoteMail,
    intake: IntakeRow | undefined,
  ): Promise<string> {
    const source = intake?.raw_sha256 ? this.rawCopy(intake) : await connector.stream(mail);
    const sealer = this.deps.box.sealStream();
    source.once('error', (err) => sealer.destroy(err));
    return (await this.deps.blobs.put(source.pipe(sealer))).sha256;
  }

  private rawCopy(intake: IntakeRow): Readable {
    if (intake.raw_pack !== null && intake.raw_offset !== null && intake.raw_length !== null) {
      return this.deps.rawPacks.open({
        pack: intake.raw_pack,
        offset: intake.raw_offset,
        length: intake.raw_length,
      });
    }
    return this.deps.blobs.get(intake.raw_sha256!);
  }

  private async report(
    c: ErrorRouteContext,
    mail: RemoteMail,
    error: MailintakeError,
    intake: IntakeRow | undefined,
    folder: string | null,
  ): Promise<ErrorReport> {
    let headers: Awaited<ReturnType<typeof readHeaders>>;
    try {
      const source = intake?.raw_sha256 ? this.rawCopy(intake) : await c.connector.stream(mail);
      headers = await readHeaders(source);
    } catch (err) {
      headers = {
        problem: `the headers could not be read: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
    const causes: string[] = [];
    for (let e: unknown = error.cause, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
      causes.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      e = e instanceof Error ? e.cause : undefined;
    }
    return {
      format: 'mailintake-error-report/1',
      mailbox: c.mailbox.name,
      protocol: c.settings.protocol,
      serverIdentity: mail.identity,
      intakeLogId: intake?.id ?? null,
      failedAt: intake?.updated_at ?? null,
      reportedAt: nowIso(),
      movedTo: folder ? { location: 'server-folder', folder } : { location: 'kept-locally' },
      mail: {
        from: headers.from ?? intake?.from_address ?? null,
        to: headers.to ?? null,
        cc: headers.cc ?? null,
        subject: headers.subject ?? intake?.subject ?? null,
        date: headers.date ?? null,
        messageId: headers.messageId ?? null,
        size: intake?.size ?? mail.size ?? null,
        rawSha256: intake?.raw_sha256 ?? null,
        ...(headers.problem ? { headerProblem: headers.problem } : {}),
      },
      error: {
        code: error.code,
        message: error.message,
        help: (ERROR_HELP as Record<string, string>)[error.code] ?? null,
        causes,
        details: { ...error.details },
      },
    };
  }
}

function describe(report: ErrorReport): string {
  const parts = [report.mail.from ? `from ${report.mail.from}` : null, report.mail.messageId];
  const said = parts.filter(Boolean).join(' ');
  return said ? `${report.serverIdentity} (${said})` : report.serverIdentity;
}

/**
 * From, To, Cc, Subject, Date and Message-ID of a raw mail, read from its first bytes only: the mail may be
 * the 100 MB one that failed for its size, or one whose MIME structure is broken (the header block still
 * tells who sent what). A header block longer than the scan is cut at its last whole line.
 */
async function readHeaders(source: Readable): Promise<{
  from?: string | null;
  to?: string | null;
  cc?: string | null;
  subject?: string | null;
  date?: string | null;
  messageId?: string | null;
  problem?: string;
}> {
  const parts: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of source) {
      parts.push(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (length >= HEADER_SCAN_BYTES) break;
    }
  } finally {
    source.destroy();
  }
  let head = Buffer.concat(parts).subarray(0, HEADER_SCAN_BYTES);
  const end = head.indexOf('\r\n\r\n') >= 0 ? head.indexOf('\r\n\r\n') : head.indexOf('\n\n');
  if (end >= 0) head = head.subarray(0, end);
  else {
    const lastLine = head.lastIndexOf('\n');
    head = head.subarray(0, Math.max(lastLine, 0));
  }
  const parsed = await simpleParser(Buffer.concat([head, Buffer.from('\r\n\r\n')]), {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
  });
  const text = (a: unknown): string | null => {
    if (!a) return null;
    const list = Array.isArray(a) ? a : [a];
    return list.map((x) => (x as { text?: string }).text ?? '').join(', ') || null;
  };
  return {
    from: text(parsed.from),
    to: text(parsed.to),
    cc: text(parsed.cc),
    subject: parsed.subject ?? null,
    date: parsed.date ? parsed.date.toISOString() : null,
    messageId: parsed.messageId ? parsed.messageId.replace(/^<|>$/g, '') : null,
  };
}

/** What `RemoteMail.handle` holds for a kept mail. */
interface KeptHandle {
  errorMailId: number;
  rawBlob: string;
}

/**
 * POP3 has no folders, so its error folder is ours: the sealed raw copies. Once an admin moved them "to the
 * inbox", they are offered to the round here, before the server's mails, as mails of their own
 * (`kept;<error row id>`, a fresh identity for the intake log), until one has an outcome: taken in, or
 * recorded as failed again. Reading one opens the sealed copy; acknowledging one changes nothing anywhere
 * (its intake-log row is the record). Everything else goes to the server's connector.
 */
export class KeptMailsConnector implements Connector {
  readonly traits: ConnectorTraits;
  readonly fetchMany?: (mails: RemoteMail[]) => Promise<Map<string, Buffer>>;

  constructor(
    private readonly inner: Connector,
    private readonly mailboxId: number,
    private readonly deps: Pick<ErrorFolderDeps, 'store' | 'blobs' | 'box'>,
  ) {
    this.traits = inner.traits;
    const many = inner.fetchMany?.bind(inner);
    if (many) {
      this.fetchMany = async (mails) => {
        const out = await many(mails.filter((m) => !isKept(m)));
        for (const m of mails.filter(isKept)) {
          const parts: Buffer[] = [];
          for await (const chunk of await this.stream(m)) parts.push(chunk as Buffer);
          out.set(m.identity, Buffer.concat(parts));
        }
        return out;
      };
    }
  }

  open(): Promise<void> {
    return this.inner.open();
  }

  async listNew(): Promise<RemoteMail[]> {
    return [...(await this.listKept()), ...(await this.inner.listNew())];
  }

  private async listKept(): Promise<RemoteMail[]> {
    const { store } = this.deps;
    const rows = await store.db
      .selectFrom('error_mails')
      .select(['id', 'raw_blob'])
      .where('mailbox_id', '=', this.mailboxId)
      .where('location', '=', 'kept-locally')
      .where('status', '=', 'moved-to-inbox')
      .where('raw_blob', 'is not', null)
      .orderBy('id')
      .execute();
    if (rows.length === 0) return [];
    const done = new Set<string>();
    const identities = rows.map((r) => `${KEPT_PREFIX}${r.id}`);
    for (let i = 0; i < identities.length; i += SQL_IN_LIST_MAX) {
      const slice = identities.slice(i, i + SQL_IN_LIST_MAX);
      // taken in (any outcome but a retryable or unrecorded error), or failed again and recorded as such
      for (const r of await store.db
        .selectFrom('intake_log')
        .select('server_identity')
        .where('mailbox_id', '=', this.mailboxId)
        .where('server_identity', 'in', slice)
        .where('outcome', '!=', 'error')
        .execute())
        done.add(r.server_identity);
      for (const r of await store.db
        .selectFrom('error_mails')
        .select('server_identity')
        .where('mailbox_id', '=', this.mailboxId)
        .where('server_identity', 'in', slice)
        .execute())
        done.add(r.server_identity);
    }
    return rows
      .filter((r) => !done.has(`${KEPT_PREFIX}${r.id}`))
      .map((r) => ({
        identity: `${KEPT_PREFIX}${r.id}`,
        handle: { errorMailId: r.id, rawBlob: r.raw_blob! } satisfies KeptHandle,
      }));
  }

  async stream(mail: RemoteMail): Promise<Readable> {
    if (!isKept(mail)) return this.inner.stream(mail);
    const { rawBlob } = mail.handle as KeptHandle;
    const sealed = this.deps.blobs.get(rawBlob);
    const opener = this.deps.box.openStream();
    const out = new PassThrough();
    // A copy that does not open (another key, damage) must fail the mail, not end the round: a coded
    // STORE_FAILED is retried next round (after the admin configured the previous key).
    const fail = (err: Error) =>
      out.destroy(
        new MailintakeError(
          'STORE_FAILED',
          `the kept copy of ${mail.identity} cannot be read: ${err.message}`,
          {
            cause: err,
          },
        ),
      );
    sealed.once('error', fail);
    opener.once('error', fail);
    sealed.pipe(opener).pipe(out);
    return out;
  }

  async acknowledge(mails: RemoteMail[], action: AfterFetch): Promise<void> {
    const onServer = mails.filter((m) => !isKept(m));
    if (onServer.length > 0) await this.inner.acknowledge(onServer, action);
  }

  async moveTo(mails: RemoteMail[], folder: string): Promise<void> {
    const onServer = mails.filter((m) => !isKept(m));
    if (onServer.length > 0) await this.inner.moveTo(onServer, folder);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

function isKept(mail: RemoteMail): boolean {
  return mail.identity.startsWith(KEPT_PREFIX);
}

/** One error mail, its report sealed and stored, ready for its row. */
interface ErrorEntry {
  mail: RemoteMail;
  error: MailintakeError;
  report: ErrorReport;
  reportBlob: string;
  rawBlob: string | null;
  folder: string | null;
  intakeLogId: number | null;
}

/**
 * The error mail's row, its system-log entry and its `mail-error` notice, in the caller's transaction. False when
 * an open row was there already (a racing round recorded it): nothing is written twice.
 */
async function insertErrorMail(tx: Tx, c: ErrorRouteContext, e: ErrorEntry): Promise<boolean> {
  const already = await tx
    .selectFrom('error_mails')
    .select('id')
    .where('mailbox_id', '=', c.mailbox.id)
    .where('server_identity', '=', e.mail.identity)
    .where('status', '=', 'in-error-folder')
    .executeTakeFirst();
  if (already) return false;
  const location = e.folder === null ? 'kept-locally' : 'server-folder';
  await tx
    .insertInto('error_mails')
    .values({
      mailbox_id: c.mailbox.id,
      server_identity: e.mail.identity,
      error_code: e.error.code,
      location,
      folder: e.folder,
      report_blob: e.reportBlob,
      raw_blob: e.rawBlob,
      status: 'in-error-folder',
      created_at: nowIso(),
      moved_back_at: null,
    })
    .execute();
  const where = e.folder ? `the error folder "${e.folder}"` : 'the error mails kept by Mailintake (POP3)';
  await systemLog(tx, {
    level: 'warn',
    category: 'error-folder',
    message: `mailbox ${c.mailbox.name}: mail ${describe(e.report)} failed with ${e.error.code} and was moved to ${where}`,
    details: {
      mailbox: c.mailbox.name,
      serverIdentity: e.mail.identity,
      code: e.error.code,
      error: e.error.message,
      location,
      folder: e.folder,
      intakeLogId: e.intakeLogId,
    },
  });
  if (c.settings.notifyOnErrorFolder && c.notifier && !(await heldBackBefore(tx, c, e))) {
    await c.notifier.record(tx, {
      event: 'mail-error',
      portalId: c.mailbox.portalId,
      mailboxId: c.mailbox.id,
      link: consolePaths.errorFolder(c.mailbox.name),
      title: `Mail moved to the error folder of ${c.mailbox.name}`,
      body:
        `A mail could not be processed and was moved to ${where}.\n` +
        `From: ${e.report.mail.from ?? '(unknown)'}\nSubject: ${e.report.mail.subject ?? '(unknown)'}\n` +
        `Error: ${e.error.code}: ${e.error.message}\n\n` +
        `Fix the cause, then use "move mails to inbox" (mailintake errors move-to-inbox ${c.mailbox.name}); ` +
        `the full report is in "mailintake errors list --mailbox ${c.mailbox.name}".`,
      email: true,
    });
  }
  return true;
}

/**
 * A RATE_LIMITED mail while others held back by the per-sender limit are still open in this mailbox's error
 * folder: the admin was told at the first of them, and a runaway sender must not become a runaway of our own
 * notification mails. Each one still has its row, its system-log entry and its place in the error folder list.
 */
async function heldBackBefore(tx: Tx, c: ErrorRouteContext, e: ErrorEntry): Promise<boolean> {
  if (e.error.code !== 'RATE_LIMITED') return false;
  const other = await tx
    .selectFrom('error_mails')
    .select('id')
    .where('mailbox_id', '=', c.mailbox.id)
    .where('status', '=', 'in-error-folder')
    .where('error_code', '=', 'RATE_LIMITED')
    .where('server_identity', '!=', e.mail.identity)
    .executeTakeFirst();
  return other !== undefined;
}

/**
 * "Stop mail fetching after N mails": true when the open error mails reached the limit; the mailbox is then
 * disabled (if it still is enabled) with its entry and bell notice, in the caller's transaction. The round
 * ends there, also when the mailbox was disabled already (a manual round).
 * RATE_LIMITED mails do not count: they are the per-sender limit working, not the mailbox failing, and counting
 * them would let one runaway sender stop the mailbox for every other customer.
 */
async function reachedLimit(tx: Tx, c: ErrorRouteContext): Promise<boolean> {
  const limit = c.settings.stopAfterErrors;
  if (limit === undefined) return false;
  const { n } = await tx
    .selectFrom('error_mails')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('mailbox_id', '=', c.mailbox.id)
    .where('status', '=', 'in-error-folder')
    .where('error_code', '!=', 'RATE_LIMITED')
    .executeTakeFirstOrThrow();
  if (Number(n) < limit) return false;
  const mailbox = await tx
    .selectFrom('mailboxes')
    .select('enabled')
    .where('id', '=', c.mailbox.id)
    .executeTakeFirstOrThrow();
  if (mailbox.enabled === 1) await stopByErrors(tx, c, Number(n), limit);
  return true;
}

async function stopByErrors(tx: Tx, c: ErrorRouteContext, count: number, limit: number): Promise<void> {
  await tx
    .updateTable('mailboxes')
    .set({ enabled: 0, disabled_reason: 'error-folder-limit', updated_at: nowIso() })
    .where('id', '=', c.mailbox.id)
    .execute();
  await systemLog(tx, {
    level: 'error',
    category: 'error-folder',
    message: `mailbox ${c.mailbox.name}: fetching stopped, ${count} mails are in the error folder (limit ${limit})`,
    details: { mailbox: c.mailbox.name, change: 'stopped-by-errors', count, limit },
  });
  if (!c.notifier) return;
  await c.notifier.record(tx, {
    event: 'mail-error',
    portalId: c.mailbox.portalId,
    mailboxId: c.mailbox.id,
    link: consolePaths.errorFolder(c.mailbox.name),
    title: `Mail fetching stopped for ${c.mailbox.name}`,
    body:
      `${count} mails are in the error folder of ${c.mailbox.name}, the limit set in "stop mail ` +
      `fetching after ${limit} mails". No mail is fetched from this mailbox until an admin enables it ` +
      `again (mailintake mailbox enable ${c.mailbox.name}); fix the cause and move the mails to the ` +
      `inbox first, or fetching stops again at the next failing mail.`,
    bell: true,
    email: c.settings.notifyOnErrorFolder,
  });
}
