import { Transform, type TransformCallback } from 'node:stream';
import { type Decoded, decodeAs, decodeUnlabelled, hasEightBit, labelFits, strictUtf8 } from './charset.js';

/**
 * Where parse.ts applies the charset chain (charset.ts) inside mailparser: a text body's charset decoding and
 * raw 8-bit header lines. The decisions go into a ledger, and from there into the mail's parse notes, which
 * the intake log shows with the other reasons.
 */

/** Most notes one mail records; a hostile mail with 1,000 parts must not write 1,000 lines into the trace. */
const MAX_NOTES = 20;
/**
 * Most declared charsets kept. Every decoding by the chain tries each of them on its sample, so a mail with a
 * thousand parts, each with another label, would otherwise cost parts × labels decodings; a sender's client
 * writes in one or two charsets, and the first ones declared are theirs.
 */
const MAX_DECLARED = 16;

/** The charsets a mail declares (any `charset=`, in order of appearance) and the notes on the choices made. */
export class CharsetLedger {
  readonly declared: string[] = [];
  readonly notes: string[] = [];
  /**
   * The charset chosen for the mail's raw 8-bit header bytes taken together (`chooseHeaderCharset`): one
   * sender's client writes all of them in one charset, and a detector is far surer of a subject, names and
   * file names together than of a four-character name alone.
   */
  headerChoice: Decoded | null = null;

  declare(charset: string): void {
    const label = charset.trim();
    if (
      label.length > 0 &&
      label.length <= 64 &&
      this.declared.length < MAX_DECLARED &&
      !this.declared.some((c) => c.toLowerCase() === label.toLowerCase())
    ) {
      this.declared.push(label);
    }
  }

  note(note: string): void {
    if (this.notes.length < MAX_NOTES && !this.notes.includes(note)) this.notes.push(note);
  }
}

/** How a choice reads in the trace. */
export function describeChoice(decoded: Decoded): string {
  const why =
    decoded.how === 'utf-8'
      ? 'the bytes are valid UTF-8'
      : decoded.how === 'declared'
        ? 'declared elsewhere in the mail'
        : 'detected';
  return `decoded as ${decoded.charset} (${why})`;
}

/** Labels mailparser passes through without charset decoding (it reads the bytes as UTF-8 itself). */
function passesThrough(label: string): boolean {
  return ['ascii', 'usascii', 'utf8'].includes(label.toLowerCase().replace(/[^a-z0-9]+/g, ''));
}

/**
 * Charset decoding of one text body that checks the label against the bytes first. It holds the body's
 * transfer-decoded bytes until the part ends (as mailparser's own text collection does; body-cut.ts bounds
 * them by the display limit), then: a label that fits decodes as mailparser would have decoded it
 * (`original`); a missing label or one that does not fit goes through the chain, and the trace says so.
 * The output is UTF-8 bytes, which mailparser turns into the body's text.
 */
export class FittingDecoder extends Transform {
  readonly #chunks: Buffer[] = [];
  #size = 0;

  constructor(
    private readonly label: string | null,
    private readonly ledger: CharsetLedger,
    private readonly original: (label: string) => NodeJS.ReadWriteStream,
  ) {
    super();
  }

  override _transform(chunk: Buffer | string, _encoding: BufferEncoding, callback: TransformCallback): void {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.#chunks.push(buffer);
    this.#size += buffer.length;
    callback();
  }

  override _flush(callback: TransformCallback): void {
    const bytes = Buffer.concat(this.#chunks, this.#size);
    this.#chunks.length = 0;
    const label = this.label;
    if (label === null) {
      // no charset: mailparser reads the bytes as UTF-8, which is right for ASCII and valid UTF-8
      if (!hasEightBit(bytes) || strictUtf8(bytes, true) !== null) {
        callback(null, bytes);
        return;
      }
      const decoded = decodeUnlabelled(bytes, this.ledger.declared, undefined, true);
      this.ledger.note(`body has 8-bit bytes and no charset; ${describeChoice(decoded)}`);
      callback(null, Buffer.from(decoded.text, 'utf8'));
      return;
    }
    if (!labelFits(bytes, label, true)) {
      const decoded = decodeUnlabelled(bytes, this.ledger.declared, label, true);
      this.ledger.note(`body charset ${clip(label)} did not fit the bytes; ${describeChoice(decoded)}`);
      callback(null, Buffer.from(decoded.text, 'utf8'));
      return;
    }
    if (passesThrough(label)) {
      callback(null, bytes);
      return;
    }
    this.#decodeAsLabelled(bytes, label, callback);
  }

  /** The label fits: mailparser's own decoder (libmime: its aliases, the Japanese charsets iconv-lite lacks). */
  #decodeAsLabelled(bytes: Buffer, label: string, callback: TransformCallback): void {
    let stream: NodeJS.ReadWriteStream;
    try {
      stream = this.original(label);
    } catch {
      // as mailparser does when its decoder cannot be made: the bytes as they are
      callback(null, bytes);
      return;
    }
    const out: Buffer[] = [];
    stream.on('data', (chunk: Buffer | string) =>
      out.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk),
    );
    stream.once('error', (err: Error) => callback(err));
    stream.once('end', () => callback(null, Buffer.concat(out)));
    stream.end(bytes);
  }
}

/**
 * A raw header line (a binary string: one character per byte, as mailsplit keeps them) with 8-bit bytes that
 * are not UTF-8, re-decoded by the chain: `text` is the decoded value, `line` the line again as a binary string
 * of UTF-8 bytes, which is what mailparser's header processing reads. Null when the line needs nothing.
 */
