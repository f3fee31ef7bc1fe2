import { XMLParser } from 'fast-xml-parser';

/**
 * The SOAP side of EWS, pure: request envelopes built as strings (every value escaped), and answers parsed
 * into response messages or a SOAP fault. Shapes are Microsoft's published ones (learn.microsoft.com/exchange/
 * client-developer/web-service-reference: FindItem, GetItem, UpdateItem, DeleteItem, MoveItem, GetFolder,
 * FindFolder, CreateFolder; "EWS throttling" for ErrorServerBusy).
 */

export const NS_SOAP = 'http://schemas.xmlsoap.org/soap/envelope/';
export const NS_TYPES = 'http://schemas.microsoft.com/exchange/services/2006/types';
export const NS_MESSAGES = 'http://schemas.microsoft.com/exchange/services/2006/messages';

/**
 * The schema version we speak. Exchange 2013 SP1 is the oldest Exchange still in use with EWS (2010 left
 * support in 2020) and the first with UpdateItem's SuppressReadReceipts, which we need: marking a mail read
 * must not send the customer a read receipt.
 */
export const SERVER_VERSION = 'Exchange2013_SP1';

export type EwsOperation =
  | 'GetFolder'
  | 'FindFolder'
  | 'CreateFolder'
  | 'FindItem'
  | 'GetItem'
  | 'UpdateItem'
  | 'DeleteItem'
  | 'MoveItem';

/**
 * Distinguished folder ids that hold mail (EWS DistinguishedFolderIdNameType). A `folder` setting that is one
 * of these (any case) is addressed as such; anything else is the display name of a folder under the root.
 */
export const DISTINGUISHED_MAIL_FOLDERS: ReadonlySet<string> = new Set([
  'inbox',
  'junkemail',
  'deleteditems',
  'drafts',
  'sentitems',
  'outbox',
  'msgfolderroot',
  'archiveinbox',
]);

export class XmlCharacterError extends Error {
  override readonly name = 'XmlCharacterError';
}

/**
 * Outside XML 1.0's Char production: control characters other than tab, CR and LF (not even writable as a
 * character reference), U+FFFE/U+FFFF, and lone surrogates.
 */
function hasInvalidXmlChar(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return true;
    if (c === 0xfffe || c === 0xffff) return true;
    if (c >= 0xd800 && c <= 0xdbff) {
      const low = value.charCodeAt(i + 1);
      if (!(low >= 0xdc00 && low <= 0xdfff)) return true;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true;
    }
  }
  return false;
}

/** Text or attribute value, escaped. A character XML cannot carry is refused rather than dropped. */
export function xmlEscape(value: string): string {
  if (hasInvalidXmlChar(value)) {
    throw new XmlCharacterError(`${JSON.stringify(value)} contains a character XML cannot carry`);
  }
  return value.replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&apos;',
  );
}

export function envelope(operation: string): string {
  return (
    '<?xml version="1.0" encoding="utf-8"?>' +
    `<soap:Envelope xmlns:soap="${NS_SOAP}" xmlns:t="${NS_TYPES}" xmlns:m="${NS_MESSAGES}">` +
    `<soap:Header><t:RequestServerVersion Version="${SERVER_VERSION}"/></soap:Header>` +
    `<soap:Body>${operation}</soap:Body></soap:Envelope>`
  );
}

/**
 * Adds ExchangeImpersonation to a request built by the functions here: how an application token (OAuth client
 * credentials, no user) says which mailbox it acts as (learn.microsoft.com/exchange/client-developer/
 * exchange-web-services/how-to-authenticate-an-ews-application-by-using-oauth; Exchange Online refuses an app
 * token without it: ErrorInvalidExchangeImpersonationHeaderData). Every value in an envelope is escaped, so
 * the first `</soap:Header>` is the header's end.
 */
export function withImpersonation(envelopeXml: string, smtpAddress: string): string {
  const end = envelopeXml.indexOf('</soap:Header>');
  if (end < 0) throw new Error('the envelope has no SOAP header');
  const header =
    '<t:ExchangeImpersonation><t:ConnectingSID>' +
    `<t:SmtpAddress>${xmlEscape(smtpAddress)}</t:SmtpAddress>` +
    '</t:ConnectingSID></t:ExchangeImpersonation>';
  return envelopeXml.slice(0, end) + header + envelopeXml.slice(end);
}

/** A folder: distinguished (in the mailbox named by address, which may be another user's) or by id. */
export type FolderRef = { distinguished: string; mailbox: string } | { id: string };

export function folderIdXml(f: FolderRef): string {
  if ('id' in f) return `<t:FolderId Id="${xmlEscape(f.id)}"/>`;
  return (
    `<t:DistinguishedFolderId Id="${xmlEscape(f.distinguished)}">` +
    `<t:Mailbox><t:EmailAddress>${xmlEscape(f.mailbox)}</t:EmailAddress></t:Mailbox>` +
    '</t:DistinguishedFolderId>'
  );
}

