import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { type ErrorCode, type ErrorDetails, MailintakeError } from '../../kernel/errors.js';
import {
  EWS_BACKOFF_BASE_MS as BACKOFF_BASE_MS,
  EWS_CHANGE_CHUNK as CHANGE_CHUNK,
  EWS_BUSY_WORDS_MAX_CHARS,
  EWS_MAX_ERROR_ANSWER_BYTES,
  EWS_FETCH_CHUNK_BYTES as FETCH_CHUNK_BYTES,
  EWS_FETCH_CHUNK_COUNT as FETCH_CHUNK_COUNT,
  EWS_MAX_ANSWER_BYTES as MAX_ANSWER_BYTES,
  EWS_MAX_HEAD_BYTES as MAX_HEAD_BYTES,
  EWS_MAX_PAGES as MAX_PAGES,
  EWS_PAGE_SIZE as PAGE_SIZE,
  SERVER_WORDS_MAX_CHARS,
} from '../../kernel/limits.js';
import { type AccessTokenSource, requireTokenSource, SentTokens } from '../../oauth/token-source.js';
import { applyAfterFetch } from '../acknowledge.js';
import type {
  AfterFetch,
  Connector,
  ConnectorTraits,
  RemoteMail,
  SampleMail,
  WantedMail,
} from '../connector.js';
import {
  DEFAULT_REQUEST_TIMEOUTS,
  DEFAULT_RETRY_LIMITS,
  type HttpsApiOptions,
  type RequestTimeouts,
  type RetryLimits,
  retryAfterMs,
  sleepFor,
} from '../https-api.js';
import { httpsTransportError, loadCa, scrubPassword, validateTimeouts } from '../net-errors.js';
import type { MailboxSettings } from '../settings.js';
import { type EwsAuth, type EwsResponse, EwsTransport, NtlmProblem, schemesOf } from './ews-transport.js';
import {
  asArray,
  attr,
  child,
  createFolderRequest,
  DISTINGUISHED_MAIL_FOLDERS,
  deleteItemRequest,
  type EwsOperation,
  type FolderRef,
  findFolderRequest,
  findItemRequest,
  getFolderRequest,
  getItemRequest,
  itemsOf,
  LIST_PROPERTIES,
  markReadRequest,
  mimeContentOf,
  moveItemRequest,
  parseAnswer,
  parseFault,
  type ResponseMessage,
  type SoapAnswer,
  SoapParseError,
  text,
  withImpersonation,
  XmlCharacterError,
  type XmlNode,
} from './ews-xml.js';
import { readMimeAnswer } from './mime-stream.js';

/**
 * Exchange Web Services connector (SOAP 1.1 over HTTPS), for on-premises Exchange 2013 SP1 and later.
 * Exchange Online has been turning EWS off since October 2026: there, use Microsoft Graph.
 *
 * Protocol facts, and what we do about them:
 * - Identity is `ews;<ItemId>`. An EWS ItemId is stable while the mail stays in its folder — which is where
 *   listNew finds it and where acknowledge acts on it — but a move gives the mail a new ItemId (on-premises
 *   Exchange has no immutable ids; Exchange Online's `IdType="ImmutableId"` is not available there). A mail a
 *   person moves out and back therefore comes back under a new identity; it is still taken in only once,
 *   because the intake log's second key, the Message-ID (InternetMessageId) plus a fingerprint of the
 *   content, recognises it and logs it as the same mail (src/intake/commit-mail.ts). The ChangeKey is not
 *   part of the identity: it changes with every change to the mail, the read flag included.
 * - Listing is FindItem (Shallow, IdOnly + size and received time) on the folder, oldest first, in pages of
 *   IndexedPageItemView, following IndexedPagingOffset until IncludesLastItemInRange. With mark-read only
 *   unread mail is listed (restriction message:IsRead = false), as with Graph. The whole listing is read
 *   before anything is acknowledged, so our own changes cannot shift the offsets under the paging.
 * - The raw mail is GetItem with IncludeMimeContent (base64 in the answer), streamed (mime-stream.ts);
 *   small mails are fetched several per GetItem (fetchMany). GetItem never marks a mail read.
 * - Mark-read is UpdateItem SetItemField message:IsRead with SuppressReadReceipts (no read receipt goes to the
 *   customer). Delete is DeleteItem with DeleteType="SoftDelete": the mail leaves the folder into Recoverable
 *   Items, where an admin can still recover it for the retention period — the same as Graph's DELETE.
 *   MoveToDeletedItems would leave it visible to every user of a shared mailbox (and counted in its quota),
 *   where a person "restoring" it to the inbox makes it new mail again; HardDelete gives up the safety net.
 * - Move (and the error folder) is MoveItem to a folder directly under the mailbox root (msgfolderroot),
 *   found by display name with FindFolder and created with CreateFolder when missing (ErrorFolderExists from
 *   a concurrent create is answered by looking it up again).
 * - Acknowledgements are batched (one request for up to 100 mails); each mail has its own ResponseMessage.
 *   ErrorItemNotFound means the mail is gone already (moved or deleted by a person, or our earlier attempt
 *   went through but its answer was lost): the goal, "not listed again", is met.
 * - Throttling: ErrorServerBusy (a SOAP fault with HTTP 500, or a ResponseMessage) is retried after the
 *   BackOffMilliseconds it names (MessageXml), HTTP 502/503/504 after Retry-After, a bounded number of times
 *   within a bounded total wait; then the round ends with TIMEOUT and the next round tries again. Every
 *   request is safe to repeat (a repeated delete or move finds the mail gone).
 * - Authentication: NTLM (default; what Exchange's EWS virtual directory accepts out of the box) or Basic;
 *   see ews-transport.ts and ntlm.ts. With OAuth 2.0 (`auth: "oauth2"`, Exchange Online or hybrid modern
 *   auth) `Authorization: Bearer <token>` goes with every request, X-AnchorMailbox names the mailbox, and an
 *   application token (client credentials) adds ExchangeImpersonation of the mailbox to every SOAP header.
 *   A 401 is answered by renewing the token once and sending the request once more.
 */

