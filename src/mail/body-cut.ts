import { MailParser, type MailParserOptions } from 'mailparser';
import { BODY_CUT_BACK_OFF_BYTES as BACK_OFF } from '../kernel/limits.js';
import { StreamingQpDecoder } from './qp-stream.js';

/**
 * Bodies are cut while they are read, not after.
 *
 * mailparser keeps every inline text part (text/plain, text/html, message/delivery-status) in memory until the
 * end of the mail: the decoded chunks, then one Buffer.concat copy, then a string, then the string with line ends
 * replaced, then the joined text and HTML. Measured: about 9 MB of RSS for each MB of text body, so a 95 MB body
 * peaked at 640 MB, and a cut made after parsing (as before) came too late to help. Attachments already stream;
 * the raw copy of the mail is kept whole by the intake (intake/prepare.ts), so nothing is lost by keeping only
 * the first part of a huge body for display.
 *
 * No option of mailparser limits what it keeps (`maxHtmlLengthToParse` only skips the HTML-to-text
 * conversion), and cutting the raw stream in front of it would mean splitting MIME a second time and rebuilding
 * it. So this parser hooks mailparser's own two steps: `createNode` (where mailparser decides what is a text
 * body and which transfer encoding it has) and `processChunk` (where each encoded body chunk goes into that
 * part's decoder). Body chunks beyond the budget never reach the decoder. Both methods are internal to
 * mailparser (pinned at 3.14.2); `assertHooks` fails loudly if an upgrade renames them, and parse.test.ts fails
 * if they stop being called.
 *
 * The budget counts *decoded* bytes (before charset conversion), per kind: all text parts together, and all
 * HTML parts together, each at most `maxBytes`. A cut ends on a line end where one is near (a line end is a
 * character boundary in every ASCII-compatible charset: UTF-8, ISO-8859-*, Shift_JIS, EUC-*, GB*, Big5), never
 * inside a quoted-printable escape, and on a whole base64 quantum; what is left of a split character shows as
 * U+FFFD at the very end, which parse.ts removes.
 */

export type BodyKind = 'text' | 'html';

/** What mailparser's node looks like to us (mail-parser.js createNode). */
interface ParserNode {
  isAttachment?: boolean;
  contentType?: string;
  encoding?: string;
  decoder?: unknown;
}

/** A chunk from mailsplit's Splitter as mailparser's processChunk gets it. */
interface SplitChunk {
  type: string;
  value?: Buffer;
}

type Done = (err?: Error | null) => void;

interface Hooks {
  createNode(this: unknown, data: unknown): ParserNode;
  processChunk(this: unknown, data: SplitChunk, done: Done): void;
}

type Encoding = 'base64' | 'quoted-printable' | 'binary';

interface PartState {
  kind: BodyKind;
  encoding: Encoding;
  /** base64 alphabet characters passed on so far (to keep the cut on a 4-character quantum). */
  b64: number;
  stopped: boolean;
}

const hooks = MailParser.prototype as unknown as Partial<Hooks>;

function assertHooks(): Hooks {
  if (typeof hooks.createNode !== 'function' || typeof hooks.processChunk !== 'function') {
    throw new Error(
      'mailparser no longer has createNode/processChunk: body cutting (src/mail/body-cut.ts) must be adapted',
    );
  }
  return hooks as Hooks;
}

/** A MailParser that keeps at most `maxBytes` decoded bytes of text body and of HTML body (-1: all). */
export class CuttingMailParser extends MailParser {
  /** Decoded bytes dropped per kind (0: nothing was cut); counts only what was seen before the mail ended. */
  readonly dropped: Record<BodyKind, number> = { text: 0, html: 0 };
  readonly #left: Record<BodyKind, number>;
  readonly #parts = new WeakMap<object, PartState>();
  readonly #hooks: Hooks;

  constructor(options: MailParserOptions, maxBytes: number) {
    super(options);
    this.#hooks = assertHooks();
    const budget = maxBytes === -1 ? Number.POSITIVE_INFINITY : maxBytes;
    this.#left = { text: budget, html: budget };
  }

