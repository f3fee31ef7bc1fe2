/**
 * A Microsoft Graph double: a local HTTPS server answering exactly the mail requests the Graph connector makes,
 * in the shapes Microsoft publishes (learn.microsoft.com/graph/api/resources/message, /mailfolder,
 * /errors, /throttling):
 *   GET    /v1.0/users/{mailbox}/mailFolders/{folder}?$select=…
 *   GET    /v1.0/users/{mailbox}/mailFolders?$filter=displayName eq '…'
 *   POST   /v1.0/users/{mailbox}/mailFolders                       {displayName}
 *   GET    /v1.0/users/{mailbox}/mailFolders/{folder}/messages?$select&$expand&$filter&$orderby&$top&$skip
 *   GET    /v1.0/users/{mailbox}/messages/{id}/$value
 *   GET    /v1.0/users/{mailbox}/messages/{id}/attachments?$select=name
 *   PATCH  /v1.0/users/{mailbox}/messages/{id}                      {isRead}
 *   DELETE /v1.0/users/{mailbox}/messages/{id}
 *   POST   /v1.0/users/{mailbox}/messages/{id}/move                 {destinationId}
 * Collections are `{ "@odata.context", "value": [...], "@odata.nextLink" }`; errors are
 * `{ "error": { "code", "message", "innerError" } }`; throttling is 429 with `Retry-After` (seconds).
 * Mail lives in memory; ids are immutable (they survive a move). `Authorization: Bearer <token>` is accepted
 * with the configured fixed token, or with any token the `acceptBearer` verifier accepts (an OAuth test's
 * provider decides); anything else is Microsoft's 401 InvalidAuthenticationToken. Faults (throttling, 5xx,
 * slow answers, dropped connections) are injected per request. Test-only: nothing under src/ imports this.
 */

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { makeCertificate } from '../support/certificate.js';
import { type FaultRuleOf, FaultRules } from './faults.js';
import { isoSeconds, mailFacts } from './mail-facts.js';

/**
 * Decides whether a bearer token is valid: null refuses it (401); `subject` is the account a delegated token
 * acts as, null for an application token (client credentials).
 */
export type BearerVerifier = (token: string) => Promise<{ subject: string | null } | null>;

export interface GraphDoubleOptions {
  /** A fixed bearer token accepted as it is (Graph's static "accessToken"). */
  token?: string;
  /** Bearer tokens accepted through a verifier (OAuth tests: the test's provider issued them). */
  acceptBearer?: BearerVerifier;
  /** The certificate's only name (DNS). Default "localhost", so 127.0.0.1 is a name mismatch. */
  certName?: string;
}

/** What a fault does to the request it hits. */
export type GraphFault =
  | { kind: 'status'; status: number; retryAfter?: number; code?: string }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'drop' }
  /** Headers and half the body of a `$value`, then the connection is cut. */
  | { kind: 'drop-mid-body' };

/** A fault for this double's requests (see faults.ts). */
export type FaultRule = FaultRuleOf<GraphRequest, GraphFault>;

export interface GraphRequest {
  method: string;
  /** Path without the query, e.g. `/v1.0/users/a@b/messages/X/$value` (decoded). */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /**
   * Who the request was authenticated as: undefined for the fixed token (or a refused one); with
   * `acceptBearer`, the verifier's subject (null: an application token).
   */
  subject?: string | null;
}

interface Folder {
  id: string;
  displayName: string;
  wellKnownName?: string;
}

interface StoredMail {
  id: string;
  folderId: string;
  raw: Buffer;
  isRead: boolean;
  receivedDateTime: string;
  sentDateTime: string | null;
  internetMessageId: string | null;
  subject: string | null;
  from: { name: string; address: string } | null;
  attachments: string[];
}

interface Mailbox {
  address: string;
  folders: Folder[];
  mails: StoredMail[];
}

const WELL_KNOWN: [string, string][] = [
  ['inbox', 'Inbox'],
  ['deleteditems', 'Deleted Items'],
  ['drafts', 'Drafts'],
  ['sentitems', 'Sent Items'],
  ['junkemail', 'Junk Email'],
  ['archive', 'Archive'],
];

