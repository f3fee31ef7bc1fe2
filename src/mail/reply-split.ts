import {
  REPLY_SPLIT_HEADER_LOOKAHEAD,
  REPLY_SPLIT_MAX_LINE_CHARS,
  REPLY_SPLIT_SIGNATURE_LINES,
} from '../kernel/limits.js';

/**
 * What the sender wrote, apart from what they quoted and their signature (issue 13 §7). FOR DISPLAY ONLY: the
 * full body and the raw mail are kept and shown one click away; nothing here changes what is stored. Pure.
 *
 * Why our own line classifier and not a library: we measured `email-reply-parser` (crisp-oss, a port of
 * GitHub's) and `planer` (a port of Mailgun's talon) on their own test fixtures and on 30 hand-labelled replies
 * of the corpus (README "The new part of a reply"; `test/kit/reply-split-figures.ts`). Both lose on our
 * labels and on each other's fixtures, and neither is fit for hostile input: email-reply-parser runs
 * multi-line patterns such as `On\s.+\s.+` over the whole body (measured quadratic: one 80,000-character line
 * took 2.9 s, so a 4 MiB body would take hours), and planer reads only the first 1,000 lines of a text and needs
 * a DOM for HTML. What we
 * took from them is knowledge, not code: the quote-header phrasings of the languages they cover (On … wrote,
 * Le … a écrit, Am … schrieb, W dniu … napisał, Den … skrev, Op … geschreven, the Outlook "From: … Sent: …"
 * block in its local spellings, "-----Original Message-----"), and talon's rule that a reply may follow a
 * `>` quote (bottom posting).
 *
 * Bounded time: the text is read line by line once; every pattern is anchored, has no nested quantifier, and
 * runs on at most REPLY_SPLIT_MAX_LINE_CHARS of a line (a longer line is text, never a header or a signature).
 * The look-aheads (a header over up to three lines, an Outlook block, a signature's length) are bounded by
 * constants, so the whole is linear in the body's length.
 *
 * The rules, in order:
 *  1. Lines starting with `>` are quoted.
 *  2. A quote header (an attribution line like "On … wrote:", possibly wrapped over three lines, or a
 *     separator like "-----Original Message-----", or an Outlook header block of at least two fields) is
 *     quoted. If what follows it is `>`-quoted, the quote ends where those lines end (a reply may follow,
 *     bottom posting); otherwise everything after it is the older mail and is quoted.
 *  3. Inline replies (answers between two or more quoted blocks) are shown whole: the answers make no sense
 *     without the questions. Method `inline`.
 *  4. In what is left, a signature starts at a signature separator ("-- ", "__", "---", "===="), a "Sent from
 *     my …" line, or a closing alone on its line ("Regards,", "Mit freundlichen Grüßen"), provided at most
 *     REPLY_SPLIT_SIGNATURE_LINES non-empty lines follow it in that block; it runs to the block's end.
 */

export type SplitMethod =
  /** Nothing quoted and no signature: the new part is the whole text. */
  | 'whole'
  /** Quoted text or a signature (or both) were folded away. */
  | 'split'
  /** An inline reply: shown whole, see rule 3. */
  | 'inline'
  /** No text at all. */
  | 'empty';

export interface ReplySplit {
  /** What the sender wrote (trimmed). */
  newPart: string;
  /** Quote headers and quoted text, in their order, as received (`>` kept). Empty when none. */
  quoted: string;
  /** The signature block(s), as received. Empty when none. */
  signature: string;
  method: SplitMethod;
}

export interface SplitInput {
  text?: string | null;
  /** Used only when there is no text: its text is split (the HTML itself is shown sanitised, elsewhere). */
  html?: string | null;
}

type Kind = 'new' | 'quoted' | 'signature';