  /** Called by mailparser for every MIME node, before any of its body. */
  createNode(data: unknown): ParserNode {
    const node = this.#hooks.createNode.call(this, data);
    // Every quoted-printable part, attachments too, gets a decoder that streams (qp-stream.ts: the library's
    // holds the whole part). mailparser listens for its decoder's end (mail-parser.js createNode); so do we.
    if (node.decoder && node.encoding === 'quoted-printable') {
      const decoder = new StreamingQpDecoder();
      decoder.on('end', () => {
        (this as unknown as { decoderEnded: boolean }).decoderEnded = true;
      });
      node.decoder = decoder;
    }
    // unlimited (-1): nothing to count, every chunk passes as mailparser would take it
    if (node.decoder && node.isAttachment === false && Number.isFinite(this.#left.text)) {
      const encoding: Encoding =
        node.encoding === 'base64' || node.encoding === 'quoted-printable' ? node.encoding : 'binary';
      this.#parts.set(node, {
        kind: node.contentType === 'text/html' ? 'html' : 'text',
        encoding,
        b64: 0,
        stopped: false,
      });
    }
    return node;
  }

  /** Called by mailparser for every chunk mailsplit emits, one at a time. */
  processChunk(data: SplitChunk, done: Done): void {
    if (data.type === 'body' && data.value && data.value.length > 0) {
      const node = (this as unknown as { curnode?: object | null }).curnode;
      const part = node ? this.#parts.get(node) : undefined;
      if (part) {
        const value = this.#take(part, data.value);
        if (value.length === 0) {
          // as mailparser does after a chunk it has nothing to do with
          setImmediate(done);
          return;
        }
        if (value !== data.value) data = { ...data, value };
      }
    }
    this.#hooks.processChunk.call(this, data, done);
  }

  /** The part of `chunk` that fits the budget; the rest is counted as dropped. */
  #take(part: PartState, chunk: Buffer): Buffer {
    if (part.stopped) {
      this.dropped[part.kind] += decodedSize(chunk, part.encoding);
      return EMPTY;
    }
    const left = this.#left[part.kind];
    const size = decodedSize(chunk, part.encoding);
    if (size <= left) {
      this.#left[part.kind] = left - size;
      if (part.encoding === 'base64') part.b64 += base64Chars(chunk, chunk.length);
      return chunk;
    }
    // Over budget: this part ends here, and later parts of the same kind get nothing (the budget is per kind).
    part.stopped = true;
    this.#left[part.kind] = 0;
    const end = cutAt(chunk, part, left);
    const kept = chunk.subarray(0, end);
    this.dropped[part.kind] += Math.max(1, size - decodedSize(kept, part.encoding));
    return kept;
  }
}

const EMPTY = Buffer.alloc(0);
const LF = 0x0a;
const CR = 0x0d;
const EQ = 0x3d;

function isHex(b: number | undefined): boolean {
  return (
    b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66))
  );
}

function isBase64Char(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x2b ||
    b === 0x2f
  );
}

function base64Chars(chunk: Buffer, end: number): number {
  let n = 0;
  for (let i = 0; i < end; i++) if (isBase64Char(chunk[i]!)) n++;
  return n;
}

/**
 * Decoded size of an encoded chunk. Quoted-printable: an `=XX` escape is one byte and a soft line break
 * (`=` before the line end) none; an escape split across chunks is off by at most two bytes, which only moves
 * the cut by as much.
 */
function decodedSize(chunk: Buffer, encoding: Encoding): number {
  if (encoding === 'binary') return chunk.length;
  if (encoding === 'base64') return Math.floor((base64Chars(chunk, chunk.length) * 3) / 4);
  return qpPrefix(chunk, Number.POSITIVE_INFINITY).decoded;
}

/** Walks quoted-printable until `limit` decoded bytes: where it stopped (in the chunk) and how much it decoded. */
function qpPrefix(chunk: Buffer, limit: number): { end: number; decoded: number } {
  let decoded = 0;
  let i = 0;
  while (i < chunk.length && decoded < limit) {
    if (chunk[i] === EQ) {
      if (isHex(chunk[i + 1]) && isHex(chunk[i + 2])) {
        decoded += 1;
        i += 3;
        continue;
      }
      if (chunk[i + 1] === LF) {
        i += 2;
        continue;
      }
      if (chunk[i + 1] === CR && chunk[i + 2] === LF) {
        i += 3;
        continue;
      }
    }
    decoded += 1;
    i += 1;
  }
  return { end: i, decoded };
}

/** How far into `chunk` the part may go so that at most `left` more bytes are decoded. */
function cutAt(chunk: Buffer, part: PartState, left: number): number {
  if (part.encoding === 'base64') {
    // Whole quanta only: a dangling 1-3 characters would be garbage or an error to the decoder.
    // Characters that bring the part's total to a whole quantum without decoding more than `left` bytes
    // (lines of a length not divisible by 4 leave a quantum open across chunks).
    const allowed = Math.floor((part.b64 + Math.floor((left * 4) / 3)) / 4) * 4 - part.b64;
    let n = 0;
    let i = 0;
    for (; i < chunk.length && n < allowed; i++) if (isBase64Char(chunk[i]!)) n++;
    part.b64 += n;
    return allowed <= 0 ? 0 : i;
  }
  const end = part.encoding === 'binary' ? Math.min(left, chunk.length) : qpPrefix(chunk, left).end;
  if (end <= 0) return 0;
  // Back to the last hard line end (for quoted-printable, one not preceded by `=`: a soft break may sit in
  // the middle of a multibyte character's escapes), if there is one within a line's length or so: a body of
  // one endless line would otherwise lose everything.
  const floor = Math.max(0, end - BACK_OFF);
  for (
    let at = chunk.lastIndexOf(LF, end - 1);
    at >= floor;
    at = at > 0 ? chunk.lastIndexOf(LF, at - 1) : -1
  ) {
    const before = at > 0 && chunk[at - 1] === CR ? at - 2 : at - 1;
    if (part.encoding === 'binary' || before < 0 || chunk[before] !== EQ) return at + 1;
  }
  // No line end: cut where the budget ends, but not inside an `=XX` escape.
  if (part.encoding === 'quoted-printable') {
    if (end >= 1 && chunk[end - 1] === EQ) return end - 1;
    if (end >= 2 && chunk[end - 2] === EQ) return end - 2;
  }
  return end;
}