/** EWS takes what every HTTPS mail API here takes (the same limits as Graph: both are Exchange). */
export type EwsConnectorOptions = HttpsApiOptions;

/** What `RemoteMail.handle` holds for EWS: the ItemId (without its ChangeKey). */
export interface EwsHandle {
  id: string;
}

const IDENTITY_PREFIX = 'ews;';
const RETRY_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);
const SAMPLE_PROPERTIES = [
  'item:Subject',
  'message:From',
  'item:DateTimeSent',
  'item:DateTimeReceived',
  'item:Size',
  'item:Attachments',
];

/** What one attempt of a request came to: a result, or "busy, try again (after waitMs)". */
type Attempt<T> =
  | { value: T }
  | { busy: { waitMs: number | undefined; code: string; said: string; status: number } };

/** The response messages of an answer, and the base64 of its MimeContent elements. */
interface Answered {
  messages: ResponseMessage[];
  mime: string[];
}

interface CallOptions {
  /** The code for "not found" (folder or mailbox: FOLDER_NOT_FOUND; a mail: NOT_FOUND). */
  notFound?: ErrorCode;
  /** The code for other refusals (after commit: ACK_FAILED). */
  failCode?: ErrorCode;
}

export class EwsConnector implements Connector {
  readonly traits: ConnectorTraits = { keepAction: 'mark-read', listsKeptMail: false, folders: true };
  private readonly settings: MailboxSettings;
  private readonly opts: EwsConnectorOptions;
  private readonly timeouts: RequestTimeouts;
  private readonly retry: RetryLimits;
  private readonly url: URL;
  private readonly mailbox: string;
  private readonly folderName: string;
  private readonly auth: EwsAuth;
  /** OAuth 2.0: the source of the bearer tokens (NTLM and Basic are then not used). */
  private readonly tokens: AccessTokenSource | undefined;
  /** Tokens sent by this connector: scrubbed from every message and detail, even if a server echoes one. */
  private readonly sentTokens = new SentTokens();
  private transport: EwsTransport | null = null;
  private folder: FolderRef | null = null;
  /** lower-cased display name → folder id, for move targets found or created in this session. */
  private folderIds = new Map<string, string>();

  constructor(settings: MailboxSettings, opts: EwsConnectorOptions = {}) {
    this.settings = settings;
    this.opts = opts;
    this.timeouts = validateTimeouts(DEFAULT_REQUEST_TIMEOUTS, opts.timeouts);
    this.retry = validateTimeouts(DEFAULT_RETRY_LIMITS, opts.retry);
    if (!settings.connectUrl) {
      throw new MailintakeError('INVALID_SETTINGS', 'connectUrl is required for EWS', {
        details: { fields: [{ field: 'connectUrl', message: 'required' }] },
      });
    }
    this.url = new URL(settings.connectUrl);
    this.mailbox = settings.emailAddress[0] ?? settings.username;
    this.folderName = settings.folder || 'inbox';
    this.auth = settings.ewsAuth ?? 'ntlm';
    this.tokens = requireTokenSource(settings, opts.tokens, 'EWS');
  }

  /** How messages name the server: host and port of the Connect URL. */
  private get where(): string {
    return this.url.host;
  }

  private get authName(): string {
    if (this.tokens) return this.tokens.kind === 'app' ? 'OAuth, application token' : 'OAuth';
    return this.auth === 'ntlm' ? 'NTLM' : 'Basic';
  }

  async open(): Promise<void> {
    await this.close();
    const ca = await loadCa(this.settings, this.opts.ca);
    this.transport = new EwsTransport({
      url: this.url,
      ca,
      timeoutMs: this.timeouts.requestMs,
      auth: this.tokens ? 'bearer' : this.auth,
      username: this.settings.username,
      password: this.settings.password,
      anchorMailbox: this.mailbox,
    });
    try {
      // one request proves URL, TLS, credentials, access to the mailbox and the folder at once
      this.folder = await this.resolveFolder();
    } catch (err) {
      this.transport.close();
      this.transport = null;
      throw err;
    }
  }

  /** The configured folder: a distinguished one (inbox…) by GetFolder, else by display name under the root. */
  private async resolveFolder(): Promise<FolderRef> {
    const step = `opening folder "${this.folderName}" of ${this.mailbox}`;
    const lower = this.folderName.toLowerCase();
    if (DISTINGUISHED_MAIL_FOLDERS.has(lower)) {
      const m = this.success(
        await this.call(
          'GetFolder',
          () => getFolderRequest({ distinguished: lower, mailbox: this.mailbox }),
          step,
          { notFound: 'FOLDER_NOT_FOUND' },
        ),
        step,
        { notFound: 'FOLDER_NOT_FOUND' },
      );
      const id = foldersOf(child(m.node, 'Folders'))[0]?.id;
      if (!id) throw this.protocolError(`it named no folder id while ${step}`, step);
      return { id };
    }
    const id = await this.findFolder(this.folderName, step, 'FOLDER_NOT_FOUND');
    if (!id) {
      throw new MailintakeError(
        'FOLDER_NOT_FOUND',
        `Mailbox ${this.mailbox} on ${this.where} has no folder "${this.folderName}" directly under its root (while ${step}). Check "folder": a well-known folder ("inbox", "junkemail"…) or the display name of a top-level folder.`,
        { details: { server: this.where, step } },
      );
    }
    return { id };
  }

