/**
 * An Exchange Web Services double: a local HTTPS server at /EWS/Exchange.asmx answering exactly the SOAP
 * operations the EWS connector sends, in the shapes Microsoft publishes (learn.microsoft.com/exchange/
 * client-developer/web-service-reference):
 *   GetFolder, FindFolder (Shallow, IsEqualTo folder:DisplayName), CreateFolder,
 *   FindItem (Shallow, IndexedPageItemView, IsEqualTo message:IsRead, SortOrder item:DateTimeReceived),
 *   GetItem (IncludeMimeContent, AdditionalProperties), UpdateItem (SetItemField message:IsRead),
 *   DeleteItem (DeleteType), MoveItem (new ItemIds: an item moved between folders gets a new id, as in
 *   Exchange).
 * Answers are SOAP 1.1 envelopes with ResponseMessages (ResponseClass / ResponseCode per item); throttling is
 * HTTP 500 with the ErrorServerBusy fault and `<t:Value Name="BackOffMilliseconds">` in its MessageXml; an
 * unknown operation is the ErrorSchemaValidation fault Exchange sends.
 * Authentication as IIS does it for Exchange: `WWW-Authenticate: Negotiate`, `NTLM` (and `Basic` when on).
 * NTLM is a real NTLMv2 handshake per connection (NEGOTIATE → 401 CHALLENGE → AUTHENTICATE on the same
 * keep-alive socket), checked against the account's password (ntlm-server.ts) and, like Exchange 2019 CU14+
 * with Extended Protection, against the TLS channel binding; the connection then stays authenticated.
 * OAuth 2.0 as Exchange Online does it (`auth.bearer`): `Authorization: Bearer` on every request, judged by the
 * test's verifier; an application token (no user) must name the mailbox in the ExchangeImpersonation SOAP
 * header, a delegated one must not (Exchange's ErrorInvalidExchangeImpersonationHeaderData either way).
 * Mail lives in memory. Faults (ErrorServerBusy, 5xx, slow answers, dropped connections) are injected per
 * request. Test-only: nothing under src/ imports this.
 */

import { randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { makeCertificate } from '../support/certificate.js';
import { type FaultRuleOf, FaultRules } from './faults.js';
import { isoSeconds, mailFacts } from './mail-facts.js';
import {
  AV,
  challengeMessage,
  expectedChannelBinding,
  messageType,
  parseAuthenticate,
  type ServerIdentity,
  verifyNtlmV2,
} from './ntlm-server.js';

const NS_TYPES = 'http://schemas.microsoft.com/exchange/services/2006/types';
const NS_MESSAGES = 'http://schemas.microsoft.com/exchange/services/2006/messages';
const NS_ERRORS = 'http://schemas.microsoft.com/exchange/services/2006/errors';
const EWS_PATH = '/ews/exchange.asmx';
const KNOWN_VERSIONS = new Set([
  'Exchange2007',
  'Exchange2007_SP1',
  'Exchange2010',
  'Exchange2010_SP1',
  'Exchange2010_SP2',
  'Exchange2013',
  'Exchange2013_SP1',
  'Exchange2015',
  'Exchange2016',
  'V2015_10_05',
  'V2016_01_06',
  'V2016_04_13',
  'V2016_07_13',
  'V2016_10_10',
  'V2017_01_07',
  'V2017_04_14',
  'V2017_07_11',
]);

/**
 * Decides whether a bearer token is valid: null refuses it (401); `subject` is the account a delegated token
 * acts as, null for an application token (client credentials), which must then impersonate a mailbox.
 */
export type BearerVerifier = (token: string) => Promise<{ subject: string | null } | null>;

export interface EwsDoubleOptions {
  /**
   * Authentication schemes offered. Default: NTLM (and Negotiate) on, Basic off — Exchange's defaults.
   * `bearer`: OAuth 2.0 bearer tokens are accepted too, judged by this verifier.
   */
  auth?: {
    ntlm?: boolean;
    basic?: boolean;
    negotiateOnly?: boolean;
    ntlmV1Only?: boolean;
    bearer?: BearerVerifier;
  };
  /**
   * Extended Protection: "required" (default, as Exchange 2019 CU14+ sets it) refuses NTLM without the right
   * channel binding; "accept" checks it only when sent; "off" ignores it.
   */
  channelBinding?: 'required' | 'accept' | 'off';
  /** The certificate's only name (DNS). Default "localhost", so 127.0.0.1 is a name mismatch. */
  certName?: string;
}

export type EwsFault =
  /** HTTP 500 with the ErrorServerBusy SOAP fault (Exchange 2013+ throttling). */
  | { kind: 'busy'; backOffMs?: number }
  /** HTTP 200 whose every response message is ErrorServerBusy (as Exchange 2010 answered). */
  | { kind: 'busy-message'; backOffMs?: number }
  /** Another SOAP fault, HTTP 500. */
  | { kind: 'fault'; code: string; message: string }
  /** An IIS / load balancer error page. */
  | { kind: 'status'; status: number; retryAfter?: number }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'drop' }
  /** Headers and half the answer, then the connection is cut. */
  | { kind: 'drop-mid-body' };

export interface EwsRequest {
  /** FindItem, GetItem…; '' for a request without a SOAP body (an NTLM NEGOTIATE leg). */
  operation: string;
  headers: IncomingMessage['headers'];
  body: string;
  /**
   * The account the request was authenticated as, if it was (an application token: the mailbox it
   * impersonates).
   */
  account?: string;
  /** With a bearer token: the verifier's subject (null: an application token). */
  subject?: string | null;
}

/** A fault for this double's requests (see faults.ts). */
export type FaultRule = FaultRuleOf<EwsRequest, EwsFault>;