/** Exchange ids are long url-safe base64 strings; immutable ones keep their value across folders. */
const newId = (prefix: string) => `${prefix}${randomBytes(24).toString('base64url')}=`;

export class GraphDouble {
  /** The fixed token accepted ('' when only the verifier decides). */
  readonly token: string;
  readonly caFile: string;
  /** Every request, in order (tests assert on headers and paths). */
  readonly requests: GraphRequest[] = [];
  private readonly server: https.Server;
  private readonly dir: string;
  private readonly mailboxes = new Map<string, Mailbox>();
  private readonly faults = new FaultRules<GraphRequest, GraphFault>();
  /** receivedDateTime of the next delivered mail: one second apart, so "oldest first" is well defined. */
  private clock = Date.parse('2025-01-01T00:00:00Z');
  private deniedMailboxes = new Set<string>();
  private readonly acceptBearer: BearerVerifier | undefined;

  private constructor(server: https.Server, dir: string, opts: GraphDoubleOptions) {
    this.server = server;
    this.dir = dir;
    this.token = opts.token ?? '';
    this.acceptBearer = opts.acceptBearer;
    this.caFile = path.join(dir, 'cert.pem');
  }

  static async start(opts: GraphDoubleOptions): Promise<GraphDouble> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graph-double-'));
    // One DNS name only (default localhost), so that connecting by 127.0.0.1 is a name mismatch.
    await makeCertificate(dir, [opts.certName ?? 'localhost']);
    const server = https.createServer({
      key: fs.readFileSync(path.join(dir, 'key.pem')),
      cert: fs.readFileSync(path.join(dir, 'cert.pem')),
    });
    const double = new GraphDouble(server, dir, opts);
    server.on('request', (req, res) => {
      double.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) double.error(res, 500, 'InternalServerError', String(err));
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return double;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The endpoint to configure as graphEndpoint. */
  get url(): string {
    return `https://localhost:${this.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** A mailbox with the well-known folders, empty. Idempotent. */
  addMailbox(address: string): void {
    const key = address.toLowerCase();
    if (this.mailboxes.has(key)) return;
    this.mailboxes.set(key, {
      address,
      folders: WELL_KNOWN.map(([wellKnownName, displayName]) => ({
        id: newId('AAMkF'),
        displayName,
        wellKnownName,
      })),
      mails: [],
    });
  }

  /** The token is valid, but this mailbox answers 403 ErrorAccessDenied (no permission for it). */
  denyMailbox(address: string): void {
    this.deniedMailboxes.add(address.toLowerCase());
  }

  /** Raw MIME mails into the inbox (or another folder by displayName), unread; returns their ids. */
  async deliver(address: string, raws: Buffer[], folder = 'Inbox'): Promise<string[]> {
    this.addMailbox(address);
    const box = this.mailboxes.get(address.toLowerCase())!;
    const target = box.folders.find((f) => f.displayName === folder)!;
    const ids: string[] = [];
    for (const raw of raws) {
      const { sent, ...facts } = await mailFacts(raw);
      this.clock += 1000;
      const mail: StoredMail = {
        id: newId('AAkALg'),
        folderId: target.id,
        raw,
        isRead: false,
        receivedDateTime: isoSeconds(new Date(this.clock)),
        sentDateTime: sent,
        ...facts,
      };
      box.mails.push(mail);
      ids.push(mail.id);
    }
    return ids;
  }

  /** Mails in a folder (by displayName or well-known name), oldest first, whatever their state. */
  messages(address: string, folder = 'inbox'): { id: string; messageId: string | null; isRead: boolean }[] {
    const box = this.mailboxes.get(address.toLowerCase());
    if (!box) return [];
    const f = box.folders.find((x) => x.displayName === folder || x.wellKnownName === folder.toLowerCase());
    if (!f) return [];
    return box.mails
      .filter((m) => m.folderId === f.id)
      .map((m) => ({ id: m.id, messageId: m.internetMessageId, isRead: m.isRead }));
  }

  /** Inject a fault; rules are checked in the order added, and one request takes at most one fault. */
  inject(rule: FaultRule): void {
    this.faults.add(rule);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const r: GraphRequest = {
      method: req.method ?? 'GET',
      path: decodeURIComponent(url.pathname),
      query: url.searchParams,
      headers: req.headers,
    };
    this.requests.push(r);
    const body = await readBody(req);
    res.setHeader('request-id', randomBytes(16).toString('hex'));
    res.setHeader('client-request-id', randomBytes(16).toString('hex'));

    const fault = this.faults.take(r);
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'slow') await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
    if (fault?.kind === 'status') {
      if (fault.retryAfter !== undefined) res.setHeader('Retry-After', String(fault.retryAfter));
      const code =
        fault.code ??
        (fault.status === 429
          ? 'ApplicationThrottled'
          : fault.status === 503
            ? 'ServiceUnavailable'
            : 'InternalServerError');
      const message =
        fault.status === 429
          ? 'Application is over its MailboxConcurrency limit.'
          : fault.status === 503
            ? 'The service is temporarily unavailable.'
            : 'An internal server error occurred.';
      this.error(res, fault.status, code, message);
      return;
    }

    const auth = req.headers.authorization;
    const bearer = auth?.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined;
    let accepted = this.token !== '' && bearer === this.token;
    if (!accepted && bearer && this.acceptBearer) {
      const verdict = await this.acceptBearer(bearer);
      if (verdict) {
        accepted = true;
        r.subject = verdict.subject;
      }
    }
    if (!accepted) {
      res.setHeader(
        'WWW-Authenticate',
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"',
      );
      this.error(
        res,
        401,
        'InvalidAuthenticationToken',
        !bearer
          ? 'Access token is empty.'
          : this.acceptBearer
            ? 'Lifetime validation failed, the token is expired.'
            : 'Access token validation failure. Invalid audience.',
      );
      return;
    }

    const m = /^\/v1\.0\/users\/([^/]+)(\/.*)$/.exec(r.path);
    if (!m) {
      this.error(
        res,
        400,
        'BadRequest',
        `Resource not found for the segment '${r.path.split('/')[2] ?? ''}'.`,
      );
      return;
    }
    const address = m[1]!.toLowerCase();
    const rest = m[2]!;
    // As Graph does: a delegated token (it has a user) opens that user's own mailbox only; another one is 403
    if (r.subject && r.subject.toLowerCase() !== address) {
      this.error(res, 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
      return;
    }
    const box = this.mailboxes.get(address);
    if (!box) {
      this.error(res, 404, 'ErrorInvalidUser', `The requested user '${m[1]}' is invalid.`);
      return;
    }
    if (this.deniedMailboxes.has(address)) {
      this.error(res, 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
      return;
    }
    res.setHeader('Preference-Applied', 'IdType="ImmutableId"');
    await this.route(r, rest, box, body, res, fault);
  }

  private async route(
    r: GraphRequest,
    rest: string,
    box: Mailbox,
    body: Buffer,
    res: ServerResponse,
    fault: GraphFault | undefined,
  ): Promise<void> {
    const base = `${this.url}/v1.0/$metadata#users('${encodeURIComponent(box.address)}')`;
    const at = (method: string, pattern: RegExp) => (r.method === method ? pattern.exec(rest) : null);
    let m: RegExpExecArray | null;
    if (r.method === 'GET' && rest === '/mailFolders') {
      const filter = r.query.get('$filter');
      let folders = box.folders;
      if (filter) {
        const f = /^displayName eq '((?:[^']|'')*)'$/.exec(filter);
        if (!f)
          return this.error(
            res,
            400,
            'ErrorInvalidUrlQueryFilter',
            'The query filter contains one or more invalid nodes.',
          );
        const wanted = f[1]!.replace(/''/g, "'");
        folders = folders.filter((x) => x.displayName === wanted);
      }
      return this.json(res, 200, {
        '@odata.context': `${base}/mailFolders`,
        value: folders.map((x) => folderJson(x, box)),
      });
    }
    if (r.method === 'POST' && rest === '/mailFolders') {
      const { displayName } = parseJson(body) as { displayName?: string };
      if (!displayName) return this.error(res, 400, 'ErrorInvalidRequest', 'displayName is required.');
      if (box.folders.some((x) => x.displayName === displayName)) {
        return this.error(res, 409, 'ErrorFolderExists', 'A folder with the specified name already exists.');
      }
      const folder: Folder = { id: newId('AAMkF'), displayName };
      box.folders.push(folder);
      return this.json(res, 201, {
        '@odata.context': `${base}/mailFolders/$entity`,
        ...folderJson(folder, box),
      });
    }
    m = at('GET', /^\/mailFolders\/([^/]+)$/);
    if (m) {
      const folder = findFolder(box, m[1]!);
      if (!folder)
        return this.error(res, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      return this.json(res, 200, {
        '@odata.context': `${base}/mailFolders/$entity`,
        ...select(folderJson(folder, box), r.query.get('$select')),
      });
    }
    m = at('GET', /^\/mailFolders\/([^/]+)\/messages$/);
    if (m) {
      const folder = findFolder(box, m[1]!);
      if (!folder)
        return this.error(res, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      return this.listMessages(r, box, folder, res, base);
    }
    m = at('GET', /^\/messages\/([^/]+)\/\$value$/);
    if (m) {
      const mail = box.mails.find((x) => x.id === m![1]);
      if (!mail) return this.notFound(res);
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(mail.raw.length) });
      if (fault?.kind === 'drop-mid-body') {
        res.write(mail.raw.subarray(0, Math.floor(mail.raw.length / 2)), () => res.socket?.destroy());
        return;
      }
      res.end(mail.raw);
      return;
    }
    m = at('GET', /^\/messages\/([^/]+)\/attachments$/);
    if (m) {
      const mail = box.mails.find((x) => x.id === m![1]);
      if (!mail) return this.notFound(res);
      return this.json(res, 200, {
        '@odata.context': `${base}/messages('${mail.id}')/attachments(name)`,
        value: mail.attachments.map((name, i) => ({
          '@odata.type': '#microsoft.graph.fileAttachment',
          '@odata.mediaContentType': 'application/octet-stream',
          id: `${mail.id}-att${i}`,
          name,
        })),
      });
    }
    m = at('POST', /^\/messages\/([^/]+)\/move$/);
    if (m) {
      const mail = box.mails.find((x) => x.id === m![1]);
      if (!mail) return this.notFound(res);
      const { destinationId } = parseJson(body) as { destinationId?: string };
      const folder = destinationId ? findFolder(box, destinationId) : undefined;
      if (!folder)
        return this.error(res, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      mail.folderId = folder.id; // immutable id: the same id after the move
      return this.json(res, 201, { '@odata.context': `${base}/messages/$entity`, ...messageJson(mail) });
    }
    m = at('PATCH', /^\/messages\/([^/]+)$/) ?? at('DELETE', /^\/messages\/([^/]+)$/);
    if (m) {
      const idx = box.mails.findIndex((x) => x.id === m![1]);
      if (idx < 0) return this.notFound(res);
      if (r.method === 'DELETE') {
        box.mails.splice(idx, 1);
        res.writeHead(204);
        res.end();
        return;
      }
      const patch = parseJson(body) as { isRead?: unknown };
      if (typeof patch.isRead === 'boolean') box.mails[idx]!.isRead = patch.isRead;
      return this.json(res, 200, {
        '@odata.context': `${base}/messages/$entity`,
        ...messageJson(box.mails[idx]!),
      });
    }
    this.error(res, 400, 'BadRequest', `Unsupported request ${r.method} ${rest}`);
  }

  private listMessages(
    r: GraphRequest,
    box: Mailbox,
    folder: Folder,
    res: ServerResponse,
    base: string,
  ): void {
    const q = r.query;
    let mails = box.mails.filter((x) => x.folderId === folder.id);
    const filter = q.get('$filter');
    const orderby = q.get('$orderby');
    if (filter) {
      const clauses = filter.split(/\s+and\s+/);
      for (const clause of clauses) {
        const read = /^isRead eq (true|false)$/.exec(clause);
        const since = /^receivedDateTime ge (\S+)$/.exec(clause);
        if (read) {
          const want = read[1] === 'true';
          mails = mails.filter((x) => x.isRead === want);
        } else if (since) {
          const at = Date.parse(since[1]!);
          mails = mails.filter((x) => Date.parse(x.receivedDateTime) >= at);
        } else {
          this.error(
            res,
            400,
            'ErrorInvalidUrlQueryFilter',
            'The query filter contains one or more invalid nodes.',
          );
          return;
        }
      }
      // Exchange's rule: a property in $orderby must also be in $filter, and come first there
      const orderProp = orderby?.split(/\s+/)[0];
      if (orderProp && !clauses[0]!.startsWith(`${orderProp} `)) {
        this.error(
          res,
          400,
          'InefficientFilter',
          'The restriction or sort order is too complex for this operation.',
        );
        return;
      }
    }
    if (orderby) {
      const [prop, dir] = orderby.split(/\s+/);
      if (prop !== 'receivedDateTime') {
        this.error(res, 400, 'BadRequest', `Unsupported $orderby ${orderby}`);
        return;
      }
      const sign = dir === 'desc' ? -1 : 1;
      mails = [...mails].sort(
        (a, b) => sign * (Date.parse(a.receivedDateTime) - Date.parse(b.receivedDateTime)),
      );
    }
    const top = Math.min(Number(q.get('$top') ?? 10) || 10, 1000);
    const skip = Number(q.get('$skip') ?? 0) || 0;
    const page = mails.slice(skip, skip + top);
    const expandSize = (q.get('$expand') ?? '').includes('0x0E08');
    const out: Record<string, unknown> = {
      '@odata.context': `${base}/mailFolders('${folder.wellKnownName ?? folder.id}')/messages`,
      value: page.map((x) => {
        const json = select(messageJson(x), q.get('$select'));
        if (expandSize)
          json.singleValueExtendedProperties = [{ id: 'Integer 0xe08', value: String(x.raw.length) }];
        return json;
      }),
    };
    if (skip + top < mails.length) {
      const next = new URL(`${this.url}${encodeURI(r.path)}`);
      for (const [k, v] of q) if (k !== '$skip') next.searchParams.set(k, v);
      next.searchParams.set('$skip', String(skip + top));
      out['@odata.nextLink'] = next.toString();
    }
    this.json(res, 200, out);
  }

  private notFound(res: ServerResponse): void {
    this.error(res, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type':
        'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8',
      'Content-Length': String(Buffer.byteLength(text)),
    });
    res.end(text);
  }

  private error(res: ServerResponse, status: number, code: string, message: string): void {
    this.json(res, status, {
      error: {
        code,
        message,
        innerError: { date: new Date().toISOString(), 'request-id': randomBytes(16).toString('hex') },
      },
    });
  }
}