  private openFolder(): FolderRef {
    if (!this.folder || !this.transport) {
      throw new MailintakeError('PROTOCOL_ERROR', `Not connected to ${this.where}: open() was not called`, {
        retryable: false,
      });
    }
    return this.folder;
  }

  async listNew(): Promise<RemoteMail[]> {
    const folder = this.openFolder();
    // mark-read keeps read mail in the folder, so only unread mail is new; delete and move empty the folder
    const unreadOnly = this.settings.afterFetch === 'mark-read';
    return this.listItems(
      folder,
      unreadOnly,
      `listing "${this.folderName}" of ${this.mailbox}`,
      'FOLDER_NOT_FOUND',
    );
  }

  /** Every item of a folder (or its unread ones), oldest first, through all FindItem pages. */
  private async listItems(
    folder: FolderRef,
    unreadOnly: boolean,
    step: string,
    notFound: ErrorCode,
  ): Promise<RemoteMail[]> {
    const mails: RemoteMail[] = [];
    const seen = new Set<string>();
    let offset = 0;
    for (let page = 0; ; page++) {
      if (page === MAX_PAGES) {
        throw this.protocolError(`it kept paging past ${MAX_PAGES} pages while ${step}`, step);
      }
      const m = this.success(
        await this.call(
          'FindItem',
          () => findItemRequest({ folder, offset, max: PAGE_SIZE, unreadOnly, properties: LIST_PROPERTIES }),
          step,
          { notFound },
        ),
        step,
        { notFound },
      );
      const root = child(m.node, 'RootFolder');
      if (!root) throw this.protocolError(`its FindItem answer has no RootFolder while ${step}`, step);
      const items = itemsOf(child(root, 'Items'));
      for (const item of items) {
        const id = attr(child(item, 'ItemId'), 'Id');
        if (!id || seen.has(id)) continue; // a mail arriving mid-paging can shift one into the next page
        seen.add(id);
        const size = Number(text(item.Size));
        mails.push({
          identity: `${IDENTITY_PREFIX}${id}`,
          ...(text(item.Size) !== '' && Number.isSafeInteger(size) && size >= 0 ? { size } : {}),
          handle: { id } satisfies EwsHandle,
        });
      }
      const last = attr(root, 'IncludesLastItemInRange');
      if (last === 'true' || items.length === 0 || (last === undefined && items.length < PAGE_SIZE)) break;
      const next = Number(attr(root, 'IndexedPagingOffset'));
      if (!Number.isSafeInteger(next) || next <= offset) {
        throw this.protocolError(
          `its paging did not advance (IndexedPagingOffset ${attr(root, 'IndexedPagingOffset') ?? 'missing'} after ${offset}) while ${step}`,
          step,
        );
      }
      offset = next;
    }
    return mails;
  }

  private idOf(mail: RemoteMail): string {
    const handle = mail.handle as Partial<EwsHandle> | undefined;
    if (handle && typeof handle.id === 'string') return handle.id;
    if (mail.identity.startsWith(IDENTITY_PREFIX)) return mail.identity.slice(IDENTITY_PREFIX.length);
    throw new MailintakeError('PROTOCOL_ERROR', `Mail ${mail.identity} is not an EWS mail`, {
      retryable: false,
    });
  }

  async stream(mail: RemoteMail): Promise<Readable> {
    this.openFolder();
    const id = this.idOf(mail);
    const step = `reading mail ${mail.identity}`;
    const o: CallOptions = { notFound: 'NOT_FOUND' };
    return this.withRetries(step, async (): Promise<Attempt<Readable>> => {
      const res = await this.post('GetItem', () => getItemRequest([id], { mime: true }), step);
      if (res.status !== 200) return this.failedStatus(res, step, o);
      const answer = await readMimeAnswer(res.body, {
        maxHeadBytes: MAX_HEAD_BYTES,
        check: (skeleton) => this.checkMimeAnswer(skeleton, step),
        fail: (err, what) =>
          err instanceof MailintakeError
            ? err
            : what === 'connection'
              ? this.transportError(err, step)
              : this.protocolError(
                  `its GetItem answer is broken (${(err as Error).message}) while ${step}`,
                  step,
                ),
      });
      if (answer.kind === 'mime') return { value: answer.stream };
      const attempt = this.interpret(this.parse(answer.text, 'GetItem', step), 200, step, o);
      if ('busy' in attempt) return attempt;
      this.success(attempt.value.messages, step, o);
      throw this.protocolError(`it sent no MimeContent while ${step}`, step);
    });
  }

  /** The envelope of a streamed mail without its base64: one GetItem message, Success, with MimeContent. */
  private checkMimeAnswer(skeleton: string, step: string): void {
    const answer = this.parse(skeleton, 'GetItem', step);
    if (answer.kind === 'fault' || answer.messages.length !== 1) {
      throw this.protocolError(`its GetItem answer around the mail is not one item's while ${step}`, step);
    }
    const m = this.success(answer.messages, step, { notFound: 'NOT_FOUND' });
    const item = itemsOf(child(m.node, 'Items'))[0];
    if (!item || item.MimeContent === undefined) {
      throw this.protocolError(`the MimeContent of its GetItem answer is not the item's while ${step}`, step);
    }
  }