interface Folder {
  id: string;
  parentId: string | null;
  displayName: string;
  distinguished?: string;
}

interface StoredItem {
  id: string;
  changeKey: string;
  folderId: string;
  /** The element name EWS uses for it: Message, MeetingRequest… */
  element: string;
  raw: Buffer;
  isRead: boolean;
  received: string;
  sent: string | null;
  internetMessageId: string | null;
  subject: string | null;
  from: { name: string; address: string } | null;
  attachments: string[];
}

interface Mailbox {
  address: string;
  folders: Folder[];
  items: StoredItem[];
  deleted: { item: StoredItem; deleteType: string }[];
}

interface Account {
  username: string;
  password: string;
}

interface SocketState {
  /** An NTLM handshake in progress: the challenge sent. */
  challenge?: { serverChallenge: Buffer; scheme: string };
  /** The account this connection authenticated as with NTLM. */
  account?: string;
}

const DISTINGUISHED: [string, string][] = [
  ['inbox', 'Inbox'],
  ['deleteditems', 'Deleted Items'],
  ['drafts', 'Drafts'],
  ['sentitems', 'Sent Items'],
  ['junkemail', 'Junk Email'],
  ['outbox', 'Outbox'],
];

/** Exchange ids are long base64 strings; "AAMk" is how every mailbox item and folder id starts. */
const newId = () => `AAMkAD${randomBytes(33).toString('base64')}`;
const newChangeKey = () => `CQAAABYAAA${randomBytes(12).toString('base64')}`;

const ARRAYS = new Set(['ItemId', 'ItemChange', 'FieldURI', 'DistinguishedFolderId', 'FolderId', 'Folder']);
const requestParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  // path strings for every element cost fast-xml-parser 5.12 most of its time; the names are enough here
  jPath: false,
  isArray: (name, _jpath, _leaf, isAttribute) => !isAttribute && ARRAYS.has(name),
});

type Node = Record<string, unknown>;
const obj = (v: unknown): Node => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Node) : {});
const list = (v: unknown): Node[] => (Array.isArray(v) ? v.map(obj) : v === undefined ? [] : [obj(v)]);
const str = (v: unknown): string =>
  typeof v === 'string' ? v : typeof obj(v)['#text'] === 'string' ? (obj(v)['#text'] as string) : '';
const attrOf = (v: unknown, name: string): string | undefined => {
  const a = obj(v)[`@_${name}`];
  return typeof a === 'string' ? a : undefined;
};

const esc = (s: string) =>
  s.replace(/[&<>"]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;'));

/** An answer the handler chose: a SOAP body for a 200, or a fault. */
class Fault extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly messageXml = '',
  ) {
    super(message);
  }
}

export class EwsDouble {
  readonly caFile: string;
  /** Every request, in order (tests assert on operations, headers and bodies). */
  readonly requests: EwsRequest[] = [];
  /** NTLM handshakes that succeeded (one per connection while keep-alive holds). */
  ntlmLogins = 0;
  /** TLS connections accepted. */
  connections = 0;
  private readonly server: https.Server;
  private readonly dir: string;
  private readonly opts: EwsDoubleOptions;
  private readonly certificateDer: Buffer;
  private readonly accounts = new Map<string, Account>();
  private readonly mailboxes = new Map<string, Mailbox>();
  private readonly denied = new Set<string>();
  /** Item id → the error its changes are answered with (the item stays as it is). */
  private readonly refusing = new Map<string, { code: string; text: string }>();
  private readonly sockets = new WeakMap<Socket, SocketState>();
  private readonly faults = new FaultRules<EwsRequest, EwsFault>();
  /** DateTimeReceived of the next delivered mail: one second apart, so "oldest first" is well defined. */
  private clock = Date.parse('2025-01-01T00:00:00Z');
  private readonly identity: ServerIdentity = {
    domain: 'EXAMPLE',
    computer: 'EXCH01',
    dnsDomain: 'example.test',
    dnsComputer: 'exch01.example.test',
  };

  private constructor(server: https.Server, dir: string, opts: EwsDoubleOptions, der: Buffer) {
    this.server = server;
    this.dir = dir;
    this.opts = opts;
    this.certificateDer = der;
    this.caFile = path.join(dir, 'cert.pem');
  }

