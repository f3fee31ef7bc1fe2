import chardet from 'chardet';
import iconv from 'iconv-lite';
import { CHARSET_SAMPLE_BYTES } from '../kernel/limits.js';

/**
 * Choosing a charset for bytes whose label is missing or lies.
 *
 * Two places need it. Header fields sent as raw 8-bit bytes (a Subject, a display name, a file name without
 * RFC 2047/2231 encoding) carry no charset at all; mailparser reads them as UTF-8 and every byte that is not
 * UTF-8 becomes U+FFFD, which no one can read and nothing can undo. And bodies whose label does not fit
 * their bytes (Shift_JIS labelled ISO-2022-JP, windows-1252 labelled UTF-8, 8-bit bytes labelled us-ascii)
 * come out the same way.
 *
 * The chain, in order: UTF-8 (only when the bytes are valid UTF-8: a valid multi-byte sequence by accident is
 * rare in any other charset), then the charsets the mail itself declares somewhere (any `charset=`, in order:
 * a sender's client writes its headers and bodies in one charset), then a detector (`chardet`, ICU's
 * statistics) with a few charsets of our own behind it. A candidate must decode without U+FFFD, and among the
 * ones that do, the one whose text looks least like mojibake wins (see `oddness`); detector order breaks ties.
 */

/** How the charset was chosen, for the trace. */
export type CharsetHow = 'utf-8' | 'declared' | 'detected';

export interface Decoded {
  text: string;
  /** The charset the bytes were decoded from, as iconv-lite names it (or `UTF-8`). */
  charset: string;
  how: CharsetHow;
}

/** Tried after the detector's own answers: the charsets raw 8-bit mail is most often in, most frequent first. */
const LAST_RESORTS = [
  'windows-1252',
  // the euro sign where windows-1252 reads `¤`
  'ISO-8859-15',
  'Shift_JIS',
  'EUC-JP',
  'GB18030',
  'Big5',
  'EUC-KR',
  'windows-1251',
  'KOI8-R',
  'ISO-8859-2',
  // the only one that maps every byte (windows-1252 leaves five undefined): the chain always ends somewhere
  'ISO-8859-1',
];

/** Whether the bytes hold anything outside 7-bit ASCII. */
export function hasEightBit(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b >= 0x80) return true;
  return false;
}

/**
 * The bytes as UTF-8, or null when they are not valid UTF-8. With `cutEnd`, an incomplete character at the very
 * end is allowed (and left out): a body cut at the display limit (body-cut.ts) may end in one.
 */
export function strictUtf8(bytes: Uint8Array, cutEnd = false): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: cutEnd });
  } catch {
    return null;
  }
}

/** A label without case and punctuation: `ISO_2022-JP` and `iso2022jp` are one charset. */
function squash(label: string): string {
  return label.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Labels that can hold only 7-bit bytes: any 8-bit byte under them means the label lies. */
function sevenBitOnly(label: string): boolean {
  const s = squash(label);
  return (
    s === 'ascii' ||
    s === 'usascii' ||
    s === 'us' ||
    s.startsWith('iso646') ||
    s.startsWith('ansix341968') ||
    s.startsWith('iso2022') ||
    s === 'csiso2022jp' ||
    s === 'utf7' ||
    s === 'unicode11utf7'
  );
}

/**
 * Names iconv-lite knows that are no charset: Node's binary-to-text encodings. Bytes "decoded" with them come out
 * as base64 or hex digits, clean ASCII the oddness cannot tell from text, so a part declaring `charset=base64`
 * would turn every raw 8-bit header of the mail into digits.
 */
function notACharset(label: string): boolean {
  const s = squash(label);
  return s === 'base64' || s === 'hex';
}

function isUtf8Label(label: string): boolean {
  const s = squash(label);
  return s === 'utf8' || s === 'unicode11utf8' || s === 'xunicode20utf8';
}

/** Wide encodings are decoded as labelled; none of our checks applies to them. */
function isWide(label: string): boolean {
  return (
    /^(utf16|utf32|ucs2|ucs4|unicode)/.test(squash(label)) &&
    !isUtf8Label(label) &&
    squash(label) !== 'unicode11utf7'
  );
}

/**
 * Whether decoding `bytes` with `label` gives the text the sender meant, as far as the bytes can tell: no byte
 * a 7-bit charset cannot hold, valid UTF-8 under a UTF-8 label, no U+FFFD under any other label iconv-lite
 * knows. A label nobody knows is given the benefit of the doubt (the caller decodes it as before).
 */
export function labelFits(bytes: Uint8Array, label: string, cutEnd = false): boolean {
  if (isWide(label)) return true;
  if (!hasEightBit(bytes)) return true;
  if (sevenBitOnly(label) || notACharset(label)) return false;
  if (isUtf8Label(label)) return strictUtf8(bytes, cutEnd) !== null;
  if (!iconv.encodingExists(label)) return true;
  const text = iconv.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), label);
  const at = text.indexOf('\ufffd');
  // a multi-byte character cut at the end decodes as one U+FFFD there
  return at === -1 || (cutEnd && at === text.length - 1);
}

/**
 * Decodes bytes with no charset of their own (or whose label did not fit, `skip`) by the chain above.
 * `declared` are the mail's `charset=` parameters in order; duplicates and unusable ones are skipped.
 * `cutEnd`: the bytes may end in the first bytes of a character (a body cut at the display limit).
 */