  /**
   * Small mails several per GetItem (one round trip instead of one each), in chunks whose answer stays a few
   * MB. A mail gone meanwhile (ErrorItemNotFound) is left out; the caller sees it missing.
   */
  async fetchMany(mails: RemoteMail[]): Promise<Map<string, Buffer>> {
    this.openFolder();
    const result = new Map<string, Buffer>();
    for (let i = 0; i < mails.length; ) {
      const chunk: RemoteMail[] = [];
      let bytes = 0;
      while (i < mails.length && chunk.length < FETCH_CHUNK_COUNT) {
        const size = mails[i]!.size ?? FETCH_CHUNK_BYTES;
        if (chunk.length > 0 && bytes + size > FETCH_CHUNK_BYTES) break;
        chunk.push(mails[i]!);
        bytes += size;
        i++;
      }
      const ids = chunk.map((m) => this.idOf(m));
      const step = `reading ${chunk.length} mail(s) from ${chunk[0]!.identity}`;
      const { messages, mime } = await this.callForAnswer(
        'GetItem',
        () => getItemRequest(ids, { mime: true }),
        step,
        {},
      );
      if (messages.length !== chunk.length) {
        throw this.protocolError(
          `it answered ${messages.length} messages for ${chunk.length} items while ${step}`,
          step,
        );
      }
      messages.forEach((m, n) => {
        if (m.responseClass === 'Error' && m.responseCode === 'ErrorItemNotFound') return;
        this.success([m], step, { notFound: 'NOT_FOUND' });
        const b64 = (mimeContentOf(itemsOf(child(m.node, 'Items'))[0], mime) ?? '').replace(
          /[\r\n\t ]+/g,
          '',
        );
        if (b64 === '' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
          throw this.protocolError(`its MimeContent is missing or not base64 while ${step}`, step);
        }
        result.set(chunk[n]!.identity, Buffer.from(b64, 'base64'));
      });
    }
    return result;
  }

  async acknowledge(mails: RemoteMail[], action: AfterFetch): Promise<void> {
    await applyAfterFetch(mails, action, {
      markRead: (marking) => this.changeItems('UpdateItem', marking, markReadRequest, 'marking as read'),
      delete: (deleting) => this.changeItems('DeleteItem', deleting, deleteItemRequest, 'deleting'),
      move: (moving, folder) => this.moveTo(moving, folder),
    });
  }

  async moveTo(mails: RemoteMail[], folder: string): Promise<void> {
    if (mails.length === 0) return;
    this.openFolder();
    const id = await this.ensureFolder(folder);
    await this.changeItems('MoveItem', mails, (ids) => moveItemRequest(ids, id), `moving to "${folder}"`);
  }

  /**
   * The error folder's "move mails to inbox". A move gave each mail a new ItemId (and Exchange keeps no
   * immutable id on premises), so our mails are recognised by the sha256 of their raw source as fetched:
   * every mail of the error folder is read (it is small, and this is an admin's action) and only those whose
   * hash is wanted move back; an admin's own mails there stay. Byte-identical copies match one for one.
   * Exchange renders the MIME of a stored mail the same way each time, and a move does not change the mail.
   */
  async moveBack(folder: string, wanted: WantedMail[]): Promise<string[]> {
    const open = new Map<string, WantedMail[]>();
    for (const w of wanted) {
      if (w.sha256 !== undefined) open.set(w.sha256, [...(open.get(w.sha256) ?? []), w]);
    }
    if (open.size === 0) return [];
    const inbox = this.openFolder();
    const folderId = await this.findFolder(folder, `finding the error folder "${folder}"`, 'ACK_FAILED');
    if (!folderId) return []; // never created: nothing was ever moved there
    const step = `listing the error folder "${folder}" of ${this.mailbox}`;
    const inFolder = await this.listItems({ id: folderId }, false, step, 'ACK_FAILED');
    const back: { mail: RemoteMail; key: string }[] = [];
    for (let i = 0; i < inFolder.length && open.size > 0; i += FETCH_CHUNK_COUNT) {
      const slice = inFolder.slice(i, i + FETCH_CHUNK_COUNT);
      const sources = await this.fetchMany(slice);
      for (const mail of slice) {
        const source = sources.get(mail.identity);
        if (!source) continue;
        const hash = createHash('sha256').update(source).digest('hex');
        const candidates = open.get(hash);
        const hit = candidates?.shift();
        if (!hit) continue;
        if (candidates!.length === 0) open.delete(hash);
        back.push({ mail, key: hit.key });
      }
    }
    if (back.length === 0) return [];
    if (!('id' in inbox)) throw this.protocolError('the folder read has no id', step);
    await this.changeItems(
      'MoveItem',
      back.map((b) => b.mail),
      (ids) => moveItemRequest(ids, inbox.id),
      `moving back from "${folder}" to "${this.folderName}"`,
    );
    return back.map((b) => b.key);
  }