  static async start(opts: EwsDoubleOptions = {}): Promise<EwsDouble> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ews-double-'));
    // One DNS name only (default localhost), so that connecting by 127.0.0.1 is a name mismatch.
    await makeCertificate(dir, [opts.certName ?? 'localhost']);
    const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
    const server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert });
    const double = new EwsDouble(server, dir, opts, new X509Certificate(cert).raw);
    server.on('secureConnection', () => {
      double.connections++;
    });
    server.on('request', (req, res) => {
      double.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) double.soapFault(res, 'ErrorInternalServerError', String(err));
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return double;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The Connect URL. */
  get url(): string {
    return `https://localhost:${this.port}/EWS/Exchange.asmx`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** An account that can log in (Basic or NTLM) and open every mailbox not denied. */
  addAccount(username: string, password: string): void {
    this.accounts.set(username.toLowerCase(), { username, password });
  }

  /** A mailbox with the distinguished folders under its root, empty. Idempotent. */
  addMailbox(address: string): void {
    const key = address.toLowerCase();
    if (this.mailboxes.has(key)) return;
    const root: Folder = {
      id: newId(),
      parentId: null,
      displayName: 'Top of Information Store',
      distinguished: 'msgfolderroot',
    };
    this.mailboxes.set(key, {
      address,
      folders: [
        root,
        ...DISTINGUISHED.map(([distinguished, displayName]) => ({
          id: newId(),
          parentId: root.id,
          displayName,
          distinguished,
        })),
      ],
      items: [],
      deleted: [],
    });
  }

  /** Accounts may log in, but this mailbox answers ErrorAccessDenied (no permission on it). */
  denyMailbox(address: string): void {
    this.denied.add(address.toLowerCase());
  }

  /** Raw MIME mails into a folder (display name or distinguished id; default the inbox), unread. */
  async deliver(
    address: string,
    raws: Buffer[],
    folder = 'inbox',
    o: { element?: string } = {},
  ): Promise<string[]> {
    this.addMailbox(address);
    const box = this.mailboxes.get(address.toLowerCase())!;
    const target = this.folderNamed(box, folder);
    if (!target) throw new Error(`no folder ${folder}`);
    const ids: string[] = [];
    for (const raw of raws) {
      const facts = await mailFacts(raw);
      this.clock += 1000;
      const item: StoredItem = {
        id: newId(),
        changeKey: newChangeKey(),
        folderId: target.id,
        element: o.element ?? 'Message',
        raw,
        isRead: false,
        received: isoSeconds(new Date(this.clock)),
        ...facts,
      };
      box.items.push(item);
      ids.push(item.id);
    }
    return ids;
  }

  /** Mails in a folder (display name or distinguished id), oldest first, whatever their state. */
  messages(address: string, folder = 'inbox'): { id: string; messageId: string | null; isRead: boolean }[] {
    const box = this.mailboxes.get(address.toLowerCase());
    const f = box ? this.folderNamed(box, folder) : undefined;
    if (!box || !f) return [];
    return box.items
      .filter((m) => m.folderId === f.id)
      .map((m) => ({ id: m.id, messageId: m.internetMessageId, isRead: m.isRead }));
  }

  /** Mails deleted with DeleteItem, with the DeleteType used. */
  deleted(address: string): { messageId: string | null; deleteType: string }[] {
    const box = this.mailboxes.get(address.toLowerCase());
    return (box?.deleted ?? []).map((d) => ({
      messageId: d.item.internetMessageId,
      deleteType: d.deleteType,
    }));
  }

  /** Display names of the folders directly under the mailbox root. */
  topFolders(address: string): string[] {
    const box = this.mailboxes.get(address.toLowerCase());
    const root = box?.folders.find((f) => f.distinguished === 'msgfolderroot');
    return (box?.folders ?? []).filter((f) => f.parentId === root?.id).map((f) => f.displayName);
  }

  /** What a person does in Outlook: move a mail to another folder (it gets a new ItemId) → the new id. */
  moveByPerson(address: string, id: string, folder: string): string {
    const box = this.mailboxes.get(address.toLowerCase())!;
    const item = box.items.find((m) => m.id === id)!;
    const target = this.folderNamed(box, folder) ?? this.createFolder(box, folder);
    item.folderId = target.id;
    item.id = newId();
    item.changeKey = newChangeKey();
    return item.id;
  }

  /** What a person does in Outlook: mark a mail read or unread. */
  setRead(address: string, id: string, isRead: boolean): void {
    const item = this.mailboxes.get(address.toLowerCase())!.items.find((m) => m.id === id)!;
    item.isRead = isRead;
    item.changeKey = newChangeKey();
  }

  /** Ends every open connection, as a server restart or an idle timeout of a load balancer does. */
  dropConnections(): void {
    this.server.closeAllConnections();
  }

  /**
   * Changes to this mail (UpdateItem, DeleteItem, MoveItem) are refused with `code` and leave it as it is, as
   * Exchange does for a mail it cannot change (ErrorQuotaExceeded when the target mailbox is full…).
   */
  refuseChanges(id: string, code: string, text = 'The operation could not be completed.'): void {
    this.refusing.set(id, { code, text });
  }

  /** Inject a fault; rules are checked in the order added, and one request takes at most one fault. */
  inject(rule: FaultRule): void {
    this.faults.add(rule);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  private folderNamed(box: Mailbox, name: string): Folder | undefined {
    const lower = name.toLowerCase();
    return (
      box.folders.find((f) => f.distinguished === lower) ??
      box.folders.find((f) => f.displayName.toLowerCase() === lower)
    );
  }

  private createFolder(box: Mailbox, displayName: string, parentId?: string): Folder {
    const root = box.folders.find((f) => f.distinguished === 'msgfolderroot')!;
    const folder: Folder = { id: newId(), parentId: parentId ?? root.id, displayName };
    box.folders.push(folder);
    return folder;
  }

  // -------------------------------------------------------------------------------------------------------
  // HTTP and authentication

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'https://localhost');
    res.setHeader('Server', 'Microsoft-IIS/10.0');
    res.setHeader('X-Powered-By', 'ASP.NET');
    res.setHeader('request-id', randomBytes(16).toString('hex'));
    if (url.pathname.toLowerCase() !== EWS_PATH) {
      this.iisPage(
        res,
        404,
        'Not Found',
        'The resource you are looking for has been removed, had its name changed, or is temporarily unavailable.',
      );
      return;
    }
    const r: EwsRequest = { operation: operationOf(body), headers: req.headers, body };
    this.requests.push(r);
    const bearer = await this.authenticateBearer(req, res, r);
    if (bearer === 'refused') return;
    if (!bearer) {
      const account = this.authenticate(req, res);
      if (!account) return;
      r.account = account;
    }

    const fault = this.faults.take(r);
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'slow') await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
    if (fault?.kind === 'status') {
      if (fault.retryAfter !== undefined) res.setHeader('Retry-After', String(fault.retryAfter));
      this.iisPage(
        res,
        fault.status,
        fault.status === 503 ? 'Service Unavailable' : 'Server Error',
        'The service is unavailable.',
      );
      return;
    }
    if (fault?.kind === 'busy') {
      this.soapFault(
        res,
        'ErrorServerBusy',
        'The server cannot service this request right now. Try again later.',
        backOffXml(fault.backOffMs),
      );
      return;
    }
    if (fault?.kind === 'fault') {
      this.soapFault(res, fault.code, fault.message);
      return;
    }

    let answer: string;
    try {
      answer = this.operate(body, fault, bearer ? { app: r.subject === null } : undefined);
    } catch (err) {
      if (err instanceof Fault) {
        this.soapFault(res, err.code, err.message, err.messageXml);
        return;
      }
      throw err;
    }
    const bytes = Buffer.from(answer, 'utf8');
    res.writeHead(200, { 'Content-Type': 'text/xml; charset=utf-8', 'Content-Length': String(bytes.length) });
    if (fault?.kind === 'drop-mid-body') {
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => res.socket?.destroy());
      return;
    }
    res.end(bytes);
  }

  /**
   * A `Bearer` request when bearer tokens are on: 'refused' after answering 401 as Exchange Online does, true
   * when the verifier accepted it (r.account and r.subject filled). false: not a bearer request.
   */
  private async authenticateBearer(
    req: IncomingMessage,
    res: ServerResponse,
    r: EwsRequest,
  ): Promise<boolean | 'refused'> {
    const verify = this.opts.auth?.bearer;
    const auth = req.headers.authorization ?? '';
    if (!verify || !/^bearer\s/i.test(auth)) return false;
    const verdict = await verify(auth.replace(/^bearer\s+/i, ''));
    if (!verdict) {
      res.setHeader(
        'x-ms-diagnostics',
        '2000001;reason="The token has expired.";error_category="invalid_token"',
      );
      this.unauthorized(res, 'invalid_token');
      return 'refused';
    }
    r.subject = verdict.subject;
    r.account = verdict.subject ?? (impersonatedAddress(r.body) || undefined);
    return true;
  }

  /** The account of an authenticated request, or undefined after answering 401 (or a challenge). */
  private authenticate(req: IncomingMessage, res: ServerResponse): string | undefined {
    const socket = req.socket;
    const state = this.sockets.get(socket) ?? {};
    this.sockets.set(socket, state);
    const auth = req.headers.authorization ?? '';
    const ntlmOn = this.opts.auth?.ntlm ?? true;
    const basicOn = this.opts.auth?.basic ?? false;
    const [scheme = '', token = ''] = auth.split(/\s+/, 2);
    const lower = scheme.toLowerCase();

    if (lower === 'basic' && basicOn) {
      const decoded = Buffer.from(token, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const account = this.accounts.get(decoded.slice(0, colon).toLowerCase());
      if (colon > 0 && account && account.password === decoded.slice(colon + 1)) return account.username;
      return this.unauthorized(res);
    }
    const ntlmSchemes = this.opts.auth?.negotiateOnly ? ['negotiate'] : ['negotiate', 'ntlm'];
    if (ntlmOn && ntlmSchemes.includes(lower)) {
      const message = Buffer.from(token, 'base64');
      const type = messageType(message);
      if (type === 1) {
        const { token: challenge, serverChallenge } = challengeMessage(message, this.identity, {
          v1Only: this.opts.auth?.ntlmV1Only ?? false,
        });
        state.challenge = { serverChallenge, scheme: lower };
        state.account = undefined;
        res.setHeader('WWW-Authenticate', `${scheme} ${challenge.toString('base64')}`);
        this.iisPage(res, 401, 'Unauthorized', 'Access is denied due to invalid credentials.');
        return undefined;
      }
      if (type === 3 && state.challenge && state.challenge.scheme === lower) {
        const { serverChallenge } = state.challenge;
        state.challenge = undefined;
        const account = this.ntlmAccount(message, serverChallenge);
        if (account) {
          state.account = account;
          this.ntlmLogins++;
          return account;
        }
      }
      state.account = undefined;
      return this.unauthorized(res);
    }
    // IIS keeps a connection NTLM authenticated: later requests on it need no header
    if (!auth && state.account && ntlmOn) return state.account;
    return this.unauthorized(res);
  }

  private ntlmAccount(message: Buffer, serverChallenge: Buffer): string | undefined {
    let parsed: ReturnType<typeof parseAuthenticate>;
    try {
      parsed = parseAuthenticate(message);
    } catch {
      return undefined;
    }
    // an account is "DOMAIN\user", "user@upn" or a bare "user" of this server's domain
    const candidates = parsed.user.includes('@')
      ? [parsed.user]
      : [
          `${parsed.domain}\\${parsed.user}`,
          ...(parsed.domain.toUpperCase() === this.identity.domain || parsed.domain === ''
            ? [parsed.user]
            : []),
        ];
    const account = candidates.map((c) => this.accounts.get(c.toLowerCase())).find(Boolean);
    if (!account) return undefined;
    const pairs = verifyNtlmV2(parsed, serverChallenge, account.password);
    if (!pairs) return undefined;
    const mode = this.opts.channelBinding ?? 'required';
    const sent = pairs.get(AV.CHANNEL_BINDINGS);
    const zero = !sent || sent.every((b) => b === 0);
    if (mode !== 'off' && !(mode === 'accept' && zero)) {
      if (zero || !sent.equals(expectedChannelBinding(this.certificateDer))) return undefined;
    }
    return account.username;
  }

  private unauthorized(res: ServerResponse, bearerError?: string): undefined {
    const offers: string[] = [];
    if (this.opts.auth?.bearer) {
      // Exchange Online's challenge (its client_id is Office 365 Exchange Online's application id)
      offers.push(
        `Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"${bearerError ? `, error="${bearerError}"` : ''}`,
      );
    }
    if (this.opts.auth?.ntlm ?? true) {
      offers.push('Negotiate');
      if (!this.opts.auth?.negotiateOnly) offers.push('NTLM');
    }
    if (this.opts.auth?.basic) offers.push('Basic realm="localhost"');
    if (offers.length > 0) res.setHeader('WWW-Authenticate', offers);
    this.iisPage(res, 401, 'Unauthorized', 'Access is denied due to invalid credentials.');
    return undefined;
  }

  private iisPage(res: ServerResponse, status: number, title: string, text: string): void {
    const html = `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\r\n<html xmlns="http://www.w3.org/1999/xhtml"><head><title>${status} - ${title}</title></head><body><div id="header"><h1>Server Error</h1></div><div id="content"><fieldset><h2>${status} - ${title}</h2><h3>${text}</h3></fieldset></div></body></html>`;
    res.writeHead(status, { 'Content-Type': 'text/html', 'Content-Length': String(Buffer.byteLength(html)) });
    res.end(html);
  }

  private soapFault(res: ServerResponse, code: string, message: string, messageXml = ''): void {
    const xml =
      '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>' +
      `<faultcode xmlns:a="${NS_TYPES}">a:${code}</faultcode><faultstring xml:lang="en-US">${esc(message)}</faultstring>` +
      `<detail><e:ResponseCode xmlns:e="${NS_ERRORS}">${code}</e:ResponseCode><e:Message xmlns:e="${NS_ERRORS}">${esc(message)}</e:Message>` +
      `${messageXml ? `<t:MessageXml xmlns:t="${NS_TYPES}">${messageXml}</t:MessageXml>` : ''}</detail></s:Fault></s:Body></s:Envelope>`;
    res.writeHead(500, {
      'Content-Type': 'text/xml; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(xml)),
    });
    res.end(xml);
  }

  // -------------------------------------------------------------------------------------------------------
  // SOAP operations

  private operate(body: string, fault: EwsFault | undefined, bearer: { app: boolean } | undefined): string {
    let doc: Node;
    try {
      doc = obj(requestParser.parse(body));
    } catch (err) {
      throw new Fault('ErrorInvalidRequest', `The request is invalid. ${String(err)}`);
    }
    const envelope = obj(doc.Envelope);
    const version = attrOf(obj(envelope.Header).RequestServerVersion, 'Version');
    if (!version || !KNOWN_VERSIONS.has(version)) {
      throw new Fault('ErrorInvalidServerVersion', 'The specified server version is invalid.');
    }
    if (!body.includes(NS_MESSAGES) || !body.includes(NS_TYPES)) {
      throw new Fault(
        'ErrorSchemaValidation',
        'The request failed schema validation: namespaces are missing.',
      );
    }
    if (bearer) this.checkImpersonation(obj(envelope.Header), bearer.app);
    const soapBody = obj(envelope.Body);
    const [operation] = Object.keys(soapBody).filter((k) => !k.startsWith('@_'));
    const request = obj(soapBody[operation ?? '']);
    const handlers: Record<string, (req: Node) => string[]> = {
      GetFolder: (q) => this.getFolder(q),
      FindFolder: (q) => this.findFolder(q),
      CreateFolder: (q) => this.createFolderOp(q),
      FindItem: (q) => this.findItem(q),
      GetItem: (q) => this.getItem(q),
      UpdateItem: (q) => this.updateItem(q),
      DeleteItem: (q) => this.deleteItem(q),
      MoveItem: (q) => this.moveItem(q),
    };
    const handler = operation ? handlers[operation] : undefined;
    if (!operation || !handler) {
      throw new Fault(
        'ErrorSchemaValidation',
        `The request failed schema validation: The element 'Body' in namespace 'http://schemas.xmlsoap.org/soap/envelope/' has invalid child element '${operation ?? ''}' in namespace '${NS_MESSAGES}'.`,
        `<t:LineNumber>1</t:LineNumber><t:LinePosition>${body.indexOf('<soap:Body>') + 12}</t:LinePosition><t:Violation>The element 'Body' has invalid child element '${operation ?? ''}'.</t:Violation>`,
      );
    }
    let messages = handler(request);
    if (fault?.kind === 'busy-message') {
      messages = messages.map(() =>
        errorMessage(
          operation,
          'ErrorServerBusy',
          'The server cannot service this request right now. Try again later.',
          backOffXml(fault.backOffMs),
        ),
      );
    }
    return (
      '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>' +
      `<h:ServerVersionInfo MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" Version="V2017_07_11" xmlns:h="${NS_TYPES}" xmlns="${NS_TYPES}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>` +
      '</s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">' +
      `<m:${operation}Response xmlns:m="${NS_MESSAGES}" xmlns:t="${NS_TYPES}"><m:ResponseMessages>${messages.join('')}</m:ResponseMessages></m:${operation}Response>` +
      '</s:Body></s:Envelope>'
    );
  }

  /**
   * Exchange Online's rule for OAuth: an application token has no user, so the request must say which mailbox
   * it acts as (ExchangeImpersonation / ConnectingSID); a delegated token acts as its user and must not carry
   * the header. The faults are the ones Exchange answers.
   */
  private checkImpersonation(header: Node, app: boolean): void {
    const sid = obj(obj(header.ExchangeImpersonation).ConnectingSID);
    const named = (
      str(sid.SmtpAddress) ||
      str(sid.PrimarySmtpAddress) ||
      str(sid.PrincipalName)
    ).toLowerCase();
    if (!app) {
      if (named) {
        throw new Fault(
          'ErrorInvalidExchangeImpersonationHeaderData',
          'ExchangeImpersonation SOAP header must not exist for this type of OAuth token.',
        );
      }
      return;
    }
    if (!named) {
      throw new Fault(
        'ErrorInvalidExchangeImpersonationHeaderData',
        'ExchangeImpersonation SOAP header must be present for this type of OAuth token.',
      );
    }
    if (!this.mailboxes.has(named)) {
      throw new Fault('ErrorNonExistentMailbox', 'The SMTP address has no mailbox associated with it.');
    }
    if (this.denied.has(named)) {
      throw new Fault(
        'ErrorImpersonateUserDenied',
        'The account does not have permission to impersonate the requested user.',
      );
    }
  }

  /** The mailbox and folder a FolderId / DistinguishedFolderId names, or the error code to answer. */
  private resolveFolder(ids: Node): { box: Mailbox; folder: Folder } | { error: string; text: string } {
    const distinguished = list(ids.DistinguishedFolderId)[0];
    if (distinguished) {
      const address = str(obj(distinguished.Mailbox).EmailAddress).toLowerCase();
      const box = this.mailboxes.get(address);
      if (!box) {
        return {
          error: 'ErrorNonExistentMailbox',
          text: `No mailbox with such guid. SMTP address: ${address}`,
        };
      }
      if (this.denied.has(address)) return accessDenied();
      const folder = box.folders.find((f) => f.distinguished === attrOf(distinguished, 'Id'));
      if (!folder)
        return {
          error: 'ErrorFolderNotFound',
          text: 'The specified folder could not be found in the store.',
        };
      return { box, folder };
    }
    const id = attrOf(list(ids.FolderId)[0], 'Id');
    for (const box of this.mailboxes.values()) {
      const folder = box.folders.find((f) => f.id === id);
      if (folder) return this.denied.has(box.address.toLowerCase()) ? accessDenied() : { box, folder };
    }
    return { error: 'ErrorFolderNotFound', text: 'The specified folder could not be found in the store.' };
  }

  private findItemById(id: string | undefined): { box: Mailbox; item: StoredItem } | undefined {
    for (const box of this.mailboxes.values()) {
      const item = box.items.find((m) => m.id === id);
      if (item) return { box, item };
    }
    return undefined;
  }

  private getFolder(q: Node): string[] {
    const at = this.resolveFolder(obj(q.FolderIds));
    if ('error' in at) return [errorMessage('GetFolder', at.error, at.text)];
    return [successMessage('GetFolder', `<m:Folders>${folderXml(at.folder, at.box)}</m:Folders>`)];
  }

  private findFolder(q: Node): string[] {
    if (attrOf(q, 'Traversal') !== 'Shallow') {
      throw new Fault('ErrorInvalidRequest', 'The double supports Traversal="Shallow" only.');
    }
    const at = this.resolveFolder(obj(q.ParentFolderIds));
    if ('error' in at) return [errorMessage('FindFolder', at.error, at.text)];
    let folders = at.box.folders.filter((f) => f.parentId === at.folder.id);
    const restriction = obj(q.Restriction);
    if (Object.keys(restriction).length > 0) {
      const eq = obj(restriction.IsEqualTo);
      if (attrOf(list(eq.FieldURI)[0], 'FieldURI') !== 'folder:DisplayName') {
        throw new Fault('ErrorInvalidRestriction', 'The restriction is not supported by the double.');
      }
      const wanted = attrOf(obj(obj(eq.FieldURIOrConstant).Constant), 'Value') ?? '';
      // Exchange compares strings in restrictions without case
      folders = folders.filter((f) => f.displayName.toLowerCase() === wanted.toLowerCase());
    }
    return [
      successMessage(
        'FindFolder',
        `<m:RootFolder TotalItemsInView="${folders.length}" IncludesLastItemInRange="true"><t:Folders>${folders.map((f) => folderXml(f, at.box)).join('')}</t:Folders></m:RootFolder>`,
      ),
    ];
  }

  private createFolderOp(q: Node): string[] {
    const at = this.resolveFolder(obj(q.ParentFolderId));
    const folders = list(obj(q.Folders).Folder);
    if ('error' in at) return folders.map(() => errorMessage('CreateFolder', at.error, at.text));
    return folders.map((f) => {
      const name = str(f.DisplayName);
      if (!name) return errorMessage('CreateFolder', 'ErrorInvalidFolderName', 'The folder name is invalid.');
      const exists = at.box.folders.some(
        (x) => x.parentId === at.folder.id && x.displayName.toLowerCase() === name.toLowerCase(),
      );
      if (exists)
        return errorMessage(
          'CreateFolder',
          'ErrorFolderExists',
          'A folder with the specified name already exists.',
        );
      const folder = this.createFolder(at.box, name, at.folder.id);
      return successMessage(
        'CreateFolder',
        `<m:Folders><t:Folder><t:FolderId Id="${folder.id}" ChangeKey="${newChangeKey()}"/></t:Folder></m:Folders>`,
      );
    });
  }

  private findItem(q: Node): string[] {
    if (attrOf(q, 'Traversal') !== 'Shallow') {
      throw new Fault('ErrorInvalidRequest', 'The double supports Traversal="Shallow" only.');
    }
    const at = this.resolveFolder(obj(q.ParentFolderIds));
    if ('error' in at) return [errorMessage('FindItem', at.error, at.text)];
    const shape = obj(q.ItemShape);
    const props = list(obj(shape.AdditionalProperties).FieldURI).map((f) => attrOf(f, 'FieldURI') ?? '');
    if (props.includes('item:Attachments') || props.includes('item:MimeContent')) {
      return [
        errorMessage(
          'FindItem',
          'ErrorInvalidPropertyRequest',
          'This property was requested, but it cannot be returned in FindItem.',
        ),
      ];
    }
    let items = at.box.items.filter((m) => m.folderId === at.folder.id);
    const restriction = obj(q.Restriction);
    if (Object.keys(restriction).length > 0) {
      const eq = obj(restriction.IsEqualTo);
      if (attrOf(list(eq.FieldURI)[0], 'FieldURI') !== 'message:IsRead') {
        throw new Fault('ErrorInvalidRestriction', 'The restriction is not supported by the double.');
      }
      const wanted = attrOf(obj(obj(eq.FieldURIOrConstant).Constant), 'Value') === 'true';
      items = items.filter((m) => m.isRead === wanted);
    }
    const order = obj(obj(q.SortOrder).FieldOrder);
    if (Object.keys(order).length > 0) {
      if (attrOf(list(order.FieldURI)[0], 'FieldURI') !== 'item:DateTimeReceived') {
        throw new Fault('ErrorInvalidRequest', 'The double sorts by item:DateTimeReceived only.');
      }
      const sign = attrOf(order, 'Order') === 'Descending' ? -1 : 1;
      items = [...items].sort((a, b) => sign * (Date.parse(a.received) - Date.parse(b.received)));
    }
    const view = obj(q.IndexedPageItemView);
    const max = Number(attrOf(view, 'MaxEntriesReturned') ?? 1000);
    const offset = Number(attrOf(view, 'Offset') ?? 0);
    if (attrOf(view, 'BasePoint') !== 'Beginning' || !(max > 0) || !(offset >= 0)) {
      throw new Fault('ErrorInvalidRequest', 'The double pages IndexedPageItemView from the beginning only.');
    }
    const page = items.slice(offset, offset + max);
    const last = offset + page.length >= items.length;
    return [
      successMessage(
        'FindItem',
        `<m:RootFolder IndexedPagingOffset="${offset + page.length}" TotalItemsInView="${items.length}" IncludesLastItemInRange="${last}">` +
          `<t:Items>${page.map((m) => itemXml(m, props, false)).join('')}</t:Items></m:RootFolder>`,
      ),
    ];
  }

  private getItem(q: Node): string[] {
    const shape = obj(q.ItemShape);
    const mime = str(shape.IncludeMimeContent) === 'true';
    const props = list(obj(shape.AdditionalProperties).FieldURI).map((f) => attrOf(f, 'FieldURI') ?? '');
    return list(obj(q.ItemIds).ItemId).map((ref) => {
      const found = this.findItemById(attrOf(ref, 'Id'));
      if (!found) return notFound('GetItem');
      if (this.denied.has(found.box.address.toLowerCase())) {
        const d = accessDenied();
        return errorMessage('GetItem', d.error, d.text);
      }
      return successMessage('GetItem', `<m:Items>${itemXml(found.item, props, mime)}</m:Items>`);
    });
  }

  private updateItem(q: Node): string[] {
    if (attrOf(q, 'ConflictResolution') === undefined || attrOf(q, 'MessageDisposition') === undefined) {
      throw new Fault(
        'ErrorSchemaValidation',
        'The request failed schema validation: ConflictResolution and MessageDisposition are required for messages.',
      );
    }
    return list(obj(q.ItemChanges).ItemChange).map((change) => {
      const found = this.findItemById(attrOf(list(change.ItemId)[0], 'Id'));
      if (!found) return notFound('UpdateItem');
      const refused = this.refusing.get(found.item.id);
      if (refused) return errorMessage('UpdateItem', refused.code, refused.text);
      const set = obj(obj(change.Updates).SetItemField);
      const field = attrOf(list(set.FieldURI)[0], 'FieldURI');
      const value = str(obj(set.Message).IsRead);
      if (field !== 'message:IsRead' || (value !== 'true' && value !== 'false')) {
        return errorMessage('UpdateItem', 'ErrorInvalidPropertySet', 'The double sets message:IsRead only.');
      }
      found.item.isRead = value === 'true';
      found.item.changeKey = newChangeKey();
      return successMessage(
        'UpdateItem',
        `<m:Items><t:${found.item.element}><t:ItemId Id="${found.item.id}" ChangeKey="${found.item.changeKey}"/></t:${found.item.element}></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>`,
      );
    });
  }

  private deleteItem(q: Node): string[] {
    const deleteType = attrOf(q, 'DeleteType');
    if (!deleteType || !['HardDelete', 'SoftDelete', 'MoveToDeletedItems'].includes(deleteType)) {
      throw new Fault(
        'ErrorSchemaValidation',
        "The request failed schema validation: The required attribute 'DeleteType' is missing.",
      );
    }
    return list(obj(q.ItemIds).ItemId).map((ref) => {
      const found = this.findItemById(attrOf(ref, 'Id'));
      if (!found) return notFound('DeleteItem');
      const refused = this.refusing.get(found.item.id);
      if (refused) return errorMessage('DeleteItem', refused.code, refused.text);
      if (deleteType === 'MoveToDeletedItems') {
        found.item.folderId = found.box.folders.find((f) => f.distinguished === 'deleteditems')!.id;
        found.item.id = newId();
      } else {
        found.box.items.splice(found.box.items.indexOf(found.item), 1);
      }
      found.box.deleted.push({ item: found.item, deleteType });
      return successMessage('DeleteItem', '');
    });
  }

  private moveItem(q: Node): string[] {
    const to = this.resolveFolder(obj(q.ToFolderId));
    const refs = list(obj(q.ItemIds).ItemId);
    if ('error' in to) return refs.map(() => errorMessage('MoveItem', to.error, to.text));
    const returnIds = str(q.ReturnNewItemIds) !== 'false';
    return refs.map((ref) => {
      const found = this.findItemById(attrOf(ref, 'Id'));
      if (!found || found.box !== to.box) return notFound('MoveItem');
      const refused = this.refusing.get(found.item.id);
      if (refused) return errorMessage('MoveItem', refused.code, refused.text);
      // a move between folders is a copy and a delete in the store: the mail gets a new ItemId
      found.item.folderId = to.folder.id;
      found.item.id = newId();
      found.item.changeKey = newChangeKey();
      return successMessage(
        'MoveItem',
        returnIds
          ? `<m:Items><t:${found.item.element}><t:ItemId Id="${found.item.id}" ChangeKey="${found.item.changeKey}"/></t:${found.item.element}></m:Items>`
          : '<m:Items/>',
      );
    });
  }
}