export function decodeUnlabelled(
  bytes: Uint8Array,
  declared: readonly string[],
  skip?: string,
  cutEnd = false,
): Decoded {
  const utf8 = strictUtf8(bytes, cutEnd);
  if (utf8 !== null) return { text: utf8, charset: 'UTF-8', how: 'utf-8' };
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Candidates are judged on a sample (a body may be megabytes), cut on a line end so a character is not split.
  const sample = sampleOf(buffer);
  const seen = new Set<string>(['utf8']);
  if (skip !== undefined) seen.add(squash(skip));

  // Declared charsets first, but only when they read cleanly: a body labelled ISO-8859-1 says little about
  // a Subject typed in Shift_JIS.
  for (const label of declared) {
    const key = squash(label);
    if (
      seen.has(key) ||
      sevenBitOnly(label) ||
      isWide(label) ||
      notACharset(label) ||
      !iconv.encodingExists(label)
    )
      continue;
    seen.add(key);
    const text = iconv.decode(sample, label);
    if (oddness(text) === 0)
      return { text: iconv.decode(buffer, label), charset: canonical(label), how: 'declared' };
  }

  let best: { label: string; cost: number } | null = null;
  for (const label of detectorOrder(sample)) {
    const key = squash(label);
    if (seen.has(key) || !iconv.encodingExists(label)) continue;
    seen.add(key);
    const cost = oddness(iconv.decode(sample, label));
    if (best === null || cost < best.cost) best = { label, cost };
    if (cost === 0) break;
  }
  // ISO-8859-1 is always among the candidates (unless declared, and tried already): best is never null.
  const label = best?.label ?? 'ISO-8859-1';
  return { text: iconv.decode(buffer, label), charset: canonical(label), how: 'detected' };
}

/** The detector's answers, most confident first, then our own list. */
function detectorOrder(sample: Buffer): string[] {
  let found: string[] = [];
  try {
    // ISO-8859-1 as windows-1252, as browsers read it (WHATWG Encoding): the same letters, and the bytes
    // 0x80-0x9F are the typographic signs people meant, not C1 controls
    found = chardet
      .analyse(sample)
      .filter((m) => m.confidence > 0)
      .map((m) => (m.name === 'ISO-8859-1' ? 'windows-1252' : m.name));
  } catch {
    // a detector failure only leaves our own list
  }
  return [...found, ...LAST_RESORTS];
}

function sampleOf(buffer: Buffer): Buffer {
  if (buffer.length <= CHARSET_SAMPLE_BYTES) return buffer;
  const end = buffer.lastIndexOf(0x0a, CHARSET_SAMPLE_BYTES);
  return buffer.subarray(0, end > CHARSET_SAMPLE_BYTES / 2 ? end + 1 : CHARSET_SAMPLE_BYTES);
}

/** iconv-lite's name for a label, as people write it: `shiftjis` → `Shift_JIS`. */
function canonical(label: string): string {
  const known = [...LAST_RESORTS, 'ISO-8859-1', 'ISO-8859-15', 'windows-1250', 'UTF-8'];
  return known.find((k) => squash(k) === squash(label)) ?? label;
}

// Characters a wrong single-byte guess produces and real text rarely holds: C0/C1 controls, the signs
// windows-1252 puts at 0x80-0x9F that people do not type (`ƒ‚†‡ˆ‰‹›˜™`: Shift_JIS lead bytes read as
// windows-1252; curly quotes, dashes, bullets and the ellipsis are not among them, Outlook writes them all the
// time), rarely used Latin-1 signs, box drawing (anything read as KOI8-R), bopomofo, loose Hangul jamo and small
// form variants (Japanese read as Big5 or EUC-KR), half-width katakana (EUC or GBK read as Shift_JIS), and the
// private use area (Shift_JIS's user-defined rows, where Latin-1 letters followed by a letter land).
const ODD =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what a wrong charset produces
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00a2\u00a4\u00a6\u00a8\u00ac\u00af\u00b4\u00b8\u0192\u02c6\u02dc\u201a\u2020\u2021\u2030\u2039\u203a\u2122\u2500-\u259f\u3100-\u312f\u3131-\u318e\ue000-\uf8ff\ufe50-\ufe6f\uff61-\uff9f]/gu;
// Letters of two scripts inside one word: `GrЪъe` (Latin-1 read as KOI8-R), `Ð¿Ñ` (UTF-8 read as Latin-1);
// one Han character right after Latin letters (`Priorit舩`: `ä` and the next letter read as one Shift_JIS or
// Big5 character); an accented capital after a small letter (`óÐÉÓÏË`: KOI8-R's small letters are
// windows-1252's capitals).
const OTHER_SCRIPTS =
  '\\p{Script=Cyrillic}\\p{Script=Greek}\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}';
const MIXED = new RegExp(
  `[\\u00c0-\\u024f][${OTHER_SCRIPTS}]|[${OTHER_SCRIPTS}][\\u00c0-\\u024f]|\\p{Script=Cyrillic}[a-zA-Z]|[a-zA-Z]\\p{Script=Cyrillic}` +
    `|[a-zA-Z]\\p{Script=Han}(?![\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}])|\\p{Ll}[\\u00c0-\\u00de]`,
  'gu',
);

/**
 * How much a decoded text looks like mojibake: U+FFFD weighs most (a byte the charset cannot hold), then the
 * characters and script mixtures above. 0 for clean text.
 */
export function oddness(text: string): number {
  let cost = 0;
  // a candidate that loses a byte never beats one that keeps them all (a sample has fewer odd characters than this)
  for (const ch of text) if (ch === '\ufffd') cost += 1_000_000;
  cost += (text.match(ODD) ?? []).length;
  cost += (text.match(MIXED) ?? []).length;
  return cost;
}

/** Decodes with a label iconv-lite knows; null when it does not. */
export function decodeAs(bytes: Uint8Array, label: string): string | null {
  if (isUtf8Label(label))
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (!iconv.encodingExists(label)) return null;
  return iconv.decode(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), label);
}
