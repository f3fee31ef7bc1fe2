import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { ImapFlow, type MessageStructureObject } from 'imapflow';
import { type ErrorCode, MailintakeError } from '../../kernel/errors.js';
import { failpoint } from '../../kernel/failpoints.js';
import { IMAP_MAX_RANGES_PER_COMMAND as MAX_RANGES_PER_COMMAND } from '../../kernel/limits.js';
import type { AccessTokenSource } from '../../oauth/token-source.js';
import { applyAfterFetch } from '../acknowledge.js';
import type {
  AfterFetch,
  Connector,
  ConnectorTraits,
  RemoteMail,
  SampleMail,
  WantedMail,
} from '../connector.js';
import type { MailboxSettings } from '../settings.js';
import { imapError, type RawError } from './errors.js';
import { type ConnectorLogger, type ImapTimeouts, imapServerLabel, validateImapTimeouts } from './options.js';
import { buildImapFlowOptions, connectImap, imapTokenSource, loadImapCa } from './session.js';

/**
 * IMAP (RFC 9051 / RFC 3501) connector on imapflow.
 *
 * Protocol choices, and why:
 * - Mail is addressed by UID only (`uid: true` on every command). Sequence numbers shift whenever another
 *   client expunges, so a "mark 5 as read" could hit a different mail; a UID never moves within one
 *   UIDVALIDITY (RFC 9051 §2.3.1.1). The identity is `${folder};${UIDVALIDITY};${UID}`: when the server resets
 *   UIDVALIDITY (mailbox recreated, Exchange/Dovecot index rebuilt) the old identities no longer match, and the
 *   loop's Message-ID + hash fallback decides instead.
 * - Nothing here changes a flag except acknowledge/moveTo: reading uses BODY.PEEK[] (imapflow's `source` and
 *   `download()` both peek), so a crash between reading and committing leaves the mail unseen.
 * - Delete is `STORE +FLAGS \Deleted` then `UID EXPUNGE <uids>` (UIDPLUS, RFC 4315). A plain EXPUNGE would
 *   also remove mails another client (or a person) flagged \Deleted, so without UIDPLUS we refuse instead.
 * - OAuth 2.0 (`auth: "oauth2"`): imapflow authenticates with OAUTHBEARER (RFC 7628) when the server offers
 *   it, else XOAUTH2 (Google, Microsoft). A refused token is renewed once and the login tried once more on a
 *   new connection (see connectImap); the token never reaches a message, a log line or the details.
 */

export interface ImapConnectorOptions {
  logger?: ConnectorLogger;
  /** A private CA (PEM) to trust in addition to the system's. Overrides settings.caFile. */
  ca?: Buffer;
  timeouts?: ImapTimeouts;
  /** Where OAuth 2.0 access tokens come from; required when `settings.auth` is "oauth2", unused otherwise. */
  tokens?: AccessTokenSource;
}

/** What `RemoteMail.handle` holds for IMAP. */
export interface ImapHandle {
  uid: number;
  uidValidity: string;
}

export class ImapConnector implements Connector {
  readonly traits: ConnectorTraits = { keepAction: 'mark-read', listsKeptMail: false, folders: true };
  private readonly settings: MailboxSettings;
  private readonly logger: ConnectorLogger | undefined;
  private readonly caOption: Buffer | undefined;
  private readonly timeouts: Required<ImapTimeouts>;
  private readonly folder: string;
  private readonly tokens: AccessTokenSource | undefined;
  private client: ImapFlow | null = null;
  private uidValidity: string | null = null;
  /** The last error imapflow emitted on its own (socket timeout, reset): explains a later "no connection". */
  private lastConnectionError: RawError | null = null;

  constructor(settings: MailboxSettings, opts: ImapConnectorOptions = {}) {
    this.settings = settings;
    this.logger = opts.logger;
    this.caOption = opts.ca;
    this.timeouts = validateImapTimeouts(opts.timeouts);
    this.folder = settings.folder || 'INBOX';
    this.tokens = imapTokenSource(settings, opts.tokens);
  }

  private get where(): string {
    return imapServerLabel(this.settings);
  }