export function redecodedHeaderLine(
  line: string,
  ledger: CharsetLedger,
  what: string,
): { line: string; text: string } | null {
  const value = rawValue(line);
  if (value === null) return null;
  const choice = ledger.headerChoice;
  const together = choice && labelFits(value, choice.charset) ? decodeAs(value, choice.charset) : null;
  const decoded =
    together !== null && choice !== null
      ? { text: together, charset: choice.charset, how: choice.how }
      : decodeUnlabelled(value, ledger.declared);
  if (decoded.how !== 'utf-8') {
    ledger.note(`${what}: raw 8-bit bytes without a charset; ${describeChoice(decoded)}`);
  }
  const colon = line.indexOf(':');
  return {
    line: line.slice(0, colon + 1) + Buffer.from(decoded.text, 'utf8').toString('latin1'),
    text: decoded.text,
  };
}

/**
 * A raw header line's value bytes when they need the chain (8-bit, not UTF-8); null otherwise. Also valid UTF-8
 * that ends in a 0xA0 byte (`à`, `Š`, U+2020…): mailparser trims the value while it is still one character per
 * byte, reads that byte as a no-break space, and cuts the character in half (U+FFFD at the end of the subject).
 */
function rawValue(line: string): Buffer | null {
  const colon = line.indexOf(':');
  if (colon < 0) return null;
  const bytes = Buffer.from(line.slice(colon + 1), 'latin1');
  if (!hasEightBit(bytes)) return null;
  if (strictUtf8(bytes) === null) return bytes;
  // the last byte before the trailing blanks, found by a loop: /[ \t\r\n]+$/ backtracks over every run of
  // blanks that is not at the end (quadratic on a 1 MB header line of blanks then a letter)
  let end = line.length;
  while (end > 0 && BLANKS.has(line.charCodeAt(end - 1))) end--;
  return line.charCodeAt(end - 1) === 0xa0 ? bytes : null;
}

/** Space, tab, CR, LF: what mailparser trims off a header value. */
const BLANKS = new Set([0x20, 0x09, 0x0d, 0x0a]);

/**
 * Chooses one charset for all the given raw header lines that need one, from their bytes taken together
 * (joined by line ends); each line is then decoded with it where it fits (redecodedHeaderLine).
 */
export function chooseHeaderCharset(lines: readonly string[], ledger: CharsetLedger): void {
  const values = lines.map(rawValue).filter((v): v is Buffer => v !== null);
  if (values.length === 0) return;
  const joined = Buffer.concat(values.flatMap((v) => [v, Buffer.from('\n')]));
  ledger.headerChoice = decodeUnlabelled(joined, ledger.declared);
}

const ENCODED_WORD = /=\?([^?*\s]+)(?:\*[^?]*)?\?([bBqQ])\?([^?\s]*)\?=/g;

/** The bytes an RFC 2047 encoded word carries. */
function wordBytes(encoding: string, data: string): Buffer {
  if (encoding.toUpperCase() === 'B') return Buffer.from(data, 'base64');
  return Buffer.from(
    data
      .replace(/_/g, ' ')
      .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
    'latin1',
  );
}

/**
 * A header line whose runs of adjacent encoded words of one charset split a character between two words
 * (`=?utf-8?Q?=D0=92=D0?= =?utf-8?B?sNGB?=`: RFC 2047 forbids it, some mailers do it) with each such run
 * replaced by one UTF-8 encoded word of their joint decoding; null when no run needs it (each word decodes
 * whole, as the RFC wants). Only runs whose separate decoding loses a byte and whose joint decoding does not are
 * touched; UTF-7 never (mailparser refuses it: it would turn `+ADw-` into `<`).
 */
export function mergedEncodedWords(line: string): string | null {
  if (!line.includes('=?')) return null;
  const words = [...line.matchAll(ENCODED_WORD)];
  let out = '';
  let last = 0;
  for (let i = 0; i < words.length; ) {
    const first = words[i] as RegExpMatchArray;
    const charset = (first[1] ?? '').toLowerCase();
    let j = i;
    while (j + 1 < words.length) {
      const a = words[j] as RegExpMatchArray;
      const b = words[j + 1] as RegExpMatchArray;
      const gap = line.slice((a.index ?? 0) + a[0].length, b.index ?? 0);
      if (!/^[ \t\r\n]*$/.test(gap) || (b[1] ?? '').toLowerCase() !== charset) break;
      j++;
    }
    if (j > i && !/^(utf-?7|unicode-1-1-utf-7)$/.test(charset)) {
      const run = words.slice(i, j + 1).map((w) => wordBytes(w[2] ?? '', w[3] ?? ''));
      const separate = run.map((bytes) => decodeAs(bytes, charset));
      const joint = decodeAs(Buffer.concat(run), charset);
      if (
        joint !== null &&
        !joint.includes('\ufffd') &&
        separate.some((t) => t === null || t.includes('\ufffd'))
      ) {
        const end = words[j] as RegExpMatchArray;
        out += `${line.slice(last, first.index)}=?UTF-8?B?${Buffer.from(joint, 'utf8').toString('base64')}?=`;
        last = (end.index ?? 0) + end[0].length;
      }
    }
    i = j + 1;
  }
  return last === 0 ? null : out + line.slice(last);
}

/** A sender's label, as far as it goes into the trace. */
function clip(label: string): string {
  const clean = label.replace(/[^\x21-\x7e]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 40)}…` : clean;
}