/** The SMTP address an ExchangeImpersonation header names ('' when there is none or the body is not XML). */
function impersonatedAddress(body: string): string {
  try {
    const header = obj(obj(obj(requestParser.parse(body)).Envelope).Header);
    const sid = obj(obj(header.ExchangeImpersonation).ConnectingSID);
    return (str(sid.SmtpAddress) || str(sid.PrimarySmtpAddress) || str(sid.PrincipalName)).toLowerCase();
  } catch {
    return '';
  }
}

function accessDenied(): { error: string; text: string } {
  return { error: 'ErrorAccessDenied', text: 'Access is denied. Check credentials and try again.' };
}

function backOffXml(ms: number | undefined): string {
  return ms === undefined ? '' : `<t:Value Name="BackOffMilliseconds">${ms}</t:Value>`;
}

function successMessage(operation: string, content: string): string {
  return `<m:${operation}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>${content}</m:${operation}ResponseMessage>`;
}

function errorMessage(operation: string, code: string, text: string, messageXml = ''): string {
  return (
    `<m:${operation}ResponseMessage ResponseClass="Error"><m:MessageText>${esc(text)}</m:MessageText>` +
    `<m:ResponseCode>${code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>` +
    `${messageXml ? `<m:MessageXml>${messageXml}</m:MessageXml>` : ''}</m:${operation}ResponseMessage>`
  );
}