  async open(): Promise<void> {
    if (this.client) await this.close();
    const ca = await loadImapCa(this.settings, this.caOption);
    const make = (accessToken: string | undefined) => {
      const client = new ImapFlow(
        buildImapFlowOptions(this.settings, {
          ...(ca ? { ca } : {}),
          ...(this.logger ? { logger: this.logger } : {}),
          timeouts: this.timeouts,
          ...(accessToken !== undefined ? { accessToken } : {}),
        }),
      );
      // imapflow emits 'error' for failures outside a command (socket timeout, reset); without a listener
      // Node would crash the process. The command in progress rejects on its own; keep the cause for its
      // message.
      client.on('error', (err: RawError) => {
        this.lastConnectionError = err;
        this.logger?.warn('IMAP connection error', { server: this.where, code: err.code });
      });
      this.lastConnectionError = null;
      return client;
    };
    this.client = await connectImap(this.settings, this.tokens, make, (err, accessTokens) =>
      imapError(err, {
        settings: this.settings,
        step: 'connecting and logging in',
        timeouts: this.timeouts,
        established: false,
        lastConnectionError: this.lastConnectionError,
        accessTokens,
        ...(this.logger ? { logger: this.logger } : {}),
      }),
    );
    try {
      await this.select();
    } catch (err) {
      // open() either leaves a usable session or none: no half-open connection for the caller to forget
      await this.close();
      throw err;
    }
  }

  /** SELECT the folder (read-write: acknowledge needs it) and remember its UIDVALIDITY. */
  private async select(): Promise<ImapFlow> {
    const client = this.requireClient();
    const step = `opening folder "${this.folder}"`;
    let box: Awaited<ReturnType<ImapFlow['mailboxOpen']>> | undefined;
    try {
      box = await client.mailboxOpen(this.folder);
    } catch (err) {
      throw this.toError(err, step, 'FOLDER_NOT_FOUND');
    }
    // imapflow answers undefined instead of throwing when the session is no longer logged in
    if (!box) throw this.toError(this.lastConnectionError ?? { code: 'NoConnection' }, step);
    this.uidValidity = box.uidValidity.toString();
    return client;
  }

  private requireClient(): ImapFlow {
    if (!this.client) {
      throw new MailintakeError(
        'PROTOCOL_ERROR',
        `Not connected to ${this.where}: open() was not called or failed`,
        {
          retryable: false,
        },
      );
    }
    return this.client;
  }

  private identity(uid: number, uidValidity: string): string {
    return `${this.folder};${uidValidity};${uid}`;
  }

  async listNew(): Promise<RemoteMail[]> {
    // SELECT again rather than trusting the selected state: it is a full resync (mails that arrived meanwhile,
    // RFC 9051 §6.3.2) and the only reliable way to notice a changed UIDVALIDITY between rounds.
    const client = await this.select();
    const uidValidity = this.uidValidity!;
    // mark-read keeps read mail in the folder, so only UNSEEN ones are new; delete/move empty the folder, so
    // everything still there (and not already marked for deletion by someone) is new, read or not.
    // With delete, mails already flagged \Deleted are listed too (marked as such): our own acknowledgement is
    // STORE \Deleted then UID EXPUNGE, and a crash between the two must be finished by the next round.
    const query =
      this.settings.afterFetch === 'mark-read'
        ? { seen: false, deleted: false }
        : this.settings.afterFetch === 'move'
          ? { deleted: false }
          : { all: true };
    let uids: number[];
    try {
      const found = await client.search(query, { uid: true });
      if (found === false || found === undefined) {
        throw new MailintakeError('PROTOCOL_ERROR', `${this.where} refused UID SEARCH in "${this.folder}"`);
      }
      uids = [...found].sort((a, b) => a - b);
    } catch (err) {
      throw this.toError(err, `searching for new mail in "${this.folder}"`);
    }
    if (uids.length === 0) return [];
    const sizes = new Map<number, number>();
    const deleted = new Set<number>();
    try {
      for (const set of uidSets(uids)) {
        for await (const msg of client.fetch(set, { uid: true, size: true, flags: true }, { uid: true })) {
          if (msg.size !== undefined) sizes.set(msg.uid, msg.size);
          if (msg.flags?.has('\\Deleted')) deleted.add(msg.uid);
        }
      }
    } catch (err) {
      throw this.toError(err, `reading mail sizes in "${this.folder}"`);
    }
    // a mail expunged by another client between SEARCH and FETCH has no size: it is simply not new any more
    return uids
      .filter((uid) => sizes.has(uid))
      .map((uid) => ({
        identity: this.identity(uid, uidValidity),
        size: sizes.get(uid)!,
        ...(deleted.has(uid) ? { flaggedDeleted: true } : {}),
        handle: { uid, uidValidity } satisfies ImapHandle,
      }));
  }