  /**
   * One change after commit, batched. Each mail has its own ResponseMessage; ErrorItemNotFound counts as done
   * (see the top of the file). Any other refusal is ACK_FAILED naming the mails, after the whole batch was
   * tried: the mails that went through are done, the others are acknowledged again next round.
   */
  private async changeItems(
    op: EwsOperation,
    mails: RemoteMail[],
    build: (ids: string[]) => string,
    verb: string,
  ): Promise<void> {
    this.openFolder();
    for (let i = 0; i < mails.length; i += CHANGE_CHUNK) {
      const chunk = mails.slice(i, i + CHANGE_CHUNK);
      const step = `${verb} ${chunk.length === 1 ? `mail ${chunk[0]!.identity}` : `${chunk.length} mails`}`;
      const messages = await this.call(op, () => build(chunk.map((m) => this.idOf(m))), step, {
        failCode: 'ACK_FAILED',
      });
      if (messages.length !== chunk.length) {
        throw new MailintakeError(
          'ACK_FAILED',
          `${this.where} answered ${messages.length} messages for ${chunk.length} mails while ${step}`,
          { details: { server: this.where, step } },
        );
      }
      const refused = messages
        .map((m, n) => ({ m, mail: chunk[n]! }))
        .filter(({ m }) => m.responseClass === 'Error' && m.responseCode !== 'ErrorItemNotFound');
      if (refused.length > 0) {
        const first = refused[0]!.m;
        const said = this.said(`${first.responseCode}: ${first.messageText}`);
        throw new MailintakeError(
          'ACK_FAILED',
          `${this.where} refused ${verb} ${refused.length} of ${chunk.length} mail(s) (${first.responseCode}) while ${step}. The server said: "${said}". They stay taken in and are acknowledged again next round.`,
          {
            details: {
              server: this.where,
              step,
              errorCode: first.responseCode,
              serverResponse: said,
              identities: refused.map((r) => r.mail.identity),
            },
          },
        );
      }
    }
  }

  /** The id of the folder directly under the mailbox root with this display name, created when missing. */
  private async ensureFolder(name: string): Promise<string> {
    const key = name.toLowerCase();
    const known = this.folderIds.get(key);
    if (known) return known;
    let id = await this.findFolder(name, `finding folder "${name}"`, 'ACK_FAILED');
    if (!id) {
      const step = `creating folder "${name}"`;
      const root: FolderRef = { distinguished: 'msgfolderroot', mailbox: this.mailbox };
      const [m] = await this.call('CreateFolder', () => createFolderRequest(root, name), step, {
        failCode: 'ACK_FAILED',
      });
      if (m?.responseClass === 'Error' && m.responseCode === 'ErrorFolderExists') {
        id = await this.findFolder(name, step, 'ACK_FAILED'); // created meanwhile by another worker or a person
      } else {
        id = foldersOf(child(this.success(m ? [m] : [], step, { failCode: 'ACK_FAILED' }).node, 'Folders'))[0]
          ?.id;
      }
    }
    if (!id) {
      throw new MailintakeError('ACK_FAILED', `${this.where} did not give an id for folder "${name}"`, {
        details: { server: this.where },
      });
    }
    this.folderIds.set(key, id);
    return id;
  }

  /** A folder directly under the mailbox root by display name (Exchange compares without case). */
  private async findFolder(name: string, step: string, failCode: ErrorCode): Promise<string | undefined> {
    const root: FolderRef = { distinguished: 'msgfolderroot', mailbox: this.mailbox };
    const o: CallOptions = {
      failCode,
      notFound: failCode === 'ACK_FAILED' ? 'ACK_FAILED' : 'FOLDER_NOT_FOUND',
    };
    const m = this.success(
      await this.call('FindFolder', () => findFolderRequest(root, name), step, o),
      step,
      o,
    );
    const folders = foldersOf(child(child(m.node, 'RootFolder'), 'Folders'));
    return folders.find((f) => f.displayName.toLowerCase() === name.toLowerCase())?.id;
  }

  /** The oldest mail of the folder, described by properties only: nothing is read, flagged or moved. */
  async sample(): Promise<SampleMail | null> {
    const folder = this.openFolder();
    const step = `reading the oldest mail in "${this.folderName}" of ${this.mailbox}`;
    const found = this.success(
      await this.call(
        'FindItem',
        () => findItemRequest({ folder, offset: 0, max: 1, unreadOnly: false, properties: LIST_PROPERTIES }),
        step,
        { notFound: 'FOLDER_NOT_FOUND' },
      ),
      step,
      { notFound: 'FOLDER_NOT_FOUND' },
    );
    const first = itemsOf(child(child(found.node, 'RootFolder'), 'Items'))[0];
    const id = attr(child(first, 'ItemId'), 'Id');
    if (!id) return null;
    const got = this.success(
      await this.call(
        'GetItem',
        () => getItemRequest([id], { mime: false, properties: SAMPLE_PROPERTIES }),
        step,
        { notFound: 'NOT_FOUND' },
      ),
      step,
      { notFound: 'NOT_FOUND' },
    );
    const item = itemsOf(child(got.node, 'Items'))[0] ?? {};
    const from = child(child(item, 'From'), 'Mailbox');
    const address = text(from?.EmailAddress);
    const name = text(from?.Name);
    // SampleMail.date is the mail's own Date header, as IMAP's ENVELOPE gives it: EWS calls that DateTimeSent
    const date = text(item.DateTimeSent) || text(item.DateTimeReceived);
    const at = Date.parse(date);
    const size = Number(text(item.Size));
    const attachments: string[] = [];
    for (const [kind, list] of Object.entries(child(item, 'Attachments') ?? {})) {
      if (kind.startsWith('@_')) continue;
      for (const a of asArray(list)) {
        const named = typeof a === 'object' && !Array.isArray(a) ? text(a.Name) : '';
        attachments.push(named || `attachment-${attachments.length + 1}`);
      }
    }
    return {
      from: address ? (name && name !== address ? `${name} <${address}>` : address) : null,
      subject: item.Subject !== undefined ? text(item.Subject) : null,
      date: Number.isNaN(at) ? null : new Date(at).toISOString(),
      size: Number.isSafeInteger(size) && size >= 0 ? size : 0,
      attachments,
    };
  }