function notFound(operation: string): string {
  return errorMessage(
    operation,
    'ErrorItemNotFound',
    'The specified object was not found in the store., The process failed to get the correct properties.',
  );
}

function folderXml(f: Folder, box: Mailbox): string {
  const items = box.items.filter((m) => m.folderId === f.id);
  return (
    `<t:Folder><t:FolderId Id="${f.id}" ChangeKey="AQAAABYAAAB"/><t:DisplayName>${esc(f.displayName)}</t:DisplayName>` +
    `<t:TotalCount>${items.length}</t:TotalCount><t:ChildFolderCount>${box.folders.filter((x) => x.parentId === f.id).length}</t:ChildFolderCount>` +
    `<t:UnreadCount>${items.filter((m) => !m.isRead).length}</t:UnreadCount></t:Folder>`
  );
}

/** An item with its ItemId and the properties asked for, in the schema's element order. */
function itemXml(m: StoredItem, props: string[], mime: boolean): string {
  const has = (p: string) => props.includes(p);
  const parts: string[] = [];
  if (mime) parts.push(`<t:MimeContent CharacterSet="UTF-8">${m.raw.toString('base64')}</t:MimeContent>`);
  parts.push(`<t:ItemId Id="${m.id}" ChangeKey="${m.changeKey}"/>`);
  if (has('item:Subject') && m.subject !== null) parts.push(`<t:Subject>${esc(m.subject)}</t:Subject>`);
  if (has('item:Attachments') && m.attachments.length > 0) {
    parts.push(
      `<t:Attachments>${m.attachments
        .map(
          (name, i) =>
            `<t:FileAttachment><t:AttachmentId Id="${m.id}-att${i}"/><t:Name>${esc(name)}</t:Name><t:ContentType>application/octet-stream</t:ContentType><t:IsInline>false</t:IsInline></t:FileAttachment>`,
        )
        .join('')}</t:Attachments>`,
    );
  }
  if (has('item:DateTimeReceived')) parts.push(`<t:DateTimeReceived>${m.received}</t:DateTimeReceived>`);
  if (has('item:Size')) parts.push(`<t:Size>${m.raw.length}</t:Size>`);
  if (has('item:HasAttachments'))
    parts.push(`<t:HasAttachments>${m.attachments.length > 0}</t:HasAttachments>`);
  if (has('item:DateTimeSent') && m.sent) parts.push(`<t:DateTimeSent>${m.sent}</t:DateTimeSent>`);
  if (has('message:From') && m.from) {
    parts.push(
      `<t:From><t:Mailbox><t:Name>${esc(m.from.name || m.from.address)}</t:Name><t:EmailAddress>${esc(m.from.address)}</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>OneOff</t:MailboxType></t:Mailbox></t:From>`,
    );
  }
  if (has('message:InternetMessageId') && m.internetMessageId) {
    parts.push(`<t:InternetMessageId>${esc(m.internetMessageId)}</t:InternetMessageId>`);
  }
  if (has('message:IsRead')) parts.push(`<t:IsRead>${m.isRead}</t:IsRead>`);
  return `<t:${m.element}>${parts.join('')}</t:${m.element}>`;
}

/** The operation element's local name, for matching faults; '' when the body is not a SOAP request. */
function operationOf(body: string): string {
  const m = /<(?:[\w.-]+:)?Body\b[^>]*>\s*<(?:[\w.-]+:)?([A-Za-z]+)\b/.exec(body);
  return m?.[1] ?? '';
}

async function readBody(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of req) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}