  /** The UIDs of mails listed under the current UIDVALIDITY; a stale one would address a different mail. */
  private uidsOf(mails: RemoteMail[], step: string): number[] {
    return mails.map((mail) => {
      const handle = mail.handle as Partial<ImapHandle> | undefined;
      if (!handle || typeof handle.uid !== 'number') {
        throw new MailintakeError('PROTOCOL_ERROR', `${step}: mail ${mail.identity} has no IMAP UID`, {
          retryable: false,
        });
      }
      if (handle.uidValidity !== this.uidValidity) {
        throw new MailintakeError(
          'PROTOCOL_ERROR',
          `${step} on ${this.where}: UIDVALIDITY of "${this.folder}" changed from ${handle.uidValidity} to ` +
            `${this.uidValidity} since mail ${mail.identity} was listed; its UID may now name another mail, so ` +
            'nothing was done. The next round lists the folder again.',
        );
      }
      return handle.uid;
    });
  }

  async stream(mail: RemoteMail): Promise<Readable> {
    const client = this.requireClient();
    const [uid] = this.uidsOf([mail], 'Reading a mail');
    let download: Awaited<ReturnType<ImapFlow['download']>>;
    try {
      // download() fetches BODY.PEEK[]<offset.64K> chunk by chunk and waits for the consumer (backpressure),
      // so a 50 MB mail never sits in memory whole; PEEK leaves \Seen alone.
      download = await client.download(String(uid), undefined, { uid: true });
    } catch (err) {
      throw this.toError(err, `reading mail ${mail.identity}`);
    }
    if (!download.content) {
      throw new MailintakeError(
        'NOT_FOUND',
        `Mail ${mail.identity} is no longer in "${this.folder}" on ${this.where} (removed by another client?)`,
        { retryable: false },
      );
    }
    const source = download.content;
    // Errors in the middle of the body (connection lost, timeout) reach the reader as coded errors too.
    const out = new PassThrough();
    source.on('error', (err) => out.destroy(this.toError(err, `reading mail ${mail.identity}`)));
    out.on('close', () => {
      if (!source.destroyed) source.destroy();
    });
    source.pipe(out);
    return out;
  }

  async fetchMany(mails: RemoteMail[]): Promise<Map<string, Buffer>> {
    const client = this.requireClient();
    const uids = this.uidsOf(mails, 'Reading mails');
    const byUid = new Map<number, Buffer>();
    try {
      // one UID FETCH … BODY.PEEK[] per set: the server streams the mails back to back (no round trip each)
      for (const set of uidSets(uids)) {
        for await (const msg of client.fetch(set, { uid: true, source: true }, { uid: true })) {
          if (msg.source) byUid.set(msg.uid, msg.source);
        }
      }
    } catch (err) {
      throw this.toError(err, `reading ${mails.length} mails from "${this.folder}"`);
    }
    // in the order asked; a mail removed meanwhile is left out and the caller sees it missing
    const result = new Map<string, Buffer>();
    mails.forEach((mail, i) => {
      const source = byUid.get(uids[i]!);
      if (source) result.set(mail.identity, source);
    });
    return result;
  }

  async acknowledge(mails: RemoteMail[], action: AfterFetch): Promise<void> {
    if (mails.length === 0) return;
    const client = this.requireClient();
    const uids = this.uidsOf(mails, 'Acknowledging mails');
    await applyAfterFetch(mails, action, {
      markRead: async () => {
        for (const set of uidSets(uids)) {
          await this.command(`marking ${mails.length} mails as read`, () =>
            client.messageFlagsAdd(set, ['\\Seen'], { uid: true }),
          );
        }
      },
      delete: async () => {
        this.requireUidExpunge('deleting mails');
        for (const set of uidSets(uids)) {
          // STORE +FLAGS \Deleted first on its own, so that the crash window between it and the EXPUNGE is a
          // real, named one (failpoint) that listNew's flaggedDeleted handling is tested against
          await this.command(`flagging ${mails.length} mails \\Deleted`, () =>
            client.messageFlagsAdd(set, ['\\Deleted'], { uid: true }),
          );
          failpoint('between-store-deleted-and-expunge');
          // imapflow: STORE +FLAGS \Deleted again (a no-op now), then UID EXPUNGE <set> (UIDPLUS checked above)
          await this.command(`deleting ${mails.length} mails`, () =>
            client.messageDelete(set, { uid: true }),
          );
        }
      },
      move: (moving, folder) => this.moveTo(moving, folder),
    });
  }

