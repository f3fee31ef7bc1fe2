import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type AddressObject,
  type AttachmentStream,
  type EmailAddress,
  type HeaderLines,
  MailParser,
  type MessageText,
} from 'mailparser';
import { isMailintakeError, MailintakeError } from '../kernel/errors.js';
import {
  DEFAULT_PARSE_LIMITS as PARSE_LIMIT_DEFAULTS,
  TNEF_MAX_BYTES,
  TNEF_MAX_FILES,
  UUENCODE_MAX_BLOCKS,
} from '../kernel/limits.js';
import type { BlobStore } from '../store/blobs/blob-store.js';
import { CuttingMailParser } from './body-cut.js';
import {
  CharsetLedger,
  chooseHeaderCharset,
  FittingDecoder,
  mergedEncodedWords,
  redecodedHeaderLine,
} from './charset-fix.js';
import { returnedMessageIdHeader } from './report-peek.js';
import { readTnef, type TnefContent, TnefError } from './tnef.js';
import type { Address, ParsedMail, StoredPart } from './types.js';
import { extractUuBlocks, UUENCODE_ENCODINGS, UuDecoder } from './uuencode.js';

// ---------------------------------------------------------------------------------------------------------
// Limits: one type, its defaults and its validation, here and nowhere else.
// ---------------------------------------------------------------------------------------------------------

export interface ParseLimits {
  /** Largest raw mail in bytes; a larger one fails with MAIL_TOO_LARGE while streaming. -1: unlimited. */
  maxMailBytes: number;
  /**
   * Largest decoded text body and HTML body, each, in UTF-8 bytes (the display limit). Reading stops there
   * (body-cut.ts counts bytes before charset conversion, all parts of a kind together), then the body is cut
   * at a character boundary, ends with a visible marker, and `ParsedMail.truncated`/`truncatedReason` are set,
   * so the request still opens and the admin sees why the text ends early; the raw copy keeps the whole mail.
   * Also the largest HTML that is converted to text when a mail has no text part. -1: unlimited.
   */
  maxTextBytes: number;
  /**
   * Largest header block of one MIME node (the mail's own, or a part's), in bytes as received, folded lines
   * counted whole. A hostile header (one 50 MB line, 100,000 lines, 100,000 encoded words, an RFC 2231
   * `filename*0..*99999` bomb, a mail with no blank line before its body) is held whole in memory and decoded
   * several times over; past this the mail fails with MAIL_TOO_COMPLEX. -1: unlimited.
   */
  maxHeaderBytes: number;
  /**
   * Most MIME nodes (the mail itself and every part, at any depth, attachments included). Each part costs an
   * attachment row and a blob put; 50,000 tiny parts would be minutes of work and rows for one mail. Past this
   * the mail fails with MAIL_TOO_COMPLEX. -1: unlimited.
   */
  maxParts: number;
  /**
   * Deepest nesting of multiparts (the root is depth 1). No real mail comes near it; a deeply nested one is
   * built to exhaust recursion in whatever walks the tree later. Past this the mail fails with
   * MAIL_TOO_COMPLEX. -1: unlimited.
   */
  maxDepth: number;
}

/** The defaults, with why each has its value: kernel/limits.ts (every limit is there). */
export const DEFAULT_PARSE_LIMITS: Readonly<ParseLimits> = PARSE_LIMIT_DEFAULTS;

/** The limits MAIL_TOO_COMPLEX names in `details.limit`. */
export type ComplexityLimit = 'maxHeaderBytes' | 'maxParts' | 'maxDepth';

/**
 * Fills in defaults and validates. Only the documented `-1` means unlimited: `0`, `NaN`, `Infinity`, fractions
 * and other negatives are rejected instead of being read as "no limit" or "default" — a typo or an empty
 * environment variable (`Number('')` is 0) must not silently switch off the protection against a mail bomb.
 */
export function resolveParseLimits(input: Partial<ParseLimits> = {}): ParseLimits {
  const out = { ...DEFAULT_PARSE_LIMITS };
  const fields: { field: string; message: string }[] = [];
  for (const key of Object.keys(DEFAULT_PARSE_LIMITS) as (keyof ParseLimits)[]) {
    const value = input[key];
    if (value === undefined) continue;
    if (value === -1 || (Number.isSafeInteger(value) && value > 0)) {
      out[key] = value;
    } else {
      fields.push({
        field: key,
        message: `must be a positive whole number, or -1 for unlimited (got ${value})`,
      });
    }
  }
  if (fields.length > 0) {
    throw new MailintakeError(
      'INVALID_SETTINGS',
      `Invalid parse limits: ${fields.map((f) => f.field).join(', ')}`,
      {
        details: { fields },
      },
    );
  }
  return out;
}

/** Headers the classifier reads (see classify.ts); kept as strings, first occurrence, unfolded. */
const CLASSIFIER_HEADERS = new Set([
  'auto-submitted',
  'precedence',
  'x-auto-response-suppress',
  'x-autoreply',
  'x-autorespond',
  'list-id',
  // list mail gets no acknowledgement (notify/acknowledgement.ts)
  'list-unsubscribe',
  'return-path',
  'content-type',
  'x-failed-recipients',
  'x-loop',
  'x-autoresponder',
  'x-autogenerated',
  'x-ms-exchange-inbox-rules-loop',
  'x-mailintake-loop',
  // the requester's fallback when From holds no usable address (mail/requester.ts)
  'sender',
  // where the delivering server says it delivered the mail: a per-request reply address survives there
  'delivered-to',
  'x-original-to',
  // raw, for the bounce rules: `From: MAILER-DAEMON <>` has no address, so the parsed sender is null
  'from',
]);