const fieldUris = (uris: string[]) =>
  uris.length === 0
    ? ''
    : `<t:AdditionalProperties>${uris.map((u) => `<t:FieldURI FieldURI="${u}"/>`).join('')}</t:AdditionalProperties>`;

const itemIds = (ids: string[]) => ids.map((id) => `<t:ItemId Id="${xmlEscape(id)}"/>`).join('');

export function getFolderRequest(folder: FolderRef): string {
  return envelope(
    '<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>' +
      `${fieldUris(['folder:DisplayName'])}</m:FolderShape>` +
      `<m:FolderIds>${folderIdXml(folder)}</m:FolderIds></m:GetFolder>`,
  );
}

/** Direct children of `parent` whose display name equals `displayName` (Exchange compares without case). */
export function findFolderRequest(parent: FolderRef, displayName: string): string {
  return envelope(
    '<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>' +
      `${fieldUris(['folder:DisplayName'])}</m:FolderShape>` +
      '<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="folder:DisplayName"/>' +
      `<t:FieldURIOrConstant><t:Constant Value="${xmlEscape(displayName)}"/></t:FieldURIOrConstant>` +
      '</t:IsEqualTo></m:Restriction>' +
      `<m:ParentFolderIds>${folderIdXml(parent)}</m:ParentFolderIds></m:FindFolder>`,
  );
}

/** A mail folder (IPF.Note, so Outlook shows it as one) under `parent`. */
export function createFolderRequest(parent: FolderRef, displayName: string): string {
  return envelope(
    `<m:CreateFolder><m:ParentFolderId>${folderIdXml(parent)}</m:ParentFolderId>` +
      '<m:Folders><t:Folder><t:FolderClass>IPF.Note</t:FolderClass>' +
      `<t:DisplayName>${xmlEscape(displayName)}</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>`,
  );
}

/** Properties listed for each mail: the size for batching, the received time for the order. */
export const LIST_PROPERTIES = ['item:Size', 'item:DateTimeReceived'];

/**
 * One page of a folder's items, oldest first (IndexedPageItemView from the beginning). `unreadOnly` adds
 * the restriction message:IsRead = false. Elements in the schema's order: ItemShape, view, Restriction,
 * SortOrder, ParentFolderIds.
 */
export function findItemRequest(o: {
  folder: FolderRef;
  offset: number;
  max: number;
  unreadOnly: boolean;
  properties: string[];
}): string {
  const restriction = o.unreadOnly
    ? '<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="message:IsRead"/>' +
      '<t:FieldURIOrConstant><t:Constant Value="false"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>'
    : '';
  return envelope(
    '<m:FindItem Traversal="Shallow">' +
      `<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>${fieldUris(o.properties)}</m:ItemShape>` +
      `<m:IndexedPageItemView MaxEntriesReturned="${o.max}" Offset="${o.offset}" BasePoint="Beginning"/>` +
      restriction +
      '<m:SortOrder><t:FieldOrder Order="Ascending"><t:FieldURI FieldURI="item:DateTimeReceived"/>' +
      '</t:FieldOrder></m:SortOrder>' +
      `<m:ParentFolderIds>${folderIdXml(o.folder)}</m:ParentFolderIds></m:FindItem>`,
  );
}

/** Items by id: the raw MIME (base64 MimeContent) and/or some properties. Reading never marks them read. */
export function getItemRequest(ids: string[], o: { mime: boolean; properties?: string[] }): string {
  return envelope(
    `<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>${o.mime ? '<t:IncludeMimeContent>true</t:IncludeMimeContent>' : ''}` +
      `${fieldUris(o.properties ?? [])}</m:ItemShape><m:ItemIds>${itemIds(ids)}</m:ItemIds></m:GetItem>`,
  );
}

/**
 * Marks mails read. SuppressReadReceipts: a customer who asked for a read receipt must not get one because a
 * machine took the mail in. AlwaysOverwrite and no ChangeKey: the mail may have changed since it was listed
 * (a person flagged it), and the read flag is ours to set anyway.
 */
export function markReadRequest(ids: string[]): string {
  const changes = ids
    .map(
      (id) =>
        `<t:ItemChange><t:ItemId Id="${xmlEscape(id)}"/><t:Updates><t:SetItemField>` +
        '<t:FieldURI FieldURI="message:IsRead"/><t:Message><t:IsRead>true</t:IsRead></t:Message>' +
        '</t:SetItemField></t:Updates></t:ItemChange>',
    )
    .join('');
  return envelope(
    '<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AlwaysOverwrite" SuppressReadReceipts="true">' +
      `<m:ItemChanges>${changes}</m:ItemChanges></m:UpdateItem>`,
  );
}

