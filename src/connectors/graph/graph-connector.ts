import https from 'node:https';
import { PassThrough, Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { type ErrorCode, type ErrorDetails, MailintakeError } from '../../kernel/errors.js';
import {
  GRAPH_BACKOFF_BASE_MS as BACKOFF_BASE_MS,
  GRAPH_FETCH_CONCURRENCY as FETCH_CONCURRENCY,
  GRAPH_MAX_PAGES as MAX_PAGES,
  GRAPH_PAGE_SIZE as PAGE_SIZE,
  SERVER_WORDS_MAX_CHARS,
} from '../../kernel/limits.js';
import {
  type AccessTokenSource,
  requireTokenSource,
  SentTokens,
  staticTokenSource,
} from '../../oauth/token-source.js';
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
import { httpsTransportError, loadCa, validateTimeouts } from '../net-errors.js';
import type { MailboxSettings } from '../settings.js';

/**
 * Microsoft Graph mail connector (v1.0 REST API over HTTPS).
 *
 * Protocol facts, and what we do about them:
 * - Every request carries `Prefer: IdType="ImmutableId"`: a default Graph id changes when a mail moves between
 *   folders, an immutable id does not (learn.microsoft.com/graph/outlook-immutable-id). The identity is
 *   `graph;<immutable id>`, so a mail moved by a person and back is still recognised by the intake log.
 * - Listing is `GET /users/{mailbox}/mailFolders/{folder}/messages` ordered by receivedDateTime, paged with
 *   `@odata.nextLink`. The whole listing is read before anything is acknowledged, so a mark-read between pages
 *   cannot shift an offset-based skip token. A nextLink pointing anywhere but the configured endpoint is
 *   refused: following it would send the mailbox's bearer token to that host.
 * - Graph refuses `$filter` + `$orderby` unless every `$orderby` property comes first in the `$filter`
 *   ("The restriction or sort order is too complex for this operation"), hence the always-true
 *   `receivedDateTime ge 1900-01-01…` clause in front of `isRead eq false`.
 * - The raw mail is `GET /messages/{id}/$value` (MIME), streamed; nothing is marked read by reading it.
 * - Size: Graph v1.0 has no size property; it is the MAPI property PR_MESSAGE_SIZE (`Integer 0x0E08`), read as
 *   a single-value extended property.
 * - Delete is `DELETE /messages/{id}`: the mail leaves the folder and Exchange keeps it in Recoverable Items
 *   for the tenant's retention period (a soft delete, so an admin can still recover a mail). We do not move to
 *   Deleted Items, where it would still count against the quota and be visible to the mailbox's users.
 * - Move is `POST /messages/{id}/move` to a top-level folder of the mailbox found by displayName, created when
 *   missing (a 409 ErrorFolderExists from a concurrent create is answered by looking it up again).
 * - Throttling: 429 and 503 (and 504) are retried after `Retry-After` seconds (or a back-off when absent), a
 *   bounded number of times and within a bounded total wait; then the round ends with TIMEOUT and the next
 *   round tries again. Nothing was changed by a refused request, so retrying a PATCH/DELETE/POST is safe.
 * - Authentication: `Authorization: Bearer <token>` on every request, the token from an AccessTokenSource
 *   (OAuth 2.0, refreshed by it; or the static `accessToken` setting). A 401 means the token was refused
 *   (expired early, revoked): it is renewed once and the request sent once more; a second 401 is AUTH_FAILED.
 *   403 (valid token, no permission for this mailbox) is AUTH_FAILED at once: a new token would not help.
 */

/** The parts of `fetch` the connector uses; the global `fetch` fits, so does a test double. */
export type GraphFetch = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<Response>;

export interface GraphConnectorOptions extends HttpsApiOptions {
  /**
   * The HTTP client. Default: Node's https with the private CA (the global fetch cannot be given a CA without
   * undici's Agent, which is not a dependency).
   */
  fetch?: GraphFetch;
  /**
   * Where the bearer token comes from. Required with `settings.auth` "oauth2"; with "token" (the static
   * `accessToken` setting) it defaults to that token.
   */
  tokens?: AccessTokenSource;
}

export { retryAfterMs };

/** What `RemoteMail.handle` holds for Graph: the immutable message id. */
export interface GraphHandle {
  id: string;
}

const IDENTITY_PREFIX = 'graph;';
const RETRY_STATUSES: ReadonlySet<number> = new Set([429, 503, 504]);
/** PR_MESSAGE_SIZE as Graph names it in a single-value extended property. */
const SIZE_PROPERTY = 'Integer 0x0E08';
const EXPAND_SIZE = `singleValueExtendedProperties($filter=id eq '${SIZE_PROPERTY}')`;

interface GraphMessage {
  id: string;
  internetMessageId?: string;
  isRead?: boolean;
  receivedDateTime?: string;
  sentDateTime?: string;
  subject?: string | null;
  from?: { emailAddress?: { name?: string; address?: string } } | null;
  singleValueExtendedProperties?: { id: string; value: string }[];
}

interface GraphFolder {
  id: string;
  displayName?: string;
}

interface GraphPage<T> {
  value?: T[];
  '@odata.nextLink'?: string;
}

/** Graph's error body: `{ "error": { "code": "…", "message": "…" } }`. */
interface GraphErrorBody {
  error?: { code?: string; message?: string };
}

export class GraphConnector implements Connector {
  readonly traits: ConnectorTraits = { keepAction: 'mark-read', listsKeptMail: false, folders: true };
  private readonly settings: MailboxSettings;
  private readonly opts: GraphConnectorOptions;
  private readonly timeouts: RequestTimeouts;
  private readonly retry: RetryLimits;
  private readonly endpoint: URL;
  private readonly mailbox: string;
  private readonly folder: string;
  private readonly tokens: AccessTokenSource;
  /** Tokens sent by this connector: scrubbed from every message and detail, even if a server echoes one. */
  private readonly sentTokens = new SentTokens();
  private http: GraphFetch | null = null;
  /** displayName → folder id, for move targets found or created in this session. */
  private folderIds = new Map<string, string>();

  constructor(settings: MailboxSettings, opts: GraphConnectorOptions = {}) {
    this.settings = settings;
    this.opts = opts;
    this.timeouts = validateTimeouts(DEFAULT_REQUEST_TIMEOUTS, opts.timeouts);
    this.retry = validateTimeouts(DEFAULT_RETRY_LIMITS, opts.retry);
    this.endpoint = new URL(settings.graphEndpoint ?? 'https://graph.microsoft.com');
    this.mailbox = settings.emailAddress[0] ?? settings.username;
    this.folder = settings.folder || 'inbox';
    // OAuth: the runtime's source; otherwise Graph's static "accessToken"
    this.tokens =
      requireTokenSource(settings, opts.tokens, 'Graph') ??
      opts.tokens ??
      staticTokenSource(settings.accessToken ?? '');
  }

  /** How messages name the server: the endpoint's origin (host and port). */
  private get where(): string {
    return this.endpoint.host;
  }

  private get userPath(): string {
    return `/v1.0/users/${encodeURIComponent(this.mailbox)}`;
  }

  async open(): Promise<void> {
    await this.close();
    const ca = await loadCa(this.settings, this.opts.ca);
    this.http = this.opts.fetch ?? httpsFetch({ ca, timeoutMs: this.timeouts.requestMs });
    try {
      // one request proves endpoint, TLS, token, mailbox and folder at once
      await this.json<GraphFolder>(
        'GET',
        `${this.userPath}/mailFolders/${encodeURIComponent(this.folder)}?$select=id,displayName`,
        `opening folder "${this.folder}" of ${this.mailbox}`,
        { notFound: 'FOLDER_NOT_FOUND' },
      );
    } catch (err) {
      this.http = null;
      throw err;
    }
  }

  async listNew(): Promise<RemoteMail[]> {
    // mark-read keeps read mail in the folder, so only unread mail is new; delete and move empty the folder
    const filter =
      this.settings.afterFetch === 'mark-read'
        ? `&$filter=${encodeURIComponent('receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false')}`
        : '';
    let next: string | undefined =
      `${this.userPath}/mailFolders/${encodeURIComponent(this.folder)}/messages` +
      `?$select=id,internetMessageId,isRead,receivedDateTime&$expand=${encodeURIComponent(EXPAND_SIZE)}` +
      `${filter}&$orderby=${encodeURIComponent('receivedDateTime asc')}&$top=${PAGE_SIZE}`;
    const mails: RemoteMail[] = [];
    const seen = new Set<string>();
    for (let page = 0; next !== undefined; page++) {
      if (page === MAX_PAGES) {
        throw new MailintakeError(
          'PROTOCOL_ERROR',
          `${this.where} kept paging past ${MAX_PAGES} pages while listing "${this.folder}" of ${this.mailbox}`,
          { details: { server: this.where } },
        );
      }
      const body: GraphPage<GraphMessage> = await this.json<GraphPage<GraphMessage>>(
        'GET',
        next,
        `listing "${this.folder}" of ${this.mailbox}`,
        { notFound: 'FOLDER_NOT_FOUND' },
      );
      for (const m of body.value ?? []) {
        if (typeof m.id !== 'string' || seen.has(m.id)) continue; // a mail arriving mid-paging can repeat
        seen.add(m.id);
        const size = sizeOf(m);
        mails.push({
          identity: `${IDENTITY_PREFIX}${m.id}`,
          ...(size !== undefined ? { size } : {}),
          handle: { id: m.id } satisfies GraphHandle,
        });
      }
      next = body['@odata.nextLink'];
    }
    return mails;
  }

  private idOf(mail: RemoteMail): string {
    const handle = mail.handle as Partial<GraphHandle> | undefined;
    if (handle && typeof handle.id === 'string') return handle.id;
    if (mail.identity.startsWith(IDENTITY_PREFIX)) return mail.identity.slice(IDENTITY_PREFIX.length);
    throw new MailintakeError('PROTOCOL_ERROR', `Mail ${mail.identity} is not a Graph mail`, {
      retryable: false,
    });
  }

  private messagePath(id: string): string {
    return `${this.userPath}/messages/${encodeURIComponent(id)}`;
  }

  async stream(mail: RemoteMail): Promise<Readable> {
    const id = this.idOf(mail);
    const step = `reading mail ${mail.identity}`;
    const res = await this.request('GET', `${this.messagePath(id)}/$value`, step, {
      notFound: 'NOT_FOUND',
    });
    if (!res.body) {
      throw new MailintakeError('PROTOCOL_ERROR', `${this.where} sent no body while ${step}`, {
        details: { server: this.where, step },
      });
    }
    const source = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    // a connection lost mid-body reaches the reader as a coded error, ending the round (not the mail's fault)
    const out = new PassThrough();
    source.on('error', (err) => out.destroy(this.transportError(err, step)));
    out.on('close', () => {
      if (!source.destroyed) source.destroy();
    });
    source.pipe(out);
    return out;
  }

  /**
   * Small mails several at a time: HTTP has no pipelining to lean on, so up to FETCH_CONCURRENCY `$value`
   * requests run at once — Exchange allows 4 concurrent requests per app and mailbox (MailboxConcurrency)
   * and throttles beyond that. A mail gone meanwhile is left out; the caller sees it missing.
   */
  async fetchMany(mails: RemoteMail[]): Promise<Map<string, Buffer>> {
    const sources: (Buffer | undefined)[] = new Array(mails.length);
    let next = 0;
    const worker = async () => {
      while (next < mails.length) {
        const i = next++;
        const mail = mails[i]!;
        const step = `reading mail ${mail.identity}`;
        const res = await this.request('GET', `${this.messagePath(this.idOf(mail))}/$value`, step, {
          allowNotFound: true,
        });
        if (res.status === 404) {
          await res.body?.cancel();
          continue;
        }
        try {
          sources[i] = Buffer.from(await res.arrayBuffer());
        } catch (err) {
          throw this.transportError(err, step);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(FETCH_CONCURRENCY, mails.length) }, worker));
    const result = new Map<string, Buffer>();
    mails.forEach((mail, i) => {
      const source = sources[i];
      if (source) result.set(mail.identity, source);
    });
    return result;
  }

  async acknowledge(mails: RemoteMail[], action: AfterFetch): Promise<void> {
    await applyAfterFetch(mails, action, {
      markRead: async () => {
        for (const mail of mails) {
          await this.change(
            'PATCH',
            this.messagePath(this.idOf(mail)),
            `marking mail ${mail.identity} as read`,
            JSON.stringify({ isRead: true }),
          );
        }
      },
      delete: async () => {
        for (const mail of mails) {
          await this.change('DELETE', this.messagePath(this.idOf(mail)), `deleting mail ${mail.identity}`);
        }
      },
      move: (moving, folder) => this.moveTo(moving, folder),
    });
  }

  /**
   * A change after commit. A 404 means the mail is gone already (a person deleted or moved it, or our own
   * earlier attempt went through but its answer was lost): the goal, "not listed again", is met.
   */
  private async change(method: string, path: string, step: string, body?: string): Promise<void> {
    const res = await this.request(method, path, step, {
      ...(body !== undefined ? { body } : {}),
      failCode: 'ACK_FAILED',
      allowNotFound: true,
    });
    await res.body?.cancel();
  }

  async moveTo(mails: RemoteMail[], folder: string): Promise<void> {
    if (mails.length === 0) return;
    const destinationId = await this.ensureFolder(folder);
    for (const mail of mails) {
      await this.change(
        'POST',
        `${this.messagePath(this.idOf(mail))}/move`,
        `moving mail ${mail.identity} to "${folder}"`,
        JSON.stringify({ destinationId }),
      );
    }
  }

  /**
   * The error folder's "move mails to inbox". Immutable ids survive a move, so a wanted mail is recognised by
   * its identity; only ids listed in the error folder right now are moved (one a person moved elsewhere, or
   * one already moved back by an attempt whose answer was lost, stays where it is).
   */
  async moveBack(folder: string, wanted: WantedMail[]): Promise<string[]> {
    if (wanted.length === 0) return [];
    const folderId = await this.findFolder(folder);
    if (!folderId) return []; // never created: nothing was ever moved there
    const present = new Set<string>();
    let next: string | undefined =
      `${this.userPath}/mailFolders/${encodeURIComponent(folderId)}/messages?$select=id&$top=${PAGE_SIZE}`;
    for (let page = 0; next !== undefined; page++) {
      if (page === MAX_PAGES) {
        throw new MailintakeError('PROTOCOL_ERROR', `${this.where} kept paging while listing "${folder}"`, {
          details: { server: this.where },
        });
      }
      const body: GraphPage<GraphMessage> = await this.json<GraphPage<GraphMessage>>(
        'GET',
        next,
        `listing the error folder "${folder}" of ${this.mailbox}`,
        { failCode: 'ACK_FAILED' },
      );
      for (const m of body.value ?? []) if (typeof m.id === 'string') present.add(m.id);
      next = body['@odata.nextLink'];
    }
    const moved: string[] = [];
    for (const w of wanted) {
      if (!w.identity.startsWith(IDENTITY_PREFIX)) continue;
      const id = w.identity.slice(IDENTITY_PREFIX.length);
      if (!present.has(id)) continue;
      await this.change(
        'POST',
        `${this.messagePath(id)}/move`,
        `moving mail ${w.identity} from "${folder}" back to "${this.folder}"`,
        JSON.stringify({ destinationId: this.folder }),
      );
      moved.push(w.key);
    }
    return moved;
  }

  /** The id of the top-level folder with this displayName, or undefined. */
  private async findFolder(name: string): Promise<string | undefined> {
    // OData string literals escape a quote by doubling it
    const filter = encodeURIComponent(`displayName eq '${name.replace(/'/g, "''")}'`);
    const found = await this.json<GraphPage<GraphFolder>>(
      'GET',
      `${this.userPath}/mailFolders?$filter=${filter}&$select=id,displayName`,
      `finding folder "${name}"`,
      { failCode: 'ACK_FAILED' },
    );
    return found.value?.find((f) => f.displayName === name)?.id;
  }

  /** The id of the top-level folder with this displayName, created when missing. */
  private async ensureFolder(name: string): Promise<string> {
    const known = this.folderIds.get(name);
    if (known) return known;
    const step = `creating folder "${name}"`;
    const find = () => this.findFolder(name);
    let id = await find();
    if (!id) {
      const res = await this.request('POST', `${this.userPath}/mailFolders`, step, {
        body: JSON.stringify({ displayName: name }),
        failCode: 'ACK_FAILED',
        allowConflict: true,
      });
      if (res.status === 409) {
        await res.body?.cancel();
        id = await find(); // created meanwhile by another worker or a person
      } else {
        id = ((await res.json()) as GraphFolder).id;
      }
    }
    if (!id) {
      throw new MailintakeError('ACK_FAILED', `${this.where} did not give an id for folder "${name}"`, {
        details: { server: this.where, step },
      });
    }
    this.folderIds.set(name, id);
    return id;
  }

  /** The oldest mail of the folder, described by properties only: nothing is read, flagged or moved. */
  async sample(): Promise<SampleMail | null> {
    const step = `reading the oldest mail in "${this.folder}" of ${this.mailbox}`;
    const page = await this.json<GraphPage<GraphMessage>>(
      'GET',
      `${this.userPath}/mailFolders/${encodeURIComponent(this.folder)}/messages` +
        `?$select=id,from,subject,sentDateTime,receivedDateTime,hasAttachments&$expand=${encodeURIComponent(EXPAND_SIZE)}` +
        `&$orderby=${encodeURIComponent('receivedDateTime asc')}&$top=1`,
      step,
      { notFound: 'FOLDER_NOT_FOUND' },
    );
    const m = page.value?.[0];
    if (!m) return null;
    const attachments = await this.json<GraphPage<{ name?: string }>>(
      'GET',
      `${this.messagePath(m.id)}/attachments?$select=name`,
      step,
    );
    const from = m.from?.emailAddress;
    // SampleMail.date is the mail's own Date header, as IMAP's ENVELOPE gives it: Graph calls that sentDateTime
    const date = m.sentDateTime ?? m.receivedDateTime;
    return {
      from: from?.address ? (from.name ? `${from.name} <${from.address}>` : from.address) : null,
      subject: m.subject ?? null,
      date: date ? new Date(date).toISOString() : null,
      size: sizeOf(m) ?? 0,
      attachments: (attachments.value ?? []).map((a, i) => a.name || `attachment-${i + 1}`),
    };
  }

  async close(): Promise<void> {
    // HTTP has no session to end; requests in flight belong to their callers
    this.http = null;
    this.folderIds = new Map();
  }

  private async json<T>(method: string, path: string, step: string, o: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, step, o);
    try {
      return (await res.json()) as T;
    } catch (err) {
      throw new MailintakeError(
        'PROTOCOL_ERROR',
        `${this.where} answered ${res.status} with a body that is not JSON while ${step}`,
        { cause: err, details: { server: this.where, step } },
      );
    }
  }

  /** One request with the throttling retries; any answer that is not a success becomes a coded error. */
  private async request(method: string, pathOrUrl: string, step: string, o: RequestOptions = {}) {
    const http = this.http;
    if (!http) {
      throw new MailintakeError('PROTOCOL_ERROR', `Not connected to ${this.where}: open() was not called`, {
        retryable: false,
      });
    }
    const url = this.resolve(pathOrUrl, step);
    const headers: Record<string, string> = {
      Prefer: 'IdType="ImmutableId"',
      Accept: 'application/json',
      'User-Agent': 'Mailintake',
      ...(o.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    };
    const sleep = this.opts.sleep ?? sleepFor;
    let waited = 0;
    /** Set once the server refused a token and the source gave a new one: that one is used from then on. */
    let renewed: string | undefined;
    // `attempt` counts throttled tries only: a renewed token is not a throttling retry
    for (let attempt = 1; ; ) {
      // asked before each try: the source refreshes a token shortly before it expires (a throttled request
      // may wait for minutes)
      const token = renewed ?? (await this.tokens.get());
      this.sentTokens.remember(token);
      let res: Response;
      try {
        res = await http(url, {
          method,
          headers: { ...headers, Authorization: `Bearer ${token}` },
          ...(o.body !== undefined ? { body: o.body } : {}),
        });
      } catch (err) {
        throw this.transportError(err, step);
      }
      if (res.ok) return res;
      // a static "accessToken" cannot be renewed: its 401 is answered with Graph's own words below
      if (res.status === 401 && renewed === undefined && this.settings.auth === 'oauth2') {
        // refused before its time (revoked, clock skew, a password change): one new token, one more try.
        // What renew throws (OAUTH_* codes: consent withdrawn, provider down) is the answer as it is.
        await res.body?.cancel();
        renewed = await this.tokens.renew(token);
        this.opts.logger?.info('Graph refused the access token; renewed it and sending again', {
          server: this.where,
          step,
        });
        continue;
      }
      if (res.status === 404 && o.allowNotFound) return res;
      if (res.status === 409 && o.allowConflict) return res;
      if (RETRY_STATUSES.has(res.status)) {
        const wait = retryAfterMs(res.headers.get('retry-after')) ?? BACKOFF_BASE_MS * 2 ** (attempt - 1);
        if (attempt < this.retry.maxAttempts && waited + wait <= this.retry.maxTotalWaitMs) {
          await res.body?.cancel();
          this.opts.logger?.info('Graph throttled the request; waiting as told', {
            server: this.where,
            status: res.status,
            waitMs: wait,
            attempt,
          });
          waited += wait;
          await sleep(wait);
          attempt++;
          continue;
        }
        throw await this.httpError(res, step, o, { attempts: attempt, waitedMs: waited });
      }
      throw await this.httpError(res, step, o);
    }
  }

  /** An absolute URL on the endpoint; a nextLink elsewhere would carry the token to another host. */
  private resolve(pathOrUrl: string, step: string): string {
    const url = new URL(pathOrUrl, this.endpoint);
    if (url.origin !== this.endpoint.origin) {
      throw new MailintakeError(
        'PROTOCOL_ERROR',
        `${this.where} sent a link to ${url.origin} while ${step}; it is not followed (the access token must not leave ${this.endpoint.origin})`,
        { retryable: false, details: { server: this.where, step } },
      );
    }
    // a path-prefixed custom endpoint (a proxy at https://host/graph) keeps its prefix
    if (!pathOrUrl.startsWith('http') && this.endpoint.pathname !== '/') {
      return new URL(this.endpoint.pathname.replace(/\/$/, '') + pathOrUrl, this.endpoint).toString();
    }
    return url.toString();
  }

  private async httpError(
    res: Response,
    step: string,
    o: RequestOptions,
    throttled?: { attempts: number; waitedMs: number },
  ): Promise<MailintakeError> {
    let text = '';
    try {
      text = await res.text();
    } catch {
      // the body is only for the message
    }
    let graphCode: string | undefined;
    let graphMessage: string | undefined;
    try {
      const body = JSON.parse(text) as GraphErrorBody;
      graphCode = body.error?.code;
      graphMessage = body.error?.message;
    } catch {
      // not Graph's JSON (a proxy's HTML page): the raw text, cut short, is still the server's words
    }
    const serverResponse = this.sentTokens.scrub(
      graphCode || graphMessage
        ? `${graphCode ?? ''}: ${graphMessage ?? ''}`
        : text.slice(0, SERVER_WORDS_MAX_CHARS),
    );
    const said = serverResponse ? ` The server said: "${serverResponse}".` : '';
    const details: ErrorDetails = { server: this.where, step, status: res.status };
    if (graphCode) details.errorCode = graphCode;
    if (serverResponse) details.serverResponse = serverResponse;
    const make = (code: ErrorCode, message: string, retryable?: boolean) =>
      new MailintakeError(code, message, { details, ...(retryable !== undefined ? { retryable } : {}) });

    if (res.status === 401) {
      const advice =
        this.settings.auth === 'oauth2'
          ? ` A renewed token was refused too. Check that the app registration is for this endpoint's cloud and has the Mail.ReadWrite permission (${this.tokens.kind === 'app' ? 'application permission, with admin consent' : 'delegated'}), then authorize again with \`mailintake mailbox authorize ${this.settings.name}\`.`
          : ' The token may be expired or issued for another resource; set a new "accessToken", or configure OAuth ("oauth") so Mailintake refreshes tokens itself.';
      return make(
        'AUTH_FAILED',
        `${this.where} refused the access token for mailbox ${this.mailbox} while ${step} (401${graphCode ? ` ${graphCode}` : ''}).${said}${advice}`,
      );
    }
    if (res.status === 403) {
      const advice =
        this.settings.auth === 'oauth2' && this.tokens.kind === 'delegated'
          ? ' The token is valid but the account that consented may not open this mailbox: it needs Full Access to it (a shared mailbox), and the app registration the delegated Mail.ReadWrite (Mail.ReadWrite.Shared for a shared mailbox) permission.'
          : ' The token is valid but lacks the Mail.ReadWrite permission for this mailbox (or an application access policy excludes it).';
      return make(
        'AUTH_FAILED',
        `${this.where} denied access to mailbox ${this.mailbox} while ${step} (403${graphCode ? ` ${graphCode}` : ''}).${said}${advice}`,
      );
    }
    if (throttled) {
      return make(
        'TIMEOUT',
        `${this.where} kept answering ${res.status}${graphCode ? ` ${graphCode}` : ''} (throttled) while ${step}: gave up after ${throttled.attempts} attempts and ${Math.round(throttled.waitedMs / 1000)} s of waiting.${said} Nothing was lost; the next round tries again.`,
        true,
      );
    }
    if (res.status === 404 || (res.status === 400 && graphCode === 'ErrorInvalidIdMalformed')) {
      const code = o.notFound ?? o.failCode ?? 'NOT_FOUND';
      const what =
        code === 'FOLDER_NOT_FOUND'
          ? `Mailbox ${this.mailbox} or its folder "${this.folder}" does not exist on ${this.where}`
          : `${this.where} does not know what was asked`;
      const hint =
        code === 'FOLDER_NOT_FOUND'
          ? ' Check "emailAddress" (the mailbox) and "folder" (a well-known name such as "inbox", or a folder id).'
          : '';
      return make(code, `${what} (while ${step}).${said}${hint}`, code === 'NOT_FOUND' ? false : undefined);
    }
    const code: ErrorCode = o.failCode ?? 'PROTOCOL_ERROR';
    return make(
      code,
      `${this.where} answered ${res.status}${graphCode ? ` ${graphCode}` : ''} while ${step}.${said}`,
      res.status >= 500 ? true : undefined,
    );
  }

  /** What Node, OpenSSL or fetch threw, as the same coded errors the IMAP and POP3 connectors use. */
  private transportError(err: unknown, step: string): MailintakeError {
    return httpsTransportError(
      err,
      step,
      {
        where: this.where,
        host: this.endpoint.hostname,
        field: 'graphEndpoint',
        protocol: 'graph',
        timeoutMs: this.timeouts.requestMs,
      },
      {},
    );
  }
}

interface RequestOptions {
  body?: string;
  /** The code for a 404 (mailbox or folder: FOLDER_NOT_FOUND; a mail: NOT_FOUND). */
  notFound?: ErrorCode;
  /** The code for other refusals (after commit: ACK_FAILED). */
  failCode?: ErrorCode;
  allowNotFound?: boolean;
  allowConflict?: boolean;
}

function sizeOf(m: GraphMessage): number | undefined {
  const prop = m.singleValueExtendedProperties?.find(
    (p) => p.id.toLowerCase() === 'integer 0xe08' || p.id.toLowerCase() === SIZE_PROPERTY.toLowerCase(),
  );
  const n = prop ? Number(prop.value) : Number.NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * A `fetch` on node:https, for a private CA and an idle timeout: the body is a web stream read as it
 * arrives, so a 50 MB mail is never held whole.
 */
export function httpsFetch(o: { ca?: Buffer | undefined; timeoutMs: number }): GraphFetch {
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const req = https.request(url, {
        method: init.method,
        headers: {
          ...init.headers,
          ...(init.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(init.body)) } : {}),
        },
        ...(o.ca ? { ca: [o.ca] } : {}),
        minVersion: 'TLSv1.2',
        // a fresh connection per request: nothing shared between mailboxes, and no stale keep-alive socket
        // (one Graph's front end closed) to fail the next request; a keep-alive agent is a later optimisation
        agent: false,
      });
      req.setTimeout(o.timeoutMs, () => {
        req.destroy(Object.assign(new Error(`no answer within ${o.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) for (const item of v) headers.append(k, item);
          else if (v !== undefined) headers.set(k, v);
        }
        const status = res.statusCode ?? 502;
        const empty = status === 204 || status === 205 || status === 304;
        // after the headers, a dropped connection or silence surfaces as an error of the body stream
        res.on('aborted', () =>
          res.destroy(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' })),
        );
        req.on('error', (err) => res.destroy(err));
        if (empty) res.resume();
        resolve(
          new Response(empty ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>), {
            status,
            headers,
          }),
        );
      });
      if (init.body !== undefined) req.write(init.body);
      req.end();
    });
}