// ---------------------------------------------------------------------------------------------------------
// parseMail
// ---------------------------------------------------------------------------------------------------------

/**
 * Parses one raw mail while it streams in. Attachment bodies go to `blobs` as they arrive (a 50 MB attachment
 * never sits in memory); the raw bytes are hashed and counted on the way through.
 *
 * Memory: mailparser keeps decoded text/HTML bodies in memory until the end of the mail; body-cut.ts stops
 * feeding it once `maxTextBytes` of text and of HTML are read, so they are bounded by that, not by the mail.
 *
 * Errors, always a MailintakeError: MAIL_TOO_LARGE (over `maxMailBytes`), PARSE_FAILED (mailparser refused the
 * mail, or the raw stream failed; the cause is kept), STORE_FAILED (the blob store failed), or the raw
 * stream's own coded error. On any error every stream involved is destroyed; nothing is left pending.
 */
export async function parseMail(
  raw: Readable,
  opts: { blobs: BlobStore; limits?: Partial<ParseLimits> },
): Promise<ParsedMail> {
  const limits = resolveParseLimits(opts.limits);
  const rawHash = createHash('sha256');
  let size = 0;
  // The first failure, and where it happened. Once one stage fails, pipeline destroys the others, and they
  // report knock-on errors (the source is destroyed with the parser's error, a blob put sees a premature close);
  // only the first one explains what went wrong.
  let first: Failure | null = null;
  const fail = (stage: Failure['stage'], err: unknown) => {
    first ??= { stage, err };
  };
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (limits.maxMailBytes !== -1 && size > limits.maxMailBytes) {
        const err = new MailintakeError(
          'MAIL_TOO_LARGE',
          `The mail is larger than the maximum of ${limits.maxMailBytes} bytes.`,
          { details: { maxMailBytes: limits.maxMailBytes } },
        );
        fail('size', err);
        callback(err);
        return;
      }
      rawHash.update(chunk);
      callback(null, chunk);
    },
  });

  const lineEndings = new BareCrLineEndings();

  // Text and HTML bodies are cut while they stream in (body-cut.ts): mailparser would otherwise hold the
  // whole body, several times over, before any cut could be made.
  const parser = new LimitedMailParser(
    {
      // mailsplit's own guards (it holds a node's header block whole, and counts nodes), set from our limits;
      // it reads 0 as "default", so unlimited is the largest safe number. Its EMAXLEN errors become
      // MAIL_TOO_COMPLEX in codedError.
      maxHeadSize: unlimitedAsMax(limits.maxHeaderBytes),
      maxChildNodes: unlimitedAsMax(limits.maxParts),
      // We hash attachments ourselves (sha256, in the blob store); mailparser's md5 would be wasted work.
      checksumAlgo: false,
      // textAsHtml and linkified text are not used: HTML is kept as received and sanitised for display later.
      skipTextToHtml: true,
      skipTextLinks: true,
      // html-to-text on a huge HTML body costs seconds of CPU; beyond the text limit we keep the HTML only.
      ...(limits.maxTextBytes === -1 ? {} : { maxHtmlLengthToParse: limits.maxTextBytes }),
    },
    limits.maxTextBytes,
    limits.maxDepth,
  );

  raw.on('error', (err) => fail('source', err));
  parser.on('error', (err) => fail('parse', err));

  const pending: Pending[] = [];
  /** What the parser decided on its own besides charsets (uuencode, winmail.dat), for the trace. */
  const notes: string[] = [];
  let message: MessageText | null = null;
  let current: AttachmentStream | null = null;
  // The blob put under way. When the parser fails, pipeline can settle before `consume` has seen its put
  // reject and remove its temp file; parseMail waits for it, so nothing of this mail is still running after.
  let inflight: Promise<unknown> | null = null;

  // When another stage fails, pipeline destroys the parser but not the attachment stream it handed out; a blob
  // put still reading that stream would wait forever (and so would pipeline, which waits for `consume`).
  // Destroying it makes the put reject. After a normal end `current` is null and this does nothing.
  //
  // Destroyed WITH an error: a put that pipes the stream on (DeferredSyncBlobs: `stream.pipe(tap)`) hears only
  // 'error'; a plain destroy() ends the source without 'end', pipe() never ends the next stream, and that put
  // would wait forever (parseMail waits for it below; before, it was left pending, one per hostile mail).
  parser.once('close', () => current?.content.destroy(abandoned()));

  const consume = async (source: AsyncIterable<AttachmentStream | MessageText>) => {
    for await (const item of source) {
      if (item.type === 'text') {
        message = item;
        continue;
      }
      current = item;
      // The put reports a failure of the stream by rejecting; this keeps our own destroy(abandoned()) from
      // also being an uncaught 'error' when a put has not listened yet.
      item.content.on('error', () => {});
      // A part sent with a uuencode transfer encoding (mailparser passes it on undecoded) is decoded on its way
      // to the blob store.
      const uu = isUuencoded(item) ? new UuDecoder() : null;
      if (uu) {
        item.content.once('error', (err) => uu.destroy(err));
        item.content.pipe(uu);
      }
      try {
        const put = opts.blobs.put(uu ?? item.content);
        inflight = put;
        const stored = await put.catch((err: unknown) => {
          fail('store', err);
          throw err;
        });
        pending.push({ part: item, stored, ...(uu?.name ? { uuName: uu.name } : {}) });
        if (uu) {
          notes.push(
            uu.name === null
              ? 'a part marked uuencoded had no begin line: kept as it came'
              : `uuencoded part decoded: ${clipName(uu.name)}`,
          );
        }
      } finally {
        current = null;
        // mailparser waits for release() before it goes on past this part; after release it drains whatever
        // is left of the content itself, so the parser never stalls on an attachment we gave up on.
        item.release?.();
      }
    }
  };

  try {
    // MailParser narrows read() to its object types, which the pipeline typings cannot see through.
    await pipeline(raw, meter, lineEndings, parser as Transform, consume);
  } catch (err) {
    (current as AttachmentStream | null)?.content.destroy(abandoned());
    await (inflight as Promise<unknown> | null)?.catch(() => {});
    throw codedError(first ?? { stage: 'parse', err }, limits);
  }

  const root = parser.headerLines || [];
  // `begin 644 name` … `end` blocks in the text body become attachments, and the text says where they were.
  const uu = await uuBlocksOf(
    withoutNul((message as MessageText | null)?.text ?? null),
    opts.blobs,
    parser,
    notes,
    limits,
  );
  const text = uu.text;
  const html = withoutNul((message as MessageText | null)?.html ?? null);
  const cutText = truncateUtf8(parser.dropped.text > 0 ? withoutSplitEnd(text) : text, limits.maxTextBytes);
  const cutHtml = truncateUtf8(parser.dropped.html > 0 ? withoutSplitEnd(html) : html, limits.maxTextBytes);
  const textCut = cutText.cut || parser.dropped.text > 0;
  const htmlCut = cutHtml.cut || parser.dropped.html > 0;

  const subject = typeof parser.subject === 'string' ? parser.subject : '';
  // Raw 8-bit header bytes that are not UTF-8 are decoded again now that every part's charset is known.
  parser.chooseHeaderCharset(root, pending);
  const redone = parser.redecodedHeaders(root, ROOT_FIELDS);

  const mail: ParsedMail = {
    messageId: extractMessageIds(firstHeader(root, 'message-id') ?? '')[0] ?? null,
    inReplyTo: extractMessageIds(allHeaders(root, 'in-reply-to').join(' ')),
    references: extractMessageIds(allHeaders(root, 'references').join(' ')),
    subject: withoutNul(
      typeof redone.get('subject') === 'string' ? (redone.get('subject') as string) : subject,
    ),
    from: addresses((redone.get('from') as AddressObject | undefined) ?? parser.from)[0] ?? null,
    to: addresses((redone.get('to') as AddressObject | undefined) ?? parser.to),
    cc: addresses((redone.get('cc') as AddressObject | undefined) ?? parser.cc),
    replyTo: addresses((redone.get('reply-to') as AddressObject | undefined) ?? parser.replyTo),
    date: parseDate(firstHeader(root, 'date')),
    text: textCut ? withMarker(cutText.value, 'text') : cutText.value,
    html: htmlCut ? withMarker(cutHtml.value, 'html') : cutHtml.value,
    attachments: [
      ...storedParts(pending, html, (part) => redecodedFilename(parser, part), parser),
      ...uu.parts,
    ],
    headers: classifierHeaders(root),
    contentHash: rawHash.digest('hex'),
    size,
  };
  // winmail.dat: the files inside become attachments of their own (after it), and its body the mail's when
  // the mail has none.
  const tnef = await unpackTnef(mail.attachments, opts.blobs, parser, notes, limits);
  if (tnef.parts.length > 0) mail.attachments = tnef.parts;
  if (mail.text === null && mail.html === null && tnef.body) {
    if (tnef.body.text !== null)
      mail.text = withoutNul(truncateUtf8(tnef.body.text, limits.maxTextBytes).value);
    if (tnef.body.html !== null)
      mail.html = withoutNul(truncateUtf8(tnef.body.html, limits.maxTextBytes).value);
  }
  const returned = await returnedMessageIdHeader(
    opts.blobs,
    mail.headers['content-type'] ?? '',
    mail.attachments,
  );
  const returnedId = returned === undefined ? undefined : extractMessageIds(returned)[0];
  if (returnedId) mail.returnedMessageId = withoutNul(returnedId);
  if (parser.ledger.notes.length + notes.length > 0) mail.parseNotes = [...parser.ledger.notes, ...notes];
  if (textCut || htmlCut) {
    mail.truncated = true;
    mail.truncatedReason = truncationReason(
      textCut ? { kept: byteLength(cutText.value), dropped: parser.dropped.text } : null,
      htmlCut ? { kept: byteLength(cutHtml.value), dropped: parser.dropped.html } : null,
      limits.maxTextBytes,
    );
  }
  return mail;
}