function findFolder(box: Mailbox, idOrName: string): Folder | undefined {
  return box.folders.find((f) => f.id === idOrName || f.wellKnownName === idOrName.toLowerCase());
}

function folderJson(f: Folder, box: Mailbox): Record<string, unknown> {
  const mails = box.mails.filter((m) => m.folderId === f.id);
  return {
    id: f.id,
    displayName: f.displayName,
    parentFolderId: 'AAMkRoot=',
    childFolderCount: 0,
    unreadItemCount: mails.filter((m) => !m.isRead).length,
    totalItemCount: mails.length,
    isHidden: false,
  };
}

function messageJson(m: StoredMail): Record<string, unknown> {
  return {
    id: m.id,
    internetMessageId: m.internetMessageId,
    isRead: m.isRead,
    receivedDateTime: m.receivedDateTime,
    sentDateTime: m.sentDateTime,
    subject: m.subject,
    hasAttachments: m.attachments.length > 0,
    parentFolderId: m.folderId,
    from: m.from ? { emailAddress: m.from } : null,
  };
}

/** `$select=a,b`: only those properties (and the id, which Graph always returns). */
function select(json: Record<string, unknown>, fields: string | null): Record<string, unknown> {
  if (!fields) return json;
  const keep = new Set(['id', ...fields.split(',').map((f) => f.trim())]);
  return Object.fromEntries(Object.entries(json).filter(([k]) => keep.has(k)));
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return {};
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}