/** See EwsConnector for why SoftDelete. */
export function deleteItemRequest(ids: string[]): string {
  return envelope(
    `<m:DeleteItem DeleteType="SoftDelete"><m:ItemIds>${itemIds(ids)}</m:ItemIds></m:DeleteItem>`,
  );
}

export function moveItemRequest(ids: string[], folderId: string): string {
  return envelope(
    `<m:MoveItem><m:ToFolderId><t:FolderId Id="${xmlEscape(folderId)}"/></m:ToFolderId>` +
      `<m:ItemIds>${itemIds(ids)}</m:ItemIds><m:ReturnNewItemIds>false</m:ReturnNewItemIds></m:MoveItem>`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Answers

/** A parsed XML element: attributes as `@_Name`, text as `#text` (or the element is the text itself). */
export type XmlNode = { [key: string]: XmlValue };
export type XmlValue = string | XmlNode | XmlValue[];

/**
 * fast-xml-parser 5.12 with its defaults spends ~50 ms on a 30 KB FindItem page (path strings built for every
 * element, entity handling on every value), and its validator another ~70 ms: a listing of 10,000 mails
 * would take seconds of CPU. So: no path strings (`jPath: false`), no entity processing in the parser
 * (text() and attr() decode the five XML entities and character references themselves), no validator —
 * an answer cut short is caught by HTTP's framing, by the closing Envelope tag checked below, and by the
 * structure every caller requires. Lists are not forced by the parser either: readers go through asArray().
 */
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  // ids, sizes and dates stay strings: "0012" or a 20-digit number must not turn into a float
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: false,
  jPath: false,
});

export class SoapParseError extends Error {
  override readonly name = 'SoapParseError';
}

/** One message of a ResponseMessages list (ResponseClass Success / Warning / Error, with its code). */
export interface ResponseMessage {
  responseClass: string;
  responseCode: string;
  messageText: string;
  /** BackOffMilliseconds from MessageXml (ErrorServerBusy). */
  backOffMs: number | undefined;
  node: XmlNode;
}

/** A SOAP fault (HTTP 500): the EWS ResponseCode from the detail, or the faultcode without its prefix. */
export interface SoapFault {
  code: string;
  message: string;
  backOffMs: number | undefined;
}

export type SoapAnswer =
  | {
      kind: 'messages';
      messages: ResponseMessage[];
      /** The base64 texts of the answer's MimeContent elements, in document order (see mimeContentOf). */
      mime: string[];
    }
  | { kind: 'fault'; fault: SoapFault };

/**
 * MimeContent elements (megabytes of base64) are lifted out of the text before it is parsed: the parser then
 * sees `<t:MimeContent …>#0</t:MimeContent>` and the payloads stay plain strings. Base64 has no "<", so an
 * element's text ends at its closing tag; one cut short has no closing tag and is not lifted (nor complete).
 */
const MIME_CONTENT = /<((?:[A-Za-z_][\w.-]*:)?MimeContent)\b([^>]*?)>([^<]*)<\/\1\s*>/g;

export function liftMimeContent(xml: string): { skeleton: string; mime: string[] } {
  const mime: string[] = [];
  const skeleton = xml.replace(MIME_CONTENT, (_all, tag: string, attrs: string, content: string) => {
    mime.push(content);
    return `<${tag}${attrs}>#${mime.length - 1}</${tag}>`;
  });
  return { skeleton, mime };
}

/** Parses a whole SOAP answer (refusing DTDs and answers that do not end with the envelope). */
export function parseXml(xml: string): XmlNode {
  // Exchange never sends a DTD; entity definitions in one are an expansion attack surface
  if (/<!DOCTYPE/i.test(xml)) throw new SoapParseError('the answer contains a DTD, which is refused');
  if (!/<\/(?:[A-Za-z_][\w.-]*:)?Envelope\s*>\s*$/.test(xml)) {
    throw new SoapParseError('the answer does not end with the SOAP envelope (cut short?)');
  }
  try {
    return parser.parse(xml) as XmlNode;
  } catch (err) {
    throw new SoapParseError(`the answer is not XML (${(err as Error).message})`);
  }
}