/** An attachment on its way to the blob store, with the name a uuencoded part's `begin` line gave. */
interface Pending {
  part: AttachmentStream;
  stored: { sha256: string; size: number };
  uuName?: string;
}

function isUuencoded(part: AttachmentStream): boolean {
  const cte = part.headers.get('content-transfer-encoding');
  return typeof cte === 'string' && UUENCODE_ENCODINGS.has(cte.trim().toLowerCase());
}

/** A file name as it goes into the trace: quoted, control characters escaped, long ones cut. */
function clipName(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
}

/**
 * Takes uuencoded blocks out of the text body and stores each as an attachment (the attachment checks see
 * them like any other). The text is at most the display limit, so the blocks are bounded by it; a block the
 * cut ended early is kept as far as it came, and the raw mail keeps the whole.
 */
async function uuBlocksOf(
  text: string | null,
  blobs: BlobStore,
  parser: LimitedMailParser,
  notes: string[],
  limits: ParseLimits,
): Promise<{ text: string | null; parts: StoredPart[] }> {
  if (text === null) return { text, parts: [] };
  const found = extractUuBlocks(text, UUENCODE_MAX_BLOCKS);
  const parts: StoredPart[] = [];
  for (const block of found.blocks) {
    let stored: { sha256: string; size: number };
    try {
      stored = await blobs.put(Readable.from([block.data]));
    } catch (err) {
      throw codedError({ stage: 'store', err }, limits);
    }
    const name = withoutNul(block.name) || `uuencoded-${parts.length + 1}.bin`;
    parts.push({
      filename: name,
      contentType: parser.typeOfName(name),
      size: stored.size,
      sha256: stored.sha256,
      contentId: null,
      disposition: 'attachment',
    });
    notes.push(
      `uuencoded file ${clipName(name)} in the text body kept as an attachment${block.complete ? '' : ' (its end line was missing: what came is kept)'}`,
    );
  }
  return { text: found.text, parts };
}