  async close(): Promise<void> {
    // requests in flight belong to their callers; closing ends the connection under them
    this.transport?.close();
    this.transport = null;
    this.folder = null;
    this.folderIds = new Map();
  }

  // -------------------------------------------------------------------------------------------------------
  // Requests

  /** One request with its retries: the response messages of a 200 answer; anything else is a coded error. */
  private async call(
    op: EwsOperation,
    build: () => string,
    step: string,
    o: CallOptions,
  ): Promise<ResponseMessage[]> {
    return (await this.callForAnswer(op, build, step, o)).messages;
  }

  /** call(), with the base64 of the answer's MimeContent elements (mimeContentOf). */
  private async callForAnswer(
    op: EwsOperation,
    build: () => string,
    step: string,
    o: CallOptions,
  ): Promise<Answered> {
    return this.withRetries(step, async () => {
      const res = await this.post(op, build, step);
      if (res.status !== 200) return this.failedStatus(res, step, o);
      return this.interpret(this.parse(await this.readText(res, step), op, step), 200, step, o);
    });
  }

  private async post(op: EwsOperation, build: () => string, step: string): Promise<EwsResponse> {
    const transport = this.transport;
    if (!transport) {
      throw new MailintakeError('PROTOCOL_ERROR', `Not connected to ${this.where}: open() was not called`, {
        retryable: false,
      });
    }
    let envelope: string;
    try {
      envelope = build();
      // an application token has no user: every request says which mailbox it acts as
      if (this.tokens?.kind === 'app') envelope = withImpersonation(envelope, this.mailbox);
    } catch (err) {
      if (err instanceof XmlCharacterError) {
        throw new MailintakeError(
          'INVALID_SETTINGS',
          `Cannot send to ${this.where} while ${step}: ${err.message}`,
          {
            cause: err,
            retryable: false,
          },
        );
      }
      throw err;
    }
    if (!this.tokens) {
      try {
        return await transport.post(op, envelope);
      } catch (err) {
        throw this.transportError(err, step);
      }
    }
    const send = async (token: string) => {
      this.sentTokens.remember(token);
      try {
        return await transport.post(op, envelope, token);
      } catch (err) {
        throw this.transportError(err, step);
      }
    };
    const token = await this.tokens.get();
    const res = await send(token);
    if (res.status !== 401) return res;
    // refused before its time (revoked, clock skew, a password change): one new token, one more try. What
    // renew throws (OAUTH_* codes: consent withdrawn, provider down) is the answer as it is. The refusal's
    // body is read to its end first: until then the connection is not free for the next request.
    await discard(res);
    const renewed = await this.tokens.renew(token);
    this.opts.logger?.info('EWS refused the access token; renewed it and sending again', {
      server: this.where,
      step,
    });
    return send(renewed);
  }

  private async withRetries<T>(step: string, attempt: () => Promise<Attempt<T>>): Promise<T> {
    const sleep = this.opts.sleep ?? sleepFor;
    let waited = 0;
    for (let n = 1; ; n++) {
      const result = await attempt();
      if ('value' in result) return result.value;
      const { busy } = result;
      const wait = busy.waitMs ?? BACKOFF_BASE_MS * 2 ** (n - 1);
      if (n < this.retry.maxAttempts && waited + wait <= this.retry.maxTotalWaitMs) {
        this.opts.logger?.info('EWS server busy; waiting as told', {
          server: this.where,
          code: busy.code,
          waitMs: wait,
          attempt: n,
        });
        waited += wait;
        await sleep(wait);
        continue;
      }
      const said = busy.said ? ` The server said: "${busy.said}".` : '';
      throw new MailintakeError(
        'TIMEOUT',
        `${this.where} kept answering ${busy.code} (busy) while ${step}: gave up after ${n} attempt(s) and ${Math.round(waited / 1000)} s of waiting (it asked for ${Math.round(wait / 1000)} s more).${said} Nothing was lost; the next round tries again.`,
        {
          retryable: true,
          details: {
            server: this.where,
            step,
            status: busy.status,
            errorCode: busy.code,
            ...(busy.said ? { serverResponse: busy.said } : {}),
            attempts: n,
          },
        },
      );
    }
  }

  /** A parsed 200 (or 500) answer: busy → retry; a fault → coded error; else its response messages. */
  private interpret(answer: SoapAnswer, status: number, step: string, o: CallOptions): Attempt<Answered> {
    if (answer.kind === 'fault') {
      const { fault } = answer;
      if (fault.code === 'ErrorServerBusy') {
        return {
          busy: { waitMs: fault.backOffMs, code: fault.code, said: this.said(fault.message), status },
        };
      }
      throw this.ewsError(fault.code, fault.message, status, step, o);
    }
    const busy = answer.messages.find((m) => m.responseCode === 'ErrorServerBusy');
    if (busy) {
      return {
        busy: { waitMs: busy.backOffMs, code: busy.responseCode, said: this.said(busy.messageText), status },
      };
    }
    return { value: { messages: answer.messages, mime: answer.mime } };
  }

  /** The one response message of a single request, which must be a success (Warning counts as one). */
  private success(messages: ResponseMessage[], step: string, o: CallOptions): ResponseMessage {
    const m = messages[0];
    if (!m || messages.length !== 1) {
      throw this.protocolError(
        `it answered ${messages.length} response messages for one request while ${step}`,
        step,
      );
    }
    if (m.responseClass === 'Error') throw this.ewsError(m.responseCode, m.messageText, 200, step, o);
    return m;
  }