/** The answer to `operation`: its response messages, or a SOAP fault. */
export function parseAnswer(xml: string, operation: EwsOperation): SoapAnswer {
  const { skeleton, mime } = liftMimeContent(xml);
  const doc = parseXml(skeleton);
  const body = child(child(doc, 'Envelope'), 'Body');
  if (!body) throw new SoapParseError('the answer is not a SOAP envelope');
  const fault = child(body, 'Fault');
  if (fault) return { kind: 'fault', fault: faultOf(fault) };
  const list = child(child(body, `${operation}Response`), 'ResponseMessages');
  const messages = list ? asArray(list[`${operation}ResponseMessage`]) : [];
  if (!list || messages.length === 0) {
    throw new SoapParseError(`the answer holds no ${operation}ResponseMessage`);
  }
  return {
    kind: 'messages',
    mime,
    messages: messages.map((m) => {
      const node = typeof m === 'object' && !Array.isArray(m) ? m : {};
      return {
        responseClass: attr(node, 'ResponseClass') ?? '',
        responseCode: text(node.ResponseCode) || '',
        messageText: text(node.MessageText),
        backOffMs: backOffOf(child(node, 'MessageXml')),
        node,
      };
    }),
  };
}

/** A SOAP fault from an answer that is not a response to what we asked (HTTP 500). Undefined if none. */
export function parseFault(xml: string): SoapFault | undefined {
  let doc: XmlNode;
  try {
    doc = parseXml(xml);
  } catch {
    return undefined;
  }
  const fault = child(child(child(doc, 'Envelope'), 'Body'), 'Fault');
  return fault ? faultOf(fault) : undefined;
}

function faultOf(fault: XmlNode): SoapFault {
  const detail = child(fault, 'detail');
  const faultcode = text(fault.faultcode).replace(/^[^:]*:/, '');
  return {
    code: text(detail?.ResponseCode) || faultcode || 'SoapFault',
    message: text(detail?.Message) || text(fault.faultstring),
    backOffMs: backOffOf(child(detail, 'MessageXml')),
  };
}

/** `<t:Value Name="BackOffMilliseconds">5000</t:Value>`; a negative or non-integer value is no value. */
function backOffOf(messageXml: XmlNode | undefined): number | undefined {
  if (!messageXml) return undefined;
  for (const v of asArray(messageXml.Value)) {
    if (typeof v === 'object' && !Array.isArray(v) && attr(v, 'Name') === 'BackOffMilliseconds') {
      const t = text(v).trim();
      if (/^\d{1,10}$/.test(t)) return Number(t);
    }
  }
  return undefined;
}

export function child(node: XmlValue | undefined, name: string): XmlNode | undefined {
  if (!node || typeof node !== 'object' || Array.isArray(node)) return undefined;
  const c = node[name];
  const first = Array.isArray(c) ? c[0] : c;
  if (first === undefined) return undefined;
  // an empty element parses as '' (no attributes, no children)
  return typeof first === 'object' && !Array.isArray(first)
    ? first
    : typeof first === 'string'
      ? {}
      : undefined;
}

export function asArray(v: XmlValue | undefined): XmlValue[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

export function text(v: XmlValue | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return decodeEntities(v);
  if (Array.isArray(v)) return text(v[0]);
  const t = v['#text'];
  return typeof t === 'string' ? decodeEntities(t) : '';
}

export function attr(node: XmlNode | undefined, name: string): string | undefined {
  const v = node?.[`@_${name}`];
  return typeof v === 'string' ? decodeEntities(v) : undefined;
}

/** The base64 text of an item's MimeContent, lifted out of the answer before parsing (liftMimeContent). */
export function mimeContentOf(item: XmlNode | undefined, mime: string[]): string | undefined {
  const marker = /^#(\d+)$/.exec(text(item?.MimeContent));
  return marker ? mime[Number(marker[1])] : undefined;
}

const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** XML's five predefined entities and character references; anything else stays as written. */
function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(?:#(\d{1,7})|#x([0-9A-Fa-f]{1,6})|(lt|gt|amp|quot|apos));/g, (all, dec, hex, name) => {
    if (name) return PREDEFINED[name as string]!;
    const code = dec ? Number.parseInt(dec as string, 10) : Number.parseInt(hex as string, 16);
    return code <= 0x10ffff ? String.fromCodePoint(code) : all;
  });
}

/**
 * The items of an `Items` element in document order of their received time: Exchange lists messages,
 * meeting requests, reports… as different elements (t:Message, t:MeetingRequest, …), which the parser groups
 * by name, so the server's ascending order is restored from DateTimeReceived (a stable sort).
 */
export function itemsOf(items: XmlNode | undefined): XmlNode[] {
  if (!items) return [];
  const all: XmlNode[] = [];
  for (const [name, value] of Object.entries(items)) {
    if (name.startsWith('@_') || name === '#text') continue;
    for (const v of asArray(value)) if (typeof v === 'object' && !Array.isArray(v)) all.push(v);
  }
  const at = (n: XmlNode) => {
    const t = Date.parse(text(n.DateTimeReceived));
    return Number.isNaN(t) ? 0 : t;
  };
  return all.sort((a, b) => at(a) - at(b));
}