const TNEF_TYPES = new Set(['application/ms-tnef', 'application/vnd.ms-tnef']);

function isTnef(part: StoredPart): boolean {
  return TNEF_TYPES.has(part.contentType) || /^winmail\.dat$/i.test(part.filename);
}

/**
 * Unpacks every winmail.dat among the attachments (tnef.ts). The winmail.dat itself stays in the list: what
 * the files and body in it are is our reading of a proprietary container, and an admin who doubts it can still
 * download what came. A winmail.dat that cannot be read (too large, broken, no TNEF at all) stays as it is,
 * with its reason in the notes; the mail is taken in either way. `parts` is the new list (empty: unchanged).
 */
async function unpackTnef(
  attachments: StoredPart[],
  blobs: BlobStore,
  parser: LimitedMailParser,
  notes: string[],
  limits: ParseLimits,
): Promise<{ parts: StoredPart[]; body: { text: string | null; html: string | null } | null }> {
  if (!attachments.some(isTnef)) return { parts: [], body: null };
  const parts: StoredPart[] = [];
  let body: { text: string | null; html: string | null } | null = null;
  for (const part of attachments) {
    parts.push(part);
    if (!isTnef(part)) continue;
    const label = clipName(part.filename);
    if (part.size > TNEF_MAX_BYTES) {
      notes.push(
        `${label} not unpacked (TNEF_TOO_LARGE: ${part.size} bytes, the limit is ${TNEF_MAX_BYTES}); kept as it came`,
      );
      continue;
    }
    let content: TnefContent;
    try {
      content = readTnef(await blobBytes(blobs, part.sha256, TNEF_MAX_BYTES), TNEF_MAX_FILES);
    } catch (err) {
      const reason =
        err instanceof TnefError ? `${err.problem}: ${err.message}` : `TNEF_UNREADABLE: ${messageOf(err)}`;
      notes.push(`${label} not unpacked (${reason}); kept as it came`);
      continue;
    }
    let n = 0;
    for (const file of content.files) {
      let stored: { sha256: string; size: number };
      try {
        stored = await blobs.put(Readable.from([file.data]));
      } catch (err) {
        throw codedError({ stage: 'store', err }, limits);
      }
      const name = withoutNul(file.name ?? '') || `winmail-${++n}.bin`;
      const declared = (file.mimeType ?? '').trim().toLowerCase();
      parts.push({
        filename: name,
        contentType: /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(declared)
          ? declared
          : parser.typeOfName(name),
        size: stored.size,
        sha256: stored.sha256,
        contentId: null,
        disposition: 'attachment',
      });
    }
    const bodyNote =
      content.text !== null || content.html !== null
        ? ' and its body'
        : content.rtfOnly
          ? ' (its body is compressed RTF, not unpacked)'
          : '';
    notes.push(
      content.files.length === 0
        ? `${label} holds no files${bodyNote}; kept as it came`
        : `${label} unpacked: ${content.files.length} file(s)${bodyNote}; the winmail.dat is kept as well`,
    );
    if (body === null && (content.text !== null || content.html !== null)) {
      body = { text: content.text, html: content.html };
    }
  }
  return { parts, body };
}