  /** An answer that is not 200: authentication, a wrong URL, busy front ends, SOAP faults. */
  private async failedStatus(res: EwsResponse, step: string, o: CallOptions): Promise<Attempt<never>> {
    let body = '';
    try {
      body = await this.readText(res, step, EWS_MAX_ERROR_ANSWER_BYTES);
    } catch (err) {
      if (res.status === 401 || res.status === 403) body = '';
      else throw err;
    }
    const details: ErrorDetails = { server: this.where, step, status: res.status };
    if (res.status === 401 && this.tokens) {
      const offered = schemesOf(res.authenticate);
      // Exchange Online says why in x-ms-diagnostics; on premises the header offers what it takes instead
      const bearerOffered = offered.includes('bearer');
      const why =
        offered.length > 0 && !bearerOffered
          ? ` The server does not accept OAuth bearer tokens (it offers ${offered.join(', ')}): enable OAuth for EWS on Exchange (hybrid modern authentication), or log in with a password ("ewsAuth").`
          : ` Check that the app registration has the EWS permission (${this.tokens.kind === 'app' ? 'application permission full_access_as_app of Office 365 Exchange Online, with admin consent' : "delegated EWS.AccessAsUser.All, and that the account that consented is the mailbox's or has Full Access to it"}) and that the scope asks for it (https://outlook.office365.com/…), then authorize again with \`mailintake mailbox authorize ${this.settings.name}\`.`;
      const said = this.said(res.authenticate.find((h) => /error/i.test(h)) ?? '');
      if (said) details.serverResponse = said;
      throw new MailintakeError(
        'AUTH_FAILED',
        `${this.where} refused the OAuth token for mailbox ${this.mailbox} while ${step} (401), also after it was renewed.${said ? ` The server said: "${said}".` : ''}${why}`,
        { details: { ...details, offered } },
      );
    }
    if (res.status === 401) {
      const offered = schemesOf(res.authenticate);
      const wrongScheme =
        this.auth === 'basic' && offered.length > 0 && !offered.includes('basic')
          ? ` The server does not offer Basic authentication (it offers ${offered.join(', ')}); set "ewsAuth": "ntlm".`
          : this.auth === 'ntlm' &&
              offered.length > 0 &&
              !offered.some((s) => s === 'ntlm' || s === 'negotiate')
            ? ` The server does not offer NTLM (it offers ${offered.join(', ')}); set "ewsAuth": "basic".`
            : ' Check "username" (DOMAIN\\user or user@domain) and "password".';
      throw new MailintakeError(
        'AUTH_FAILED',
        `${this.where} refused user "${this.settings.username}" (${this.authName}) while ${step} (401).${wrongScheme}`,
        { details: { ...details, offered } },
      );
    }
    if (res.status === 403) {
      const who = this.tokens?.kind === 'app' ? 'the application' : `user "${this.settings.username}"`;
      throw new MailintakeError(
        'AUTH_FAILED',
        `${this.where} forbade ${who} to use EWS while ${step} (403). EWS may be switched off for this user or mailbox (Set-CASMailbox -EWSEnabled), or an access policy excludes this client${this.tokens?.kind === 'app' ? " (an application access policy, or the tenant's EWS allow list)" : ''}.`,
        { details },
      );
    }
    if (res.status === 404) {
      throw new MailintakeError(
        'CONNECT_FAILED',
        `Nothing answers EWS at ${this.url.href} (404 while ${step}). Check "connectUrl": usually https://<mail server>/EWS/Exchange.asmx.`,
        { details },
      );
    }
    if (res.status === 500) {
      const fault = parseFault(body);
      if (fault) return this.interpret({ kind: 'fault', fault }, 500, step, o) as Attempt<never>;
    }
    if (RETRY_STATUSES.has(res.status)) {
      return {
        busy: {
          waitMs: retryAfterMs(res.retryAfter),
          code: `HTTP ${res.status}`,
          said: this.said(
            body
              .replace(/<[^>]*>/g, ' ')
              .replace(/\s+/g, ' ')
              .trim()
              .slice(0, EWS_BUSY_WORDS_MAX_CHARS),
          ),
          status: res.status,
        },
      };
    }
    const said = this.said(
      body
        .replace(/<[^>]*>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim()
        .slice(0, SERVER_WORDS_MAX_CHARS),
    );
    if (said) details.serverResponse = said;
    throw new MailintakeError(
      'PROTOCOL_ERROR',
      `${this.where} answered HTTP ${res.status} while ${step}.${said ? ` The server said: "${said}".` : ''}`,
      { details, retryable: res.status >= 500 },
    );
  }

  /** An EWS ResponseCode (from a response message or a SOAP fault) as a coded error. */
  private ewsError(
    code: string,
    message: string,
    status: number,
    step: string,
    o: CallOptions,
  ): MailintakeError {
    const said = this.said(`${code}: ${message}`);
    const details: ErrorDetails = { server: this.where, step, status, errorCode: code, serverResponse: said };
    const make = (c: ErrorCode, text: string, retryable?: boolean) =>
      new MailintakeError(c, `${text} The server said: "${said}".`, {
        details,
        ...(retryable !== undefined ? { retryable } : {}),
      });
    switch (code) {
      case 'ErrorNonExistentMailbox':
        return make(
          'FOLDER_NOT_FOUND',
          `Mailbox ${this.mailbox} does not exist on ${this.where} (while ${step}). Check "emailAddress": its first address is the mailbox.`,
        );
      case 'ErrorFolderNotFound':
      case 'ErrorItemNotFound': {
        const c = o.notFound ?? o.failCode ?? 'NOT_FOUND';
        return make(
          c,
          c === 'FOLDER_NOT_FOUND'
            ? `Folder "${this.folderName}" of mailbox ${this.mailbox} does not exist on ${this.where} (while ${step}).`
            : `${this.where} does not know what was asked (while ${step}).`,
          c === 'NOT_FOUND' ? false : undefined,
        );
      }
      case 'ErrorAccessDenied':
      case 'ErrorImpersonateUserDenied':
      case 'ErrorDelegateNoUser':
      case 'ErrorInvalidExchangeImpersonationHeaderData':
        if (this.tokens?.kind === 'app') {
          return make(
            'AUTH_FAILED',
            `${this.where} denied the application access to mailbox ${this.mailbox} while ${step} (${code}). The app registration needs the application permission full_access_as_app (Office 365 Exchange Online) with admin consent, and an application access policy, if the tenant has one, must include this mailbox.`,
          );
        }
        return make(
          'AUTH_FAILED',
          `${this.where} denied user "${this.settings.username}" access to mailbox ${this.mailbox} while ${step} (${code}). The account needs Full Access to that mailbox (Add-MailboxPermission), or use the mailbox's own account${this.tokens ? ' when authorizing' : ''}.`,
        );
      case 'ErrorInvalidServerVersion':
        return make(
          'PROTOCOL_ERROR',
          `${this.where} does not speak the EWS version Mailintake needs (Exchange 2013 SP1 or newer) while ${step}.`,
          false,
        );
      case 'ErrorTimeoutExpired':
        return make('TIMEOUT', `${this.where} timed out while ${step}. The next round tries again.`, true);
      default:
        return make(
          o.failCode ?? 'PROTOCOL_ERROR',
          `${this.where} answered ${code} while ${step}.`,
          status >= 500 ? true : undefined,
        );
    }
  }

  private parse(xml: string, op: EwsOperation, step: string): SoapAnswer {
    try {
      return parseAnswer(xml, op);
    } catch (err) {
      if (err instanceof SoapParseError) {
        throw this.protocolError(`${err.message} while ${step}`, step, err);
      }
      throw err;
    }
  }

  private async readText(res: EwsResponse, step: string, limit = MAX_ANSWER_BYTES): Promise<string> {
    const parts: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const chunk of res.body) {
        bytes += (chunk as Buffer).length;
        if (bytes > limit) {
          res.body.destroy();
          throw this.protocolError(`its answer is larger than ${limit} bytes while ${step}`, step);
        }
        parts.push(chunk as Buffer);
      }
    } catch (err) {
      throw this.transportError(err, step);
    }
    return Buffer.concat(parts).toString('utf8');
  }

  private protocolError(what: string, step: string, cause?: unknown): MailintakeError {
    return new MailintakeError(
      'PROTOCOL_ERROR',
      `${this.where} answered something Mailintake did not understand: ${what}.`,
      {
        ...(cause !== undefined ? { cause } : {}),
        details: { server: this.where, step },
      },
    );
  }

  /** The server's words for a message: cut short, and never the password or a token even if a server echoes it. */
  private said(words: string): string {
    return this.sentTokens
      .scrub(scrubPassword(words.trim(), this.settings.password))
      .slice(0, SERVER_WORDS_MAX_CHARS);
  }

  /** What Node, OpenSSL or the NTLM handshake threw, as the same coded errors the other connectors use. */
  private transportError(err: unknown, step: string): MailintakeError {
    if (err instanceof MailintakeError) return err;
    const details: ErrorDetails = { server: this.where, step };
    if (err instanceof NtlmProblem) {
      if (err.kind === 'connection') {
        return new MailintakeError(
          'CONNECT_FAILED',
          `NTLM with ${this.where} failed while ${step}: ${err.message}.`,
          {
            cause: err,
            details,
          },
        );
      }
      const hint =
        err.kind === 'not-offered' && err.offered.includes('basic') ? ' Set "ewsAuth": "basic".' : '';
      return new MailintakeError(
        'AUTH_FAILED',
        `${this.where} cannot log in user "${this.settings.username}" with NTLM while ${step}: ${err.message}.${hint}`,
        { cause: err, details: { ...details, offered: err.offered } },
      );
    }
    return httpsTransportError(
      err,
      step,
      {
        where: this.where,
        host: this.url.hostname,
        field: 'connectUrl',
        protocol: 'ews',
        timeoutMs: this.timeouts.requestMs,
      },
      details,
    );
  }
}

/** Reads an answer nobody needs to its end, so the connection is free for the next request. */
async function discard(res: EwsResponse): Promise<void> {
  res.body.resume();
  try {
    await finished(res.body);
  } catch {
    // a broken body of a refused request: the next request finds out on its own
  }
}

/** The folders of a `Folders` element (t:Folder, t:SearchFolder…): id and display name. */
function foldersOf(folders: XmlNode | undefined): { id: string; displayName: string }[] {
  const out: { id: string; displayName: string }[] = [];
  for (const [kind, list] of Object.entries(folders ?? {})) {
    if (kind.startsWith('@_')) continue;
    for (const f of asArray(list)) {
      const id = attr(child(f, 'FolderId'), 'Id');
      if (id)
        out.push({
          id,
          displayName: text(typeof f === 'object' && !Array.isArray(f) ? f.DisplayName : undefined),
        });
    }
  }
  return out;
}