  async moveTo(mails: RemoteMail[], folder: string): Promise<void> {
    if (mails.length === 0) return;
    const client = this.requireClient();
    const uids = this.uidsOf(mails, `Moving mails to "${folder}"`);
    await this.ensureFolder(folder);
    // Without MOVE (RFC 6851) imapflow does COPY + delete, and that delete is only safe with UID EXPUNGE.
    if (!client.capabilities.has('MOVE')) this.requireUidExpunge(`moving mails to "${folder}"`);
    for (const set of uidSets(uids)) {
      await this.command(`moving ${mails.length} mails to "${folder}"`, () =>
        client.messageMove(set, folder, { uid: true }),
      );
    }
  }

  /**
   * "Move mails to inbox" of the error folder. MOVE gave each mail a new UID there (COPYUID is optional and a
   * crash could lose it), so our mails are recognised by what does not change: the size, and then the sha256 of
   * the raw source, read only for mails of a wanted size. Byte-identical copies are matched one for one.
   */
  async moveBack(folder: string, wanted: WantedMail[]): Promise<string[]> {
    const client = this.requireClient();
    const bySize = new Map<number, WantedMail[]>();
    for (const w of wanted) {
      if (w.size === undefined || w.sha256 === undefined) continue;
      bySize.set(w.size, [...(bySize.get(w.size) ?? []), w]);
    }
    if (bySize.size === 0) return [];
    const step = `opening the error folder "${folder}"`;
    let box: Awaited<ReturnType<ImapFlow['mailboxOpen']>> | undefined;
    try {
      box = await client.mailboxOpen(folder);
    } catch (err) {
      const coded = this.toError(err, step, 'FOLDER_NOT_FOUND');
      if (coded.code === 'FOLDER_NOT_FOUND') {
        await this.select();
        return []; // never created: nothing was ever moved there
      }
      throw coded;
    }
    try {
      if (!box) throw this.toError(this.lastConnectionError ?? { code: 'NoConnection' }, step);
      if (box.exists === 0) return [];
      const candidates: { uid: number; size: number }[] = [];
      try {
        for await (const msg of client.fetch('1:*', { uid: true, size: true }, { uid: true })) {
          if (msg.size !== undefined && bySize.has(msg.size))
            candidates.push({ uid: msg.uid, size: msg.size });
        }
      } catch (err) {
        throw this.toError(err, `listing the error folder "${folder}"`);
      }
      const moved: { uid: number; key: string }[] = [];
      for (const c of candidates.sort((a, b) => a.uid - b.uid)) {
        const open = bySize.get(c.size) ?? [];
        if (open.length === 0) continue;
        const sha256 = await this.hashOf(c.uid, folder);
        const hit = open.findIndex((w) => w.sha256 === sha256);
        if (hit < 0) continue;
        moved.push({ uid: c.uid, key: open[hit]!.key });
        open.splice(hit, 1);
      }
      if (moved.length === 0) return [];
      if (!client.capabilities.has('MOVE')) this.requireUidExpunge(`moving mails back to "${this.folder}"`);
      for (const set of uidSets(moved.map((m) => m.uid))) {
        await this.command(`moving ${moved.length} mails from "${folder}" back to "${this.folder}"`, () =>
          client.messageMove(set, this.folder, { uid: true }),
        );
      }
      return moved.map((m) => m.key);
    } finally {
      // the connector's folder is the selected one again, as every other method expects
      await this.select();
    }
  }

  private async hashOf(uid: number, folder: string): Promise<string> {
    const client = this.requireClient();
    const step = `reading mail ${uid} in "${folder}"`;
    try {
      const download = await client.download(String(uid), undefined, { uid: true });
      if (!download.content) return '';
      const hash = createHash('sha256');
      for await (const chunk of download.content) hash.update(chunk as Buffer);
      return hash.digest('hex');
    } catch (err) {
      throw this.toError(err, step);
    }
  }

  private async ensureFolder(folder: string): Promise<void> {
    const client = this.requireClient();
    try {
      // CREATE answers NO [ALREADYEXISTS] for an existing folder; imapflow turns that into created: false
      await client.mailboxCreate(folder);
    } catch (err) {
      throw this.toError(err, `creating folder "${folder}"`, 'ACK_FAILED');
    }
  }

  private requireUidExpunge(step: string): void {
    if (!this.requireClient().capabilities.has('UIDPLUS')) {
      throw new MailintakeError(
        'ACK_FAILED',
        `${step} on ${this.where}: the server lacks UIDPLUS (RFC 4315), so only a plain EXPUNGE is possible, which ` +
          'would also remove mails other clients marked \\Deleted. Nothing was deleted; use afterFetch "mark-read" ' +
          'for this server.',
        { retryable: false },
      );
    }
  }