export function splitReply(input: SplitInput | string): ReplySplit {
  // A text part that is blank (some clients send one beside the HTML) says nothing: split the HTML's text.
  const text = typeof input === 'string' ? input : input.text;
  const source =
    text && text.trim() !== '' ? text : typeof input !== 'string' && input.html ? htmlToText(input.html) : '';
  const lines = source.replace(/\r\n?/g, '\n').split('\n');
  if (source.trim() === '') return { newPart: '', quoted: '', signature: '', method: 'empty' };
  const kinds: Kind[] = new Array(lines.length).fill('new');
  // Text that shares a line with a quote header ("reply On … wrote:") stays new: the split point in the line.
  const cutAt = new Map<number, number>();

  let i = 0;
  while (i < lines.length) {
    const line = lines[i] as string;
    if (isQuoteLine(line)) {
      kinds[i] = 'quoted';
      i++;
      continue;
    }
    const header = quoteHeaderAt(lines, i);
    if (header === null) {
      i++;
      continue;
    }
    if (header.column > 0) cutAt.set(i, header.column);
    for (let k = i; k < i + header.lines; k++) kinds[k] = 'quoted';
    let j = i + header.lines;
    // Blank lines after the header belong to it.
    while (j < lines.length && isBlank(lines[j] as string)) kinds[j++] = 'quoted';
    if (header.kind === 'attribution' && j < lines.length && isQuoteLine(lines[j] as string)) {
      // `>`-quoted below the attribution: rule 1 takes the quote; a reply may follow it.
      i = j;
      continue;
    }
    // An unmarked older mail (Outlook, forwards, "-----Original Message-----"): the rest is quoted.
    for (let k = j; k < lines.length; k++) kinds[k] = 'quoted';
    break;
  }

  joinWrappedQuotes(lines, kinds);
  // Rule 3: answers between quoted blocks.
  if (isInline(lines, kinds)) {
    return { newPart: source.trim(), quoted: '', signature: '', method: 'inline' };
  }

  markSignatures(lines, kinds);

  const newLines: string[] = [];
  const quotedLines: string[] = [];
  const signatureLines: string[] = [];
  lines.forEach((line, n) => {
    const cut = cutAt.get(n);
    if (cut !== undefined) {
      newLines.push(line.slice(0, cut));
      quotedLines.push(line.slice(cut).replace(/^[\s-]+/, ''));
      return;
    }
    const kind = kinds[n];
    (kind === 'quoted' ? quotedLines : kind === 'signature' ? signatureLines : newLines).push(line);
  });
  const quoted = quotedLines.join('\n').trim();
  const signature = signatureLines.join('\n').trim();
  // Rules and punctuation alone beside folded text (the dashes above a forwarded block) are nothing anyone wrote.
  const tidied = tidy(newLines.join('\n'));
  const folded = quoted !== '' || signature !== '';
  const newPart = folded && !/[\p{L}\p{N}]/u.test(tidied) ? '' : tidied;
  return { newPart, quoted, signature, method: quoted === '' && signature === '' ? 'whole' : 'split' };
}

/** Collapses the runs of blank lines that folding leaves behind, and trims. */
function tidy(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

const isBlank = (line: string) => line.trim() === '';

/** `>` after at most three spaces; `>>> >>> http://… <<<` banners are quotes too (we fold, planer keeps). */
function isQuoteLine(line: string): boolean {
  return /^ {0,3}>/.test(line);
}

interface QuoteHeader {
  /** How many lines the header spans. */
  lines: number;
  /** Where in its first line the header starts (text before it is the sender's). */
  column: number;
  /** An attribution may be followed by a `>` quote and then a reply; a separator or block ends the mail. */
  kind: 'attribution' | 'separator' | 'block';
}

// Attributions: "<intro> … <verb>", the intro at the start of the header, the verb at the end. Each language's
// pair comes from the phrasings mail clients write (the libraries' fixtures list them).
// biome-ignore format: a table
const ATTRIBUTION_INTRO = /^(?:On|Le|Am|El|Il|In data|Em|Op|W dniu|Dnia|Den|På|pe|ср|Am .{0,80} um|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})(?=[\s,.])/u;
// biome-ignore format: a table
const ATTRIBUTION_VERB = /(?:(?:wrote|writes|a écrit|écrit|schrieb|escribió|ha scritto|scritto|escreveu|geschreven|schreef|napisał\(a\)|napisał|napisala|pisze|skrev|kirjoitti|написал|写道|작성|のメッセージ)\s?[:：]?\s*-*|(?:schrieb|skrev|schreef|napisał|pisze) [^:]{1,200}:\s*)$/u;
/** A name and address alone, Gmail's old attribution ("2011/4/7 Nathan <support@example.com>") ends in `>`. */
const ADDRESS_ATTRIBUTION = /^\d{4}[-/.]\d{1,2}[-/.]\d{1,2} .{1,200}<[^<>\s]{1,200}@[^<>\s]{1,200}>$/u;