/** A stored blob, whole, when it is at most `max` bytes (the caller checked the size already). */
async function blobBytes(blobs: BlobStore, sha256: string, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const stream = blobs.get(sha256);
  try {
    for await (const chunk of stream) {
      size += (chunk as Buffer).length;
      if (size > max) throw new TnefError('TNEF_TRUNCATED', `larger than ${max} bytes`);
      chunks.push(chunk as Buffer);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks, size);
}

function abandoned(): Error {
  return new Error('the mail ended or failed before this attachment was read');
}

interface Failure {
  stage: 'size' | 'source' | 'parse' | 'store';
  err: unknown;
}

function codedError({ stage, err }: Failure, limits: ParseLimits): MailintakeError {
  // A coded error stays as it is: MAIL_TOO_LARGE from the meter, MAIL_TOO_COMPLEX from the depth check, or a
  // connector's own code from the source.
  if (isMailintakeError(err)) return err;
  const limit = stage === 'parse' ? splitterLimit(err) : null;
  if (limit !== null) return tooComplex(limit, limits[limit], err);
  switch (stage) {
    case 'source':
      // The connection broke while the mail streamed in: fetching it again may well work.
      return new MailintakeError('PARSE_FAILED', `Reading the raw mail failed: ${messageOf(err)}`, {
        cause: err,
        retryable: true,
      });
    case 'store':
      return new MailintakeError('STORE_FAILED', `Storing an attachment failed: ${messageOf(err)}`, {
        cause: err,
      });
    default:
      return new MailintakeError('PARSE_FAILED', `The mail could not be parsed: ${messageOf(err)}`, {
        cause: err,
      });
  }
}

const LIMIT_WHAT: Record<ComplexityLimit, string> = {
  maxHeaderBytes: 'a header block larger than',
  maxParts: 'more MIME parts than',
  maxDepth: 'multiparts nested deeper than',
};

function tooComplex(limit: ComplexityLimit, max: number, cause?: unknown): MailintakeError {
  return new MailintakeError(
    'MAIL_TOO_COMPLEX',
    `The mail has ${LIMIT_WHAT[limit]} the maximum of ${max}${limit === 'maxHeaderBytes' ? ' bytes' : ''} (${limit}).`,
    { details: { limit, max }, ...(cause === undefined ? {} : { cause }) },
  );
}

/**
 * Which of our limits a mailsplit error stands for. mailsplit tags its size guards with code EMAXLEN and tells
 * them apart only by message (pinned @zone-eu/mailsplit 5.4.30); an unknown EMAXLEN message stays PARSE_FAILED
 * (parse.test.ts notices if the messages change).
 */
function splitterLimit(err: unknown): ComplexityLimit | null {
  if (!(err instanceof Error) || (err as { code?: unknown }).code !== 'EMAXLEN') return null;
  if (err.message.includes('header size')) return 'maxHeaderBytes';
  if (err.message.includes('child nodes')) return 'maxParts';
  return null;
}

function unlimitedAsMax(value: number): number {
  return value === -1 ? Number.MAX_SAFE_INTEGER : value;
}

/** A node as mailsplit hands it to mailparser: multipart children point at their parent. */
interface SplitNode {
  type?: string;
  parentNode?: SplitNode | false;
}

/**
 * Adds the nesting-depth limit mailsplit does not have. A node chunk's depth is the length of its parent chain
 * (bounded by maxParts, which mailsplit checks first); past the limit the chunk is refused with
 * MAIL_TOO_COMPLEX, which mailparser emits as its error, and the parse ends there.
 */
class LimitedMailParser extends CuttingMailParser {
  readonly #maxDepth: number;
  /** The charsets the mail declares and the notes on the charset choices made (charset-fix.ts). */
  readonly ledger = new CharsetLedger();
  /** Each node's raw header lines, by its processed header Map (what an attachment carries as `headers`). */
  readonly #rawLines = new WeakMap<object, HeaderLines>();

  constructor(
    options: ConstructorParameters<typeof CuttingMailParser>[0],
    maxTextBytes: number,
    maxDepth: number,
  ) {
    super(options, maxTextBytes);
    this.#maxDepth = maxDepth;
  }

  override processChunk(
    data: Parameters<CuttingMailParser['processChunk']>[0],
    done: (err?: Error | null) => void,
  ): void {
    if (data.type === 'node' && this.#maxDepth !== -1) {
      let depth = 1;
      for (let n = (data as SplitNode).parentNode; n; n = n.parentNode) depth++;
      if (depth > this.#maxDepth) {
        done(tooComplex('maxDepth', this.#maxDepth));
        return;
      }
    }
    super.processChunk(data, done);
  }

  /**
   * Notes every declared charset, keeps the node's raw header lines for re-decoding, and sends every inline
   * text body through a FittingDecoder: mailparser decodes a body labelled UTF-8 or us-ascii (or not labelled
   * at all) by no decoder, so the label is marked to make it ask `getDecoder` for every text body.
   */
  override createNode(data: unknown): ReturnType<CuttingMailParser['createNode']> {
    const node = super.createNode(data) as ReturnType<CuttingMailParser['createNode']> & MailparserNode;
    const charset = (data as { charset?: unknown }).charset;
    if (typeof charset === 'string') this.ledger.declare(charset);
    if (node.headers && node.headerLines) this.#rawLines.set(node.headers, node.headerLines);
    if (node.decoder && node.isAttachment === false) node.charset = FIT_MARK + (node.charset || '');
    return node;
  }

  /** mailparser's charset decoder, with a FittingDecoder for the bodies createNode marked. */
  getDecoder(): CharsetDecoder {
    const original = (
      MailParser.prototype as unknown as { getDecoder(this: unknown): CharsetDecoder }
    ).getDecoder.call(this);
    return {
      decodeStream: (charset: string) =>
        charset.startsWith(FIT_MARK)
          ? new FittingDecoder(charset.slice(FIT_MARK.length) || null, this.ledger, (label) =>
              original.decodeStream(label),
            )
          : original.decodeStream(charset),
    };
  }

  /**
   * mailparser's processed values of the given header fields, for those whose raw line has 8-bit bytes that
   * are not UTF-8 (decoded by the charset chain first). Only the first line of each field counts.
   */
  redecodedHeaders(lines: HeaderLines, fields: Record<string, string>): Map<string, unknown> {
    const fixed: { key: string; line: string }[] = [];
    const out = new Map<string, unknown>();
    for (const [key, what] of Object.entries(fields)) {
      const line = lines.find((l) => l.key === key);
      if (!line) continue;
      const merged = mergedEncodedWords(line.line);
      if (merged !== null)
        this.ledger.note(`${what}: a character split across two encoded words joined again`);
      const redone =
        redecodedHeaderLine(merged ?? line.line, this.ledger, what) ??
        (merged === null ? null : { line: merged, text: merged.slice(merged.indexOf(':') + 1) });
      if (redone === null) continue;
      if (key === 'subject') {
        // mailparser trims the value while it is one character per byte: a last character whose UTF-8 ends in
        // 0xA0 (`à`) would lose that byte as a no-break space. The subject is decoded here instead, as
        // mailparser does it (encoded words in it decoded too).
        out.set(key, this.decodeWords(redone.text.replace(/\r?\n[ \t]+/g, ' ')).trim());
        continue;
      }
      // the same trim, kept away from the value by an empty list entry / parameter the parsers skip
      const guard = redone.line.endsWith('\u00a0') ? (key.startsWith('content-') ? ';' : ',') : '';
      fixed.push({ key, line: redone.line + guard });
    }
    if (fixed.length === 0) return out;
    const processed = (
      this as unknown as { processHeaders(lines: HeaderLines): Map<string, unknown> }
    ).processHeaders(fixed);
    for (const [k, v] of processed) out.set(k, v);
    return out;
  }

  /** RFC 2047 encoded words decoded by mailparser's own libmime; the text as it is when that fails. */
  decodeWords(text: string): string {
    const libmime = (this as unknown as { libmime?: { decodeWords(s: string): string } }).libmime;
    try {
      return libmime ? libmime.decodeWords(text) : text;
    } catch {
      return text;
    }
  }

  /** One charset for all raw 8-bit header bytes of the mail: its own fields' and its attachments' names. */
  chooseHeaderCharset(root: HeaderLines, pending: readonly { part: AttachmentStream }[]): void {
    const lines: string[] = [];
    for (const key of Object.keys(ROOT_FIELDS)) {
      const line = root.find((l) => l.key === key);
      if (line) lines.push(line.line);
    }
    for (const { part } of pending) {
      for (const l of this.#rawLines.get(part.headers) ?? []) {
        if (l.key === 'content-disposition' || l.key === 'content-type') lines.push(l.line);
      }
    }
    chooseHeaderCharset(lines, this.ledger);
  }

  /** The content type a file name suggests (mailparser's own table), application/octet-stream when none. */
  typeOfName(name: string): string {
    const libmime = (this as unknown as { libmime?: { detectMimeType(name: string): string | false } })
      .libmime;
    const type = libmime?.detectMimeType(name);
    return typeof type === 'string' && type.length > 0 ? type.toLowerCase() : 'application/octet-stream';
  }

  rawLinesOf(headers: object): HeaderLines | undefined {
    return this.#rawLines.get(headers);
  }
}

/** What createNode gives back, as far as the charset handling reads and writes it (mail-parser.js createNode). */
interface MailparserNode {
  headers?: object;
  headerLines?: HeaderLines;
  charset?: string;
}

interface CharsetDecoder {
  decodeStream(charset: string): NodeJS.ReadWriteStream;
}

/** Marks a text body's charset label so that mailparser hands it to getDecoder (see createNode). */
const FIT_MARK = 'x-mailintake-fit:';

/** The mail's own header fields decoded again when they hold raw 8-bit bytes, with their names in the trace. */
const ROOT_FIELDS: Record<string, string> = {
  subject: 'Subject',
  from: 'From',
  to: 'To',
  cc: 'Cc',
  'reply-to': 'Reply-To',
};

/** An attachment's file name from its raw headers, when they hold 8-bit bytes that are not UTF-8. */
function redecodedFilename(parser: LimitedMailParser, part: AttachmentStream): string | null {
  const lines = parser.rawLinesOf(part.headers);
  if (!lines) return null;
  const redone = parser.redecodedHeaders(lines, {
    'content-disposition': 'file name (Content-Disposition)',
    'content-type': 'file name (Content-Type)',
  });
  const params = (key: string) =>
    (redone.get(key) as { params?: Record<string, unknown> } | undefined)?.params ?? {};
  const name = params('content-disposition').filename ?? params('content-type').name;
  return typeof name === 'string' && name.length > 0 ? name : null;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Mails stored with old Mac line endings (CR only; sisimai's maildir/mac set) reach mailparser as one endless
 * header line: no subject, no sender, no body. mailsplit knows LF and CRLF, so when the first line of the mail
 * ends in a bare CR, every bare CR becomes LF. Mails whose first line ends in LF or CRLF pass untouched (a bare
 * CR inside them may be binary data). The raw hash and size are taken before this step.
 */
export class BareCrLineEndings extends Transform {
  #mode: 'undecided' | 'convert' | 'pass' = 'undecided';
  #head: Buffer[] = [];
  #headBytes = 0;
  #heldCr = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#mode === 'pass') {
      callback(null, chunk);
      return;
    }
    if (this.#mode === 'undecided') {
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      const head = Buffer.concat(this.#head, this.#headBytes);
      const at = head.findIndex((b) => b === 0x0d || b === 0x0a);
      // Decide on the first line end; a header line longer than 64 KB without one: nothing to fix, pass.
      if ((at === -1 || (head[at] === 0x0d && at === head.length - 1)) && head.length < 65536) {
        callback(null);
        return;
      }
      this.#head = [];
      this.#mode = at !== -1 && head[at] === 0x0d && head[at + 1] !== 0x0a ? 'convert' : 'pass';
      if (this.#mode === 'pass') {
        this.push(head);
        callback(null);
        return;
      }
      chunk = head;
    }
    this.push(this.#convert(chunk, false));
    callback(null);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#mode === 'undecided') {
      if (this.#headBytes > 0) this.push(Buffer.concat(this.#head, this.#headBytes));
    } else if (this.#mode === 'convert') {
      this.push(this.#convert(Buffer.alloc(0), true));
    }
    callback(null);
  }

  #convert(chunk: Buffer, last: boolean): Buffer {
    // A CR at the end of a chunk may be the first half of a CRLF split across chunks: hold it back.
    const input = this.#heldCr ? Buffer.concat([Buffer.from([0x0d]), chunk]) : Buffer.from(chunk);
    this.#heldCr = false;
    let end = input.length;
    if (!last && end > 0 && input[end - 1] === 0x0d) {
      this.#heldCr = true;
      end -= 1;
    }
    for (let i = 0; i < end; i++) {
      if (input[i] === 0x0d && input[i + 1] !== 0x0a) input[i] = 0x0a;
    }
    return input.subarray(0, end);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Field extraction
// ---------------------------------------------------------------------------------------------------------

/** Value of a raw header line: after the first colon, unfolded (RFC 5322 §2.2.3), trimmed. */
/** A header's value, unfolded; without NUL, like every other text of the mail (see withoutNul). */
function headerValue(line: string): string {
  const colon = line.indexOf(':');
  return withoutNul(
    (colon < 0 ? '' : line.slice(colon + 1))
      .replace(/\r?\n[ \t]+/g, ' ')
      .replace(/\r/g, '')
      .trim(),
  );
}

function allHeaders(lines: HeaderLines, key: string): string[] {
  return lines.filter((l) => l.key === key).map((l) => headerValue(l.line));
}

function firstHeader(lines: HeaderLines, key: string): string | null {
  const line = lines.find((l) => l.key === key);
  return line ? headerValue(line.line) : null;
}

/**
 * Message ids from a Message-ID / In-Reply-To / References value, without angle brackets, de-duplicated, in
 * order. Real headers carry comments and phrases (`<a@b> (Your message of …)`, `"Joe" <a@b>`), ids separated by
 * commas, or ids without brackets: when any `<…>` is present only those count, else each whitespace/comma
 * separated token that looks like an id (has an `@`) does.
 */
export function extractMessageIds(value: string): string[] {
  const bracketed = [...value.matchAll(/<([^<>]*)>/g)].map((m) => (m[1] ?? '').replace(/\s+/g, ''));
  const ids = bracketed.length > 0 ? bracketed : value.split(/[\s,]+/).filter((t) => t.includes('@'));
  const out: string[] = [];
  for (const id of ids) {
    if (id.length > 0 && !out.includes(id)) out.push(id);
  }
  return out;
}

/**
 * ISO 8601, or null. mailparser replaces an unreadable Date header with the time of parsing, which would make
 * a mail look new; we parse the raw header ourselves and say "unknown" instead.
 */
function parseDate(value: string | null): string | null {
  if (!value) return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return null;
  const iso = date.toISOString();
  // `Date: Mon, 7 Dec 99999` and negative years parse, and toISOString writes them with six digits and a sign
  // (`+099999-12-07…`): no RFC 3339 reader takes that, and as text it sorts before every real date. A year
  // outside 0000-9999 is no date a mail was sent on: unknown, like an unreadable one.
  return /^\d{4}-/.test(iso) ? iso : null;
}

function addresses(header: AddressObject | AddressObject[] | undefined): Address[] {
  const out: Address[] = [];
  const visit = (entries: EmailAddress[]) => {
    for (const entry of entries) {
      // RFC 5322 groups (`Undisclosed recipients: a@b, c@d;`) are flattened to their members.
      if (entry.group) visit(entry.group);
      else if (entry.address) {
        out.push({ address: withoutNul(entry.address.toLowerCase()), name: withoutNul(entry.name ?? '') });
      }
    }
  };
  for (const obj of header === undefined ? [] : Array.isArray(header) ? header : [header]) visit(obj.value);
  return out;
}

/**
 * Headers every hop adds one of: all of them are kept (joined by ", ", up to DELIVERED_KEPT), since a per-request
 * reply address may sit in an earlier hop's Delivered-To, below the one our own server wrote after a forward.
 */
const EVERY_OCCURRENCE = new Set(['delivered-to', 'x-original-to']);
const DELIVERED_KEPT = 16;

function classifierHeaders(lines: HeaderLines): Record<string, string> {
  const out: Record<string, string> = {};
  const counts = new Map<string, number>();
  for (const line of lines) {
    if (!CLASSIFIER_HEADERS.has(line.key)) continue;
    if (!(line.key in out)) {
      out[line.key] = headerValue(line.line);
      counts.set(line.key, 1);
    } else if (EVERY_OCCURRENCE.has(line.key) && (counts.get(line.key) ?? 0) < DELIVERED_KEPT) {
      out[line.key] = `${out[line.key]}, ${headerValue(line.line)}`;
      counts.set(line.key, (counts.get(line.key) ?? 0) + 1);
    }
  }
  return out;
}

/**
 * Removes NUL characters. Senders do put them in (an encoded-word subject ending in a 0 byte, in sisimai's
 * make-test-31), and PostgreSQL refuses NUL in text columns: one such mail would fail to store, again and again.
 */
function withoutNul<T extends string | null>(value: T): T {
  return (value === null || !value.includes('\u0000') ? value : value.replaceAll('\u0000', '')) as T;
}

/** Cuts a string to at most `maxBytes` UTF-8 bytes without splitting a character. */
function truncateUtf8(value: string | null, maxBytes: number): { value: string | null; cut: boolean } {
  // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no encoding to know they fit.
  if (value === null || maxBytes === -1 || value.length * 3 <= maxBytes) return { value, cut: false };
  if (Buffer.byteLength(value, 'utf8') <= maxBytes) return { value, cut: false };
  const { read } = new TextEncoder().encodeInto(value, new Uint8Array(maxBytes));
  return { value: value.slice(0, read), cut: true };
}

/**
 * A body cut while streaming may end in the first bytes of a character whose rest was not read (a cut base64
 * quantum, or a line longer than the budget): the charset decoder turns them into U+FFFD. Only trailing ones
 * (before trailing line ends, which mailparser adds when it joins parts) are removed.
 */
function withoutSplitEnd(value: string | null): string | null {
  if (value === null) return null;
  let end = value.length;
  while (end > 0 && value.charCodeAt(end - 1) === 0x0a) end--;
  let start = end;
  while (start > 0 && value.charCodeAt(start - 1) === 0xfffd) start--;
  return start === end ? value : value.slice(0, start) + value.slice(end);
}

/** The visible note at the end of a cut body; the HTML one is plain markup the sanitiser keeps. */
export const CUT_MARKER_TEXT =
  '[Mailintake: this body was cut for display; the whole mail is kept as received.]';

function withMarker(value: string | null, kind: 'text' | 'html'): string | null {
  if (value === null) return null;
  return kind === 'text' ? `${value}\n\n${CUT_MARKER_TEXT}\n` : `${value}\n<p>${CUT_MARKER_TEXT}</p>\n`;
}

function byteLength(value: string | null): number {
  return value === null ? 0 : Buffer.byteLength(value, 'utf8');
}

/** The reason an admin reads in the intake log. */
function truncationReason(
  text: { kept: number; dropped: number } | null,
  html: { kept: number; dropped: number } | null,
  max: number,
): string {
  const part = (name: string, c: { kept: number; dropped: number }) =>
    `${name} kept ${c.kept} bytes${c.dropped > 0 ? `, ${c.dropped} more bytes not read` : ''}`;
  const parts = [text && part('text', text), html && part('HTML', html)].filter((p) => p !== null);
  return `body cut at the display limit of ${max} bytes (${parts.join('; ')}); the raw copy keeps the whole mail`;
}

const EXTENSIONS: Record<string, string> = {
  'application/pdf': 'pdf',
  'application/zip': 'zip',
  'application/json': 'json',
  'application/xml': 'xml',
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/gif': 'gif',
  'image/webp': 'webp',
  'image/bmp': 'bmp',
  'image/tiff': 'tif',
  'image/svg+xml': 'svg',
  'text/plain': 'txt',
  'text/html': 'html',
  'text/csv': 'csv',
  'text/calendar': 'ics',
  'text/rfc822-headers': 'txt',
  'message/rfc822': 'eml',
  'message/delivery-status': 'txt',
  'message/feedback-report': 'txt',
};

/**
 * A name for a part that was sent without one (common for inline images pasted into a mail, forwarded
 * messages and DSN parts): `image-1.png`, `attachment-2.eml`, numbered per prefix in order of appearance,
 * with the extension taken from the content type (`.bin` when unknown). Shown to people, never a path.
 */
function fallbackName(contentType: string, counters: Map<string, number>): string {
  const prefix = contentType.startsWith('image/') ? 'image' : 'attachment';
  const n = (counters.get(prefix) ?? 0) + 1;
  counters.set(prefix, n);
  return `${prefix}-${n}.${EXTENSIONS[contentType] ?? 'bin'}`;
}

function filenameOf(
  part: AttachmentStream,
  redecodedName: (part: AttachmentStream) => string | null,
  contentType: string,
  counters: Map<string, number>,
  uuName?: string,
): string {
  const name = part.filename ? (redecodedName(part) ?? part.filename) : (uuName ?? null);
  return name ? withoutNul(name) : fallbackName(contentType, counters);
}

function storedParts(
  pending: Pending[],
  html: string | null,
  redecodedName: (part: AttachmentStream) => string | null,
  parser: LimitedMailParser,
): StoredPart[] {
  const counters = new Map<string, number>();
  return pending.map(({ part, stored, uuName }) => {
    let contentType = (part.contentType || 'application/octet-stream').toLowerCase();
    if (uuName && contentType === 'application/octet-stream') contentType = parser.typeOfName(uuName);
    const contentId = part.cid ? part.cid : null;
    // Inline only when something shows it in place: a Content-ID inside multipart/related, or a Content-ID
    // with an inline disposition, or one the HTML refers to (`cid:`). Anything else is an attachment the
    // person should see listed, even if the sender marked it inline.
    const inline =
      contentId !== null &&
      (part.related === true ||
        part.contentDisposition === 'inline' ||
        (html?.includes(`cid:${contentId}`) ?? false));
    return {
      filename: filenameOf(part, redecodedName, contentType, counters, uuName),
      contentType,
      size: stored.size,
      sha256: stored.sha256,
      contentId,
      disposition: inline ? 'inline' : 'attachment',
    };
  });
}