  /** Runs a STORE/EXPUNGE/MOVE that imapflow reports as `false` on a NO/BAD answer rather than throwing. */
  private async command(step: string, run: () => Promise<unknown>): Promise<void> {
    let ok: unknown;
    try {
      ok = await run();
    } catch (err) {
      throw this.toError(err, step, 'ACK_FAILED');
    }
    if (ok === false || ok === undefined) {
      // the connection may be gone (imapflow reports that as false too): say so rather than blame the server
      if (!this.client?.usable)
        throw this.toError(this.lastConnectionError ?? { code: 'NoConnection' }, step);
      throw new MailintakeError('ACK_FAILED', `${this.where} refused ${step} in "${this.folder}"`);
    }
  }

  async sample(): Promise<SampleMail | null> {
    const client = this.requireClient();
    await this.select();
    let oldest: number | undefined;
    try {
      // ESEARCH MIN (RFC 4731) answers with one number instead of every UID of a large folder
      const found = await client.search({ deleted: false }, { uid: true, returnOptions: ['MIN'] });
      if (Array.isArray(found)) oldest = found.length ? Math.min(...found) : undefined;
      else if (found) oldest = found.min;
      else
        throw new MailintakeError('PROTOCOL_ERROR', `${this.where} refused UID SEARCH in "${this.folder}"`);
    } catch (err) {
      throw this.toError(err, `finding the oldest mail in "${this.folder}"`);
    }
    if (oldest === undefined) return null;
    try {
      // ENVELOPE, BODYSTRUCTURE and RFC822.SIZE never set \Seen (only BODY[...] without PEEK does)
      const msg = await client.fetchOne(
        String(oldest),
        { uid: true, envelope: true, bodyStructure: true, size: true },
        { uid: true },
      );
      if (!msg) return null;
      const from = msg.envelope?.from?.[0];
      return {
        from: from ? (from.name ? `${from.name} <${from.address ?? ''}>` : (from.address ?? null)) : null,
        subject: msg.envelope?.subject ?? null,
        date: msg.envelope?.date ? new Date(msg.envelope.date).toISOString() : null,
        size: msg.size ?? 0,
        attachments: msg.bodyStructure ? attachmentNames(msg.bodyStructure) : [],
      };
    } catch (err) {
      throw this.toError(err, `reading the oldest mail in "${this.folder}"`);
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.uidValidity = null;
    if (!client) return;
    try {
      if (client.usable) await client.logout();
      else client.close();
    } catch {
      // logout on a broken connection: nothing left to clean up but the socket
      try {
        client.close();
      } catch {
        // already closed
      }
    }
  }

  /** Turns anything imapflow, Node or OpenSSL throws into a coded error a person can act on. */
  private toError(err: unknown, step: string, fallback: ErrorCode = 'PROTOCOL_ERROR'): MailintakeError {
    return imapError(err, {
      settings: this.settings,
      step,
      fallback,
      timeouts: this.timeouts,
      established: this.client !== null,
      lastConnectionError: this.lastConnectionError,
      ...(this.tokens ? { oauth: true } : {}),
      ...(this.logger ? { logger: this.logger } : {}),
    });
  }
}

/** Ascending UIDs as compact sets ("1:5,9,12:14"), at most MAX_RANGES_PER_COMMAND ranges each. */
export function uidSets(uids: number[]): string[] {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const sets: string[] = [];
  let ranges: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    const start = sorted[i]!;
    let end = start;
    while (i + 1 < sorted.length && sorted[i + 1] === end + 1) end = sorted[++i]!;
    i++;
    ranges.push(start === end ? String(start) : `${start}:${end}`);
    if (ranges.length === MAX_RANGES_PER_COMMAND) {
      sets.push(ranges.join(','));
      ranges = [];
    }
  }
  if (ranges.length) sets.push(ranges.join(','));
  return sets;
}

/** File names of the parts a person would call attachments, from BODYSTRUCTURE (no body is downloaded). */
export function attachmentNames(node: MessageStructureObject): string[] {
  const names: string[] = [];
  const walk = (n: MessageStructureObject, top: boolean) => {
    const name = n.dispositionParameters?.filename ?? n.parameters?.name;
    if (n.type === 'message/rfc822' && !top) {
      // an attached mail: name it, but do not list the attachments inside it as this mail's own
      names.push(name ?? `${n.envelope?.subject || 'attached message'}.eml`);
      return;
    }
    if (n.childNodes?.length) {
      for (const child of n.childNodes) walk(child, false);
      return;
    }
    if (name || n.disposition === 'attachment') names.push(name ?? `part-${n.part ?? '1'}`);
  };
  walk(node, true);
  return names;
}