// biome-ignore format: a table
const SEPARATOR = /^\s*[-_=*]{0,30}\s*(?:Original Message|Ursprüngliche Nachricht|Originalnachricht|Message d'origine|Message d’origine|Oprindelig besked|Opprinnelig melding|Ursprungligt meddelande|Mensaje original|Messaggio originale|Mensagem original|Oorspronkelijk bericht|Alkuperäinen viesti|Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht|Videresendt besked|Vidarebefordrat meddelande)\s*[-_=*]{0,30}\s*$/iu;
const BEGIN_FORWARD =
  /^\s*(?:Begin forwarded message|Anfang der weitergeleiteten Nachricht|Début du message réexpédié)\s*:\s*$/iu;
/** Outlook's rule above its header block. */
const OUTLOOK_RULE = /^\s*_{20,40}\s*$/;

// Outlook's header block: the first field names the sender, then at least one other field within a few lines.
// biome-ignore format: a table
const BLOCK_FROM = /^\s*\*?(?:From|Von|De|Fra|Från|Da|Van|Od|Från|Lähettäjä|От)\s?\*?\s?:\*?\s*\S/u;
// biome-ignore format: a table
const BLOCK_FIELD = /^\s*\*?(?:Sent|Date|To|Cc|Subject|Gesendet|Datum|An|Betreff|Envoyé|Date|À|A|Objet|Sendt|Dato|Til|Emne|Skickat|Till|Ämne|Enviado|Fecha|Para|Asunto|Inviato|Oggetto|Verzonden|Aan|Onderwerp|Wysłano|Do|Temat|Отправлено|Кому|Тема)\s?\*?\s?:/u;

/** The quote header starting at line `i`, or null. Linear: every test looks at a bounded part of a bounded window. */
function quoteHeaderAt(lines: string[], i: number): QuoteHeader | null {
  const line = lines[i] as string;
  if (line.length > REPLY_SPLIT_MAX_LINE_CHARS || isBlank(line)) return null;
  if (SEPARATOR.test(line) || BEGIN_FORWARD.test(line)) return { lines: 1, column: 0, kind: 'separator' };
  if (OUTLOOK_RULE.test(line) && i + 1 < lines.length && isOutlookBlock(lines, i + 1)) {
    return { lines: 1, column: 0, kind: 'block' };
  }
  if (isOutlookBlock(lines, i)) return { lines: 1, column: 0, kind: 'block' };
  // Attributions wrap: try the line alone, then joined with the next one and two.
  let joined = '';
  for (let n = 0; n < REPLY_SPLIT_HEADER_LOOKAHEAD && i + n < lines.length; n++) {
    const next = lines[i + n] as string;
    if (n > 0 && (isBlank(next) || isQuoteLine(next) || next.length > REPLY_SPLIT_MAX_LINE_CHARS)) break;
    joined = n === 0 ? next.trim() : `${joined} ${next.trim()}`;
    const column = attributionColumn(joined, n === 0);
    if (column !== null)
      return { lines: n + 1, column: n === 0 ? columnInLine(line, joined, column) : 0, kind: 'attribution' };
  }
  return null;
}

/** Where an attribution starts in `text` (0, or after the sender's words on the same line), or null. */
function attributionColumn(text: string, oneLine: boolean): number | null {
  const stripped = text.replace(/^[-\s]+/, '');
  if (ADDRESS_ATTRIBUTION.test(stripped)) return 0;
  if (!ATTRIBUTION_VERB.test(stripped) || stripped.length > 400) return null;
  if (ATTRIBUTION_INTRO.test(stripped)) return 0;
  // "reply On Wed, … wrote:": the intro later in the line. Only "On" and "Le" (the common clients) are looked
  // for mid-line: a date somewhere in a sentence ending in "wrote:" is too weak.
  const m = oneLine ? /(?:^|[\s-])(On|Le) /u.exec(stripped.slice(1)) : null;
  if (m) return m.index + 1 + (m[0].length - m[1]!.length - 1);
  // "Name <address> wrote:" or "Name wrote:" followed by a `>` quote: the caller's kind check needs a quote
  // below it, so only a short line qualifies here.
  if (
    stripped.length <= 120 &&
    /^[^:]{1,120}(?:wrote|schrieb|a écrit|escribió|ha scritto|skrev)\s?:\s*$/u.test(stripped)
  ) {
    return 0;
  }
  return null;
}

/** Maps a column of the trimmed, dash-stripped text back to the line. */
function columnInLine(line: string, joined: string, column: number): number {
  if (column === 0) return 0;
  const lead = joined.length - joined.replace(/^[-\s]+/, '').length;
  const start = line.indexOf(joined.slice(0, 1));
  let at = Math.max(start, 0) + lead + column;
  // Text before the header, with its trailing dashes ("reply--- On …"), stays the sender's.
  while (at > 0 && /[\s-]/.test(line[at - 1] as string)) at--;
  return at === 0 ? 0 : at;
}

function isOutlookBlock(lines: string[], i: number): boolean {
  const first = lines[i] as string;
  if (first.length > REPLY_SPLIT_MAX_LINE_CHARS) return false;
  const startsWithFrom = BLOCK_FROM.test(first);
  const startsWithDate = /^\s*\*?Date\s?\*?:/u.test(first);
  if (!startsWithFrom && !startsWithDate) return false;
  let fields = 1;
  for (let n = 1; n <= REPLY_SPLIT_HEADER_LOOKAHEAD + 3 && i + n < lines.length; n++) {
    const next = lines[i + n] as string;
    if (next.length > REPLY_SPLIT_MAX_LINE_CHARS) break;
    if (BLOCK_FIELD.test(next) || BLOCK_FROM.test(next)) fields++;
    if (fields >= 2) return true;
  }
  return false;
}

/**
 * A client that wraps a long quoted line leaves its end without the `>` ("_nonce=3dd518)", "(http://…) >"):
 * one such line right between two quoted lines, looking like a fragment (one token, a link, or ending in `>`),
 * is part of the quote, not an inline answer.
 */
function joinWrappedQuotes(lines: string[], kinds: Kind[]): void {
  for (let n = 1; n + 1 < lines.length; n++) {
    if (kinds[n] !== 'new' || kinds[n - 1] !== 'quoted' || kinds[n + 1] !== 'quoted') continue;
    if (!isQuoteLine(lines[n - 1] as string) || !isQuoteLine(lines[n + 1] as string)) continue;
    const t = (lines[n] as string).trim();
    if (t.length <= REPLY_SPLIT_MAX_LINE_CHARS && (/^\S+$/.test(t) || t.includes('://') || t.endsWith('>'))) {
      kinds[n] = 'quoted';
    }
  }
}

/** Two or more quoted blocks with the sender's words between them. */
function isInline(lines: string[], kinds: Kind[]): boolean {
  let seenQuote = false;
  let newAfterQuote = false;
  for (let n = 0; n < lines.length; n++) {
    if (kinds[n] === 'quoted' && isQuoteLine(lines[n] as string)) {
      if (newAfterQuote) return true;
      seenQuote = true;
    } else if (kinds[n] === 'new' && seenQuote && !isBlank(lines[n] as string)) {
      newAfterQuote = true;
    }
  }
  return false;
}

// biome-ignore format: a table
const SIGNATURE_SEPARATOR = /^(?:-- ?|--|—|-{3,}|_{2,}|={3,}|\+{2,4}|\*{3,})\s*$/u;
// biome-ignore format: a table
const SENT_FROM = /^(?:Sent from|Sent with|Get Outlook for|Envoyé de|Envoyé depuis|Envoyé à partir de|Télécharger Outlook pour|Von meinem|Gesendet von|Gesendet mit|Sendt fra|Skickat från|Enviado desde|Inviato da|Verzonden vanaf|Verstuurd vanaf)\b.{0,200}$/iu;
// A closing alone on its line. The name after it is part of the signature; the same words inside a sentence
// ("Regards to your team") are not a closing.
// biome-ignore format: a table
const CLOSING = /^(?:(?:best|kind|warm|warmest|many|with)?\s?regards|best wishes|best|cheers|thanks and regards|sincerely|yours sincerely|yours truly|cordially|greetings|adios|adiós|gr(?:ü|ue)(?:ß|ss)e|mit freundlichen gr(?:ü|ue)(?:ß|ss)en|freundliche gr(?:ü|ue)(?:ß|ss)e|viele gr(?:ü|ue)(?:ß|ss)e|beste gr(?:ü|ue)(?:ß|ss)e|liebe gr(?:ü|ue)(?:ß|ss)e|gruß|gruss|mfg|lg|cordialement|bien cordialement|bien à vous|salutations|saludos|saludos cordiales|atentamente|cordiali saluti|distinti saluti|met vriendelijke groet(?:en)?|groeten|med venlig hilsen|venlig hilsen|med vennlig hilsen|vänliga hälsningar|med vänliga hälsningar|pozdrawiam|с уважением)\s*[,.!！…]*$/iu;

/** Rule 4, on each block of new lines (between quoted parts and at the ends). */
function markSignatures(lines: string[], kinds: Kind[]): void {
  let start = 0;
  let wordsBefore = false;
  while (start < lines.length) {
    if (kinds[start] !== 'new') {
      start++;
      continue;
    }
    let end = start;
    while (end < lines.length && kinds[end] === 'new') end++;
    const words = hasWords(lines, start, end);
    markSignatureIn(lines, kinds, start, end, wordsBefore);
    wordsBefore ||= words;
    start = end;
  }
}

function markSignatureIn(
  lines: string[],
  kinds: Kind[],
  start: number,
  end: number,
  wordsBefore: boolean,
): void {
  // Count the non-empty lines from the end back, so that "at most N lines follow" is known in one pass; the
  // topmost candidate wins.
  let following = 0;
  let found = -1;
  let foundIsRule = false;
  for (let n = end - 1; n >= start; n--) {
    const line = lines[n] as string;
    if (isBlank(line)) continue;
    if (following > REPLY_SPLIT_SIGNATURE_LINES) break;
    if (line.length <= REPLY_SPLIT_MAX_LINE_CHARS) {
      const t = line.trim();
      const rule = SIGNATURE_SEPARATOR.test(line.trimEnd());
      if (rule || SENT_FROM.test(t) || CLOSING.test(t)) {
        found = n;
        foundIsRule = rule && !/^--\s*$/.test(t);
      }
    }
    following++;
  }
  if (found < 0) return;
  // A rule (----, ====, ____) that the text above also uses is decoration, not a signature separator.
  // So is a rule repeated below it, unless the repeat closes the block (a boxed address).
  if (foundIsRule && (hasRuleAbove(lines, start, found) || repeatsBelow(lines, found, end))) return;
  // A signature is never the whole of what was written: a block of its own only after the sender's words
  // (a list footer below a bottom-posted reply), or under the standard "-- " separator (RFC 3676 §4.3).
  const standard = (lines[found] as string).trimEnd() === '--';
  if (!(wordsBefore || standard || hasWords(lines, start, found))) return;
  for (let n = found; n < end; n++) kinds[n] = 'signature';
}

function repeatsBelow(lines: string[], found: number, end: number): boolean {
  const char = (lines[found] as string).trim()[0];
  let last = end - 1;
  while (last > found && isBlank(lines[last] as string)) last--;
  for (let n = found + 1; n < last; n++) {
    const t = (lines[n] as string).trim();
    if (
      t.length >= 3 &&
      t.length <= REPLY_SPLIT_MAX_LINE_CHARS &&
      t[0] === char &&
      /^(?:-+|=+|_+|\*+)$/.test(t)
    )
      return true;
  }
  return false;
}

function hasRuleAbove(lines: string[], start: number, end: number): boolean {
  for (let n = Math.max(start, end - 200); n < end; n++) {
    const line = lines[n] as string;
    if (line.length <= REPLY_SPLIT_MAX_LINE_CHARS && /^\s*(?:-{3,}|={3,}|_{3,}|\*{3,})\s*$/.test(line))
      return true;
  }
  return false;
}

function hasWords(lines: string[], start: number, end: number): boolean {
  for (let n = start; n < end; n++) if (!isBlank(lines[n] as string)) return true;
  return false;
}

// ---- HTML without a text part ---------------------------------------------------------------------------------

/**
 * The text of an HTML body, for splitting only (never shown as HTML). Linear: see htmlTokens; `<blockquote>`
 * content becomes `>`-quoted lines so rule 1 folds it.
 */
export function htmlToText(html: string): string {
  let depth = 0;
  let skip = 0;
  const out: string[] = [];
  for (const { token, close, tag } of htmlTokens(html)) {
    if (tag) {
      const name = tag.toLowerCase();
      if (name === 'style' || name === 'script' || name === 'head' || name === 'title') {
        skip = Math.max(0, skip + (close ? -1 : 1));
      } else if (BLOCK_TAG.test(name)) {
        if (name === 'blockquote') depth = Math.max(0, depth + (close ? -1 : 1));
        out.push(`\n${'> '.repeat(Math.min(depth, 20))}`);
      }
      continue;
    }
    if (skip > 0 || token.startsWith('<!--')) continue;
    out.push(decodeEntities(token.replace(/\s+/g, ' ')));
  }
  return out
    .join('')
    .split('\n')
    .map((l) => l.replace(/[ \t\u00a0]+/g, ' ').trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
const BLOCK_TAG = /^(?:p|div|br|tr|li|h[1-6]|blockquote|table|hr|pre)$/;

/** A tag's name after its `<` (and `/`). */
const TAG_NAME = /\/?([a-zA-Z][a-zA-Z0-9]{0,20})/y;
/** The longest tag and comment read as such; a longer one is text. */
const MAX_TAG_CHARS = 4000;
const MAX_COMMENT_CHARS = 100_000;

/**
 * The tags (at most MAX_TAG_CHARS to their `>`), comments (at most MAX_COMMENT_CHARS to their `-->`), text runs
 * and stray `<` of an HTML text, in order. Found by indexOf with the next `>` and `-->` remembered, not by one
 * pattern such as `<a[^>]{0,4000}>|<!--[\s\S]{0,100000}?-->`: that scans up to its bound again from every
 * `<a` or `<!--` that has no end in reach (`<!--` 100,000 times over: 10^10 steps, most of an hour).
 */
function* htmlTokens(html: string): Generator<{ token: string; close: boolean; tag: string | null }> {
  const next = { '>': { from: -1, at: -1 }, '-->': { from: -1, at: -1 } };
  // the first `what` at or after `from` (callers ask with growing `from`): every character is searched once
  const find = (what: '>' | '-->', from: number): number => {
    const c = next[what];
    if (c.from === -1 || (c.at !== -1 && c.at < from)) {
      c.from = from;
      c.at = html.indexOf(what, from);
    }
    return c.at;
  };
  let pos = 0;
  while (pos < html.length) {
    if (html.charCodeAt(pos) !== 0x3c) {
      const lt = html.indexOf('<', pos);
      const end = lt === -1 ? html.length : lt;
      yield { token: html.slice(pos, end), close: false, tag: null };
      pos = end;
      continue;
    }
    TAG_NAME.lastIndex = pos + 1;
    const name = TAG_NAME.exec(html);
    if (name) {
      const nameEnd = pos + 1 + name[0].length;
      const gt = find('>', nameEnd);
      if (gt !== -1 && gt - nameEnd <= MAX_TAG_CHARS) {
        yield { token: html.slice(pos, gt + 1), close: name[0][0] === '/', tag: name[1] as string };
        pos = gt + 1;
        continue;
      }
    } else if (html.startsWith('<!--', pos)) {
      const end = find('-->', pos + 4);
      if (end !== -1 && end - (pos + 4) <= MAX_COMMENT_CHARS) {
        yield { token: html.slice(pos, end + 3), close: false, tag: null };
        pos = end + 3;
        continue;
      }
    }
    yield { token: '<', close: false, tag: null };
    pos++;
  }
}

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,8});/giu, (all, e: string) => {
    if (e[0] === '#') {
      const code =
        e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : all;
    }
    return ENTITIES[e.toLowerCase()] ?? all;
  });
}
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };
