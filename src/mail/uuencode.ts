import { Transform, type TransformCallback } from 'node:stream';

/**
 * uuencode, as old mail clients (and some scanners and scripts to this day) send files: a part with
 * `Content-Transfer-Encoding: x-uuencode`, or a `begin 644 name` … `end` block in the middle of a text body.
 * mailparser knows neither, so such a file reaches a person as a wall of `M`-lines.
 *
 * Written here rather than taken from npm: the `uuencode` package encodes and decodes whole strings in memory
 * (no stream, no notion of `begin`/`end` framing or of a block inside other text) and was last published many
 * years ago. The format is small: each line starts with a length character (bytes on the line + 32, where a
 * backtick stands for 0), then groups of four characters holding three bytes, six bits each (+32).
 */

/** Transfer encodings that mean uuencode (the spellings seen in mail). */
export const UUENCODE_ENCODINGS = new Set(['x-uuencode', 'uuencode', 'x-uue', 'uue']);

// `begin 644 name`; some senders leave the name out (`begin 644 `)
const BEGIN_HEAD = /^begin(-base64)? +([0-7]{3,4})/;

interface BeginLine {
  base64: boolean;
  mode: string;
  /** The name as written, without its surrounding blanks; empty when left out. */
  name: string;
}

/**
 * A `begin` line, or null. The name is cut out by hand, not by a pattern such as `(?: +(.*?))?\s*$`: blanks can
 * go to either quantifier there, and a line of many blanks then a letter backtracks quadratically (a 64 KB
 * line took seconds, a 4 MB body minutes).
 */
function beginLine(line: string): BeginLine | null {
  const head = BEGIN_HEAD.exec(line);
  if (!head) return null;
  const rest = line.slice(head[0].length).trimEnd();
  let at = 0;
  while (rest.charCodeAt(at) === 0x20) at++;
  // after the mode: nothing but blanks, or spaces and a name on this one line
  if (rest.length > 0 && at === 0) return null;
  const name = rest.slice(at);
  if (/[\n\r\u2028\u2029]/.test(name)) return null;
  return { base64: head[1] !== undefined, mode: head[2] as string, name };
}
/** The longest line read as uuencode: 1 length character + 84 data characters, with room for padding. */
const MAX_LINE = 128;
/** Preamble held back while looking for `begin`; past it the part is passed through as it is. */
const MAX_PREAMBLE = 64 * 1024;

/** The bytes one uuencoded line carries; null when the line is not uuencode (a stray text line). */
export function decodeUuLine(line: string): Buffer | null {
  if (line.length === 0) return null;
  const first = line.charCodeAt(0);
  if (first < 0x20 || first > 0x60) return null;
  const count = (first - 0x20) & 0x3f;
  if (count === 0) return Buffer.alloc(0);
  const out = Buffer.alloc(count);
  let written = 0;
  // A line cut short (a truncated mail) gives the bytes it still holds, no more.
  for (let i = 1; written < count && i < line.length; i += 4) {
    const c = [0, 1, 2, 3].map((k) => {
      const code = i + k < line.length ? line.charCodeAt(i + k) : 0x60;
      return code < 0x20 || code > 0x60 ? -1 : (code - 0x20) & 0x3f;
    });
    if (c.some((v) => v < 0)) return null;
    const [a, b, d, e] = c as [number, number, number, number];
    const bytes = [(a << 2) | (b >> 4), ((b & 0x0f) << 4) | (d >> 2), ((d & 0x03) << 6) | e];
    const have = Math.min(3, Math.floor(((Math.min(line.length, i + 4) - i) * 6) / 8));
    for (let k = 0; k < have && written < count; k++) out[written++] = bytes[k] as number;
  }
  return out.subarray(0, written);
}

/**
 * Decodes a part sent with a uuencode transfer encoding while it streams: what comes before `begin` is
 * dropped, every data line is decoded, `end` (or the backtick line before it) ends the file, and what comes
 * after is dropped. Memory: one line at a time (at most MAX_LINE characters; a longer line is skipped), and a
 * preamble of at most MAX_PREAMBLE bytes. A part that never says `begin` within that preamble is not
 * uuencode after all and passes through unchanged, so nothing the sender sent is lost.
 */
export class UuDecoder extends Transform {
  /** The file name and mode from the `begin` line, once seen. */
  name: string | null = null;
  mode: string | null = null;
  #state: 'preamble' | 'data' | 'done' | 'raw' = 'preamble';
  #carry = '';
  #skipping = false;
  readonly #preamble: Buffer[] = [];
  #preambleBytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#state === 'raw') {
      callback(null, chunk);
      return;
    }
    if (this.#state === 'preamble') {
      this.#preamble.push(chunk);
      this.#preambleBytes += chunk.length;
    }
    const text = this.#carry + chunk.toString('latin1');
    const lines = text.split('\n');
    this.#carry = lines.pop() ?? '';
    for (const raw of lines) {
      if (this.#skipping) {
        // the end of a line too long to be uuencode
        this.#skipping = false;
        continue;
      }
      this.#line(raw.replace(/\r$/, ''));
    }
    if (this.#carry.length > MAX_LINE) {
      // a line this long is no uuencode: skip it up to its end
      this.#carry = '';
      this.#skipping = true;
    }
    if (this.#state === 'preamble' && this.#preambleBytes > MAX_PREAMBLE) {
      this.#passRaw();
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#state !== 'raw' && this.#carry.length > 0 && !this.#skipping)
      this.#line(this.#carry.replace(/\r$/, ''));
    if (this.#state === 'preamble') this.#passRaw();
    callback();
  }

  #line(line: string): void {
    if (this.#state === 'preamble') {
      const begin = beginLine(line);
      if (begin) {
        this.mode = begin.mode;
        this.name = begin.name.slice(0, 255);
        this.#state = 'data';
        this.#preamble.length = 0;
      }
      return;
    }
    if (this.#state !== 'data') return;
    if (line.trim() === 'end') {
      this.#state = 'done';
      return;
    }
    const bytes = decodeUuLine(line);
    if (bytes && bytes.length > 0) this.push(bytes);
  }

  /** Not uuencode after all: everything held back, and everything after, as it came. */
  #passRaw(): void {
    this.#state = 'raw';
    for (const b of this.#preamble) this.push(b);
    this.#preamble.length = 0;
    this.#carry = '';
  }
}

/** A file found inside a text body. */
export interface UuBlock {
  name: string;
  data: Buffer;
  /** false when the body ended (or was cut for display) before the block's `end` line. */
  complete: boolean;
}

/**
 * The `begin NNN name` … `end` blocks of a text body, decoded, and the text with each block replaced by a
 * one-line note. A `begin` line not followed by uuencoded lines is left alone (it is someone's sentence), and
 * at most `maxBlocks` are taken out. The text is bounded (the display limit), so the blocks are too.
 */
export function extractUuBlocks(text: string, maxBlocks: number): { text: string; blocks: UuBlock[] } {
  if (!/^begin +[0-7]{3,4}(?: |\r?$)/m.test(text)) return { text, blocks: [] };
  const lines = text.split('\n');
  const out: string[] = [];
  const blocks: UuBlock[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] ?? '';
    const begin = blocks.length < maxBlocks ? beginLine(line.replace(/\r$/, '')) : null;
    if (!begin || begin.base64) {
      out.push(line);
      i++;
      continue;
    }
    const parts: Buffer[] = [];
    let j = i + 1;
    let complete = false;
    let dataLines = 0;
    for (; j < lines.length; j++) {
      const l = (lines[j] ?? '').replace(/\r$/, '');
      if (l.trim() === 'end') {
        complete = true;
        j++;
        break;
      }
      if (l.length > MAX_LINE) break;
      const bytes = decodeUuLine(l);
      if (bytes === null) break;
      parts.push(bytes);
      dataLines++;
    }
    if (dataLines === 0) {
      out.push(line);
      i++;
      continue;
    }
    const name = begin.name.slice(0, 255) || `uuencoded-${blocks.length + 1}.bin`;
    blocks.push({ name, data: Buffer.concat(parts), complete });
    out.push(`[uuencoded file ${name}: kept as an attachment]`);
    i = j;
  }
  return { text: out.join('\n'), blocks };
}
