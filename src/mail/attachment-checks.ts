import { MailintakeError } from '../kernel/errors.js';
import {
  ATTACHMENT_POLICY_MAX_LIMIT_MB as MAX_LIMIT_MB,
  FILE_NAME_MAX_BYTES as MAX_NAME_BYTES,
} from '../kernel/limits.js';
import type { StoredPart } from './types.js';

/**
 * Attachment and inline-image checks (the reference's "Notifications for Stripped Attachments"). Pure: the
 * decision is a function of the parts, the portal's policy and what `sniff` says about a blob's first bytes;
 * the only I/O is that injected `sniff` (see mail/sniff.ts). A dropped item never drops the mail: the caller
 * takes the mail in with `kept` and records `dropped` with its code and the reference's text.
 */

// ---------------------------------------------------------------------------------------------------------
// Codes and texts
// ---------------------------------------------------------------------------------------------------------

/** The reference's "Errors and Solutions" 1–5, word for word, plus the inline-image size limit. */
export const DROP_MESSAGES = {
  FILE_NAME_INVALID: 'Attachment file name is invalid',
  CONTENT_TYPE_MISMATCH: 'Attachment files contain invalid content type',
  EXTENSION_RESTRICTED: 'Attachment files contain invalid extensions',
  EMPTY_FILE: 'Attachment contains empty files',
  TOO_LARGE: 'Attachment size exceeds the configured limit',
  INLINE_TOO_LARGE: 'Inline image size exceeds the configured limit',
} as const;

export type DropCode = keyof typeof DROP_MESSAGES;

export interface DroppedPart {
  part: StoredPart;
  code: DropCode;
  /** The reference's text for `code` (what admins know from the reference and search for). */
  message: string;
  /** What exactly was wrong with this item ("contains '/'", "content is exe"), for the admin. */
  detail: string;
}

export interface AttachmentCheckResult {
  kept: StoredPart[];
  dropped: DroppedPart[];
}

/** What the content's first bytes say it is (file-type's answer). */
export interface SniffedType {
  ext: string;
  mime: string;
}
export type Sniff = (sha256: string) => Promise<SniffedType | undefined>;

// ---------------------------------------------------------------------------------------------------------
// Policy: one type, its defaults and its validation, here and nowhere else.
// ---------------------------------------------------------------------------------------------------------

export interface AttachmentPolicy {
  /** Largest attachment in MB (1 MB = 1,048,576 bytes); larger ones are dropped (TOO_LARGE). -1: unlimited. */
  maxSizeMb: number;
  /** Largest inline image in MB (INLINE_TOO_LARGE). -1: the size of inline images is not checked. */
  inlineImageMaxSizeMb: number;
  /** Extensions allowed (lower case, no dot). Empty: every extension not denied is allowed. */
  allowedExtensions: string[];
  /** Extensions refused; deny wins over allow. */
  deniedExtensions: string[];
  /** true: attachments are kept without any check (the reference's switch). */
  skipAttachmentValidation: boolean;
  /** true: inline images are kept without any check (the reference's switch). */
  skipInlineImageValidation: boolean;
  /** Email the portal's admins when an attachment is dropped (used by the notification part; see `notify`). */
  notifyOnDrop: boolean;
  /** The separate switch for inline-image drops. */
  notifyOnInlineImageDrop: boolean;
  /**
   * Which file names are refused (FILE_NAME_INVALID). "safe": only names that are unsafe or cannot be saved
   * (see fileNameProblem). "strict": also any character other than letters, digits, marks, `.`, `-`, `_` and
   * space (the reference's rule, for help desks whose downstream tools expect such names).
   */
  fileNames: FileNameRuleSet;
}

export const FILE_NAME_RULE_SETS = ['safe', 'strict'] as const;
export type FileNameRuleSet = (typeof FILE_NAME_RULE_SETS)[number];

/**
 * Executables and scripts that Windows runs on a double click (or that run inside the browser's or Java's
 * sandbox-less host): the classic mail-borne malware carriers. `js`, `jse`, `vbs`, `wsf` run in Windows Script
 * Host, not in a browser; `com`, `pif`, `scr` are executables under other names; `msi` installs; `ps1` is
 * PowerShell; `jar` runs with a double click where Java is installed.
 */
export const DEFAULT_DENIED_EXTENSIONS: readonly string[] = Object.freeze([
  'exe',
  'bat',
  'cmd',
  'com',
  'scr',
  'pif',
  'vbs',
  'js',
  'jse',
  'wsf',
  'msi',
  'ps1',
  'jar',
]);

export const DEFAULT_ATTACHMENT_POLICY: Readonly<AttachmentPolicy> = Object.freeze({
  maxSizeMb: 25,
  inlineImageMaxSizeMb: 3,
  allowedExtensions: [],
  deniedExtensions: [...DEFAULT_DENIED_EXTENSIONS],
  skipAttachmentValidation: false,
  skipInlineImageValidation: false,
  notifyOnDrop: true,
  notifyOnInlineImageDrop: true,
  fileNames: 'safe',
});

const LIMIT_FIELDS = ['maxSizeMb', 'inlineImageMaxSizeMb'] as const;
const LIST_FIELDS = ['allowedExtensions', 'deniedExtensions'] as const;
const SWITCH_FIELDS = [
  'skipAttachmentValidation',
  'skipInlineImageValidation',
  'notifyOnDrop',
  'notifyOnInlineImageDrop',
] as const;
const EXTENSION = /^[\p{L}\p{N}][\p{L}\p{N}_-]{0,31}$/u;

/**
 * Fills in defaults and validates a stored or submitted policy (a JSON object; a missing or `null` field means
 * the default). Only the documented `-1` switches a limit off: `0`, `NaN`, `Infinity` and other negatives are
 * rejected — `Number('')` is 0, and an empty form field must not silently disable the size limit that keeps a
 * 2 GB "invoice" out of the blob store. Every bad field is named in one INVALID_SETTINGS error.
 */
export function resolveAttachmentPolicy(input: unknown = {}): AttachmentPolicy {
  const fields: { field: string; message: string }[] = [];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalidPolicy([{ field: 'attachmentPolicy', message: 'must be a JSON object' }]);
  }
  const given = input as Record<string, unknown>;
  const out: AttachmentPolicy = {
    ...DEFAULT_ATTACHMENT_POLICY,
    allowedExtensions: [...DEFAULT_ATTACHMENT_POLICY.allowedExtensions],
    deniedExtensions: [...DEFAULT_ATTACHMENT_POLICY.deniedExtensions],
  };
  const known = new Set<string>([...LIMIT_FIELDS, ...LIST_FIELDS, ...SWITCH_FIELDS, 'fileNames']);
  for (const key of Object.keys(given)) {
    if (!known.has(key)) fields.push({ field: key, message: 'unknown field' });
  }
  for (const key of LIMIT_FIELDS) {
    const value = given[key];
    if (value === undefined || value === null) continue;
    if (
      value === -1 ||
      (typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= MAX_LIMIT_MB)
    ) {
      out[key] = value;
    } else {
      fields.push({
        field: key,
        message: `must be a positive number of MB (up to ${MAX_LIMIT_MB}), or -1 for ${key === 'maxSizeMb' ? 'unlimited' : 'no check'} (got ${JSON.stringify(value) ?? String(value)})`,
      });
    }
  }
  for (const key of LIST_FIELDS) {
    const value = given[key];
    if (value === undefined || value === null) continue;
    if (!Array.isArray(value)) {
      fields.push({ field: key, message: 'must be a list of extensions, e.g. ["pdf", "png"]' });
      continue;
    }
    const list: string[] = [];
    value.forEach((item, i) => {
      const ext = typeof item === 'string' ? item.trim().replace(/^\./, '').toLowerCase() : '';
      if (EXTENSION.test(ext)) list.push(ext);
      else fields.push({ field: `${key}.${i}`, message: `not an extension (got ${JSON.stringify(item)})` });
    });
    out[key] = [...new Set(list)];
  }
  for (const key of SWITCH_FIELDS) {
    const value = given[key];
    if (value === undefined || value === null) continue;
    if (typeof value === 'boolean') out[key] = value;
    else fields.push({ field: key, message: 'must be true or false' });
  }
  const fileNames = given.fileNames;
  if (fileNames !== undefined && fileNames !== null) {
    if ((FILE_NAME_RULE_SETS as readonly unknown[]).includes(fileNames))
      out.fileNames = fileNames as FileNameRuleSet;
    else
      fields.push({
        field: 'fileNames',
        message: `must be "safe" or "strict" (got ${JSON.stringify(fileNames) ?? String(fileNames)})`,
      });
  }
  if (fields.length > 0) throw invalidPolicy(fields);
  return out;
}

function invalidPolicy(fields: { field: string; message: string }[]): MailintakeError {
  return new MailintakeError(
    'INVALID_SETTINGS',
    `Invalid attachment policy: ${fields.map((f) => f.field).join(', ')}`,
    { details: { fields } },
  );
}

// ---------------------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------------------

const MB = 1024 * 1024;

/**
 * Checks every part; each dropped part gets the first rule it breaks, in this order: file name, extension
 * lists, empty, size, content vs extension. The cheap checks come first so that `sniff` (a blob read) runs
 * only for parts that passed everything else.
 *
 * Inline images (inline disposition and an image/* type) are checked with the same rules, except that their
 * size is measured against `inlineImageMaxSizeMb` instead of `maxSizeMb`; `skipInlineImageValidation` keeps
 * them all. Any other part is an attachment (an inline PDF is still a file the person opens).
 */
export async function checkAttachments(
  parts: StoredPart[],
  policy: AttachmentPolicy,
  sniff: Sniff,
): Promise<AttachmentCheckResult> {
  const kept: StoredPart[] = [];
  const dropped: DroppedPart[] = [];
  for (const part of parts) {
    const inlineImage = isInlineImage(part);
    if (inlineImage ? policy.skipInlineImageValidation : policy.skipAttachmentValidation) {
      kept.push(part);
      continue;
    }
    const problem = checkPart(part, policy, inlineImage) ?? (await checkContent(part, sniff));
    if (problem)
      dropped.push({
        part,
        code: problem.code,
        message: DROP_MESSAGES[problem.code],
        detail: problem.detail,
      });
    else kept.push(part);
  }
  return { kept, dropped };
}

export function isInlineImage(part: StoredPart): boolean {
  return part.disposition === 'inline' && part.contentType.toLowerCase().startsWith('image/');
}

interface Problem {
  code: DropCode;
  detail: string;
}

/** The checks that need no content: name, extension lists, empty, size. */
function checkPart(part: StoredPart, policy: AttachmentPolicy, inlineImage: boolean): Problem | null {
  const nameProblem = fileNameProblem(part.filename, policy.fileNames);
  if (nameProblem) return { code: 'FILE_NAME_INVALID', detail: nameProblem.detail };
  const ext = extensionOf(part.filename);
  // Deny wins: an admin who allows "exe" by mistake in a long allow-list still has the deny-list's word.
  if (ext !== '' && policy.deniedExtensions.includes(ext)) {
    return { code: 'EXTENSION_RESTRICTED', detail: `.${ext} is on the deny list` };
  }
  if (policy.allowedExtensions.length > 0 && !policy.allowedExtensions.includes(ext)) {
    return {
      code: 'EXTENSION_RESTRICTED',
      detail: ext === '' ? 'no extension; the allow list is set' : `.${ext} is not on the allow list`,
    };
  }
  if (part.size === 0) return { code: 'EMPTY_FILE', detail: '0 bytes' };
  const limitMb = inlineImage ? policy.inlineImageMaxSizeMb : policy.maxSizeMb;
  if (limitMb !== -1 && part.size > limitMb * MB) {
    return {
      code: inlineImage ? 'INLINE_TOO_LARGE' : 'TOO_LARGE',
      detail: `${part.size} bytes, over the limit of ${limitMb} MB`,
    };
  }
  return null;
}

// ---- file names -------------------------------------------------------------------------------------------

/** Why a file name was refused: a stable word per rule (tests and admins group by it), with the detail. */
export type FileNameRule =
  | 'empty'
  | 'unpaired-surrogate'
  | 'control-character'
  | 'line-separator'
  | 'bidi-control'
  | 'invisible-character'
  | 'noncharacter'
  | 'dot-segment'
  | 'path-separator'
  | 'windows-forbidden'
  | 'only-dots'
  | 'leading-dot'
  | 'trailing-dot-or-space'
  | 'windows-device'
  | 'too-long'
  | 'strict-character';

export interface FileNameProblem {
  rule: FileNameRule;
  /** For the admin: what exactly is wrong ("contains the character U+202E"). */
  detail: string;
}

/**
 * The strict rule's characters: letters and digits of any script, combining marks (a decomposed "ä" is "a" +
 * U+0308; Devanagari and Thai need marks), and dot, hyphen, underscore, space. The reference allows "letters,
 * numbers, dots, hyphens, and underscores"; "letters" are Unicode letters because "Rechnung_März.pdf" and
 * "報告.pdf" are ordinary names, and the space because "Scan 2024.pdf" is what scanners produce.
 */
const STRICT_CHAR = /^[\p{L}\p{M}\p{N}._\- ]$/u;

/**
 * Bidirectional controls: U+202A–U+202E (embeddings and overrides), U+2066–U+2069 (isolates), U+200E/U+200F
 * (LRM/RLM) and U+061C (ALM). They reorder what is displayed, not what is stored: "invoice\u202Egpj.exe" shows
 * as "invoiceexe.jpg" and opens as an executable. No name needs them to be displayed right.
 */
const BIDI_CONTROL = /^[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]$/u;

/**
 * Zero-width joiner and non-joiner are format characters that words need: Persian writes "می‌خواهم" with a
 * ZWNJ, Indic scripts choose conjunct forms with ZWJ/ZWNJ, and emoji sequences (👩‍💻) are held together by
 * ZWJ. They change how letters join, never the order or what is visible as a separator, so they stay.
 */
const JOINERS = new Set(['\u200C', '\u200D']);

/**
 * Windows refuses these in names (`<>:"|?*`): such a name cannot be saved there as sent. ':' on NTFS also
 * names an alternate data stream ("report.pdf:evil.exe" writes a hidden stream of "report.pdf").
 */
const WINDOWS_FORBIDDEN = new Set(['<', '>', ':', '"', '|', '?', '*']);

/**
 * DOS device names: on Windows, saving "con.txt", "NUL.tar.gz" or "com1 .jpg" opens a device, not a file.
 * The stem before the first dot counts, without trailing spaces (Windows drops them); COM/LPT include the
 * superscript digits ¹²³ Windows also treats as device numbers, and CONIN$/CONOUT$ are console devices.
 */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])$/i;

const hex = (cp: number) => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

/** Noncharacters (U+FDD0–U+FDEF, U+xxFFFE/U+xxFFFF): reserved by Unicode "for internal use", never text. */
function isNoncharacter(cp: number): boolean {
  return (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe;
}

/** The per-character rules of both rule sets: the first character that breaks one, or null. */
function characterProblem(ch: string): FileNameProblem | null {
  const cp = ch.codePointAt(0) ?? 0;
  const at = hex(cp);
  // C0, DEL, C1: CR/LF forge header and log lines, NUL ends the name for C APIs ("invoice.pdf\0.exe" is checked
  // as one name and saved as another), ESC starts terminal sequences in a technician's shell.
  if (/\p{Cc}/u.test(ch))
    return { rule: 'control-character', detail: `contains the control character ${at}` };
  // U+2028/U+2029 end a line in JavaScript and in many viewers: the same log-forging as CR/LF.
  if (cp === 0x2028 || cp === 0x2029)
    return { rule: 'line-separator', detail: `contains the line or paragraph separator ${at}` };
  if (BIDI_CONTROL.test(ch))
    return {
      rule: 'bidi-control',
      detail: `contains the bidirectional control ${at}, which can disguise the extension`,
    };
  // Every other format character (zero-width space U+200B, word joiner U+2060, BOM U+FEFF, soft hyphen U+00AD,
  // tag characters U+E0000–U+E007F that hide text) is invisible: "report\u200B.pdf" looks like "report.pdf"
  // and is another file. None is needed to write a name; the two joiners above are.
  if (/\p{Cf}/u.test(ch) && !JOINERS.has(ch))
    return { rule: 'invisible-character', detail: `contains the invisible character ${at}` };
  if (isNoncharacter(cp)) return { rule: 'noncharacter', detail: `contains the noncharacter ${at}` };
  // Path separators: a tool that joins the name into a path writes outside the target folder (zip slip).
  if (ch === '/' || ch === '\\') return { rule: 'path-separator', detail: `contains '${ch}'` };
  if (WINDOWS_FORBIDDEN.has(ch))
    return {
      rule: 'windows-forbidden',
      detail: `contains '${ch}', which Windows does not allow in file names`,
    };
  return null;
}

/**
 * Why a file name is refused, or null. The name comes from whoever sent the mail. We never use it as a path
 * (blobs are stored by hash), but a technician saves it to disk and other tools (sync clients, archive
 * exporters) may trust it, so "safe" refuses exactly the names that are unsafe or cannot be saved:
 *
 * - empty, only dots, a leading dot (a hidden file once saved; ".htaccess" or ".bashrc" configure the folder
 *   they land in), a trailing dot or space (Windows drops them: "x.exe." is saved as "x.exe", past the deny
 *   list), a Windows device name, more than 255 UTF-8 bytes;
 * - path separators and ".." segments; the characters Windows forbids;
 * - control characters, line separators, bidirectional controls, invisible format characters, noncharacters;
 * - unpaired surrogates: the name is not valid Unicode, so it cannot be stored as UTF-8 or sent in a header.
 *
 * Everything else is a name someone writes: "poster (8).jpg", "Capture d’écran 2024-03-01 à 10.00.00.png",
 * "会议纪要.docx", "Отчёт №5.pdf", "100% done & #1 [final].pdf". Not refused, deliberately:
 * - U+FFFD (what a decoder writes for bytes it could not read): the name is damaged but harmless and
 *   saveable, and the file is still the customer's; dropping it would lose the attachment over a charset.
 * - Fullwidth and lookalike punctuation ("：", "？", "／"): Chinese and Japanese write "会议：纪要" every day.
 *   Only legacy ANSI ("best fit") conversion on Windows turns them into ASCII, not the Unicode APIs browsers use.
 * - Unicode normalisation: the name is checked and stored as sent (NFC or NFD, as the sender's system wrote
 *   it) so the download gives back the sender's exact name. No character's NFC form is a refused one (the
 *   tests walk every code point), so a system that normalises when saving cannot turn a safe name unsafe.
 *
 * "strict" adds the reference's character rule (STRICT_CHAR) after all of these, so a dangerous name still
 * gets its specific reason.
 */
export function fileNameProblem(name: string, ruleSet: FileNameRuleSet = 'safe'): FileNameProblem | null {
  if (name.length === 0) return { rule: 'empty', detail: 'the name is empty' };
  const lone = /\p{Cs}/u.exec(name);
  if (lone) {
    return {
      rule: 'unpaired-surrogate',
      detail: `contains the unpaired surrogate ${hex(lone[0].charCodeAt(0))} (not valid Unicode)`,
    };
  }
  // A ".." segment first: "../../etc/passwd" is a traversal, which says more than "contains '/'".
  for (const segment of name.split(/[/\\]/)) {
    if (segment === '..' && name !== '..')
      return { rule: 'dot-segment', detail: 'contains a ".." path segment' };
  }
  for (const ch of name) {
    const problem = characterProblem(ch);
    if (problem) return problem;
  }
  if (/^\.+$/.test(name)) return { rule: 'only-dots', detail: 'the name is only dots' };
  if (name.startsWith('.')) return { rule: 'leading-dot', detail: 'starts with a dot (a hidden file)' };
  if (name.endsWith('.') || name.endsWith(' '))
    return { rule: 'trailing-dot-or-space', detail: 'ends with a dot or a space, which Windows drops' };
  if (WINDOWS_DEVICE.test((name.split('.')[0] ?? '').replace(/ +$/, '')))
    return { rule: 'windows-device', detail: 'is a Windows device name' };
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES)
    return { rule: 'too-long', detail: `${bytes} bytes in UTF-8, longer than ${MAX_NAME_BYTES}` };
  if (ruleSet === 'strict') {
    for (const ch of name) {
      if (STRICT_CHAR.test(ch)) continue;
      return {
        rule: 'strict-character',
        detail: `contains the character ${hex(ch.codePointAt(0) ?? 0)} ('${ch}'), not allowed by the strict rule`,
      };
    }
  }
  return null;
}

/** The part after the last dot, lower case; '' for none. */
export function extensionOf(name: string): string {
  const at = name.lastIndexOf('.');
  return at <= 0 ? '' : name.slice(at + 1).toLowerCase();
}

// ---- content vs extension ---------------------------------------------------------------------------------

/**
 * Text formats: no magic bytes, so the extension decides. Their content is only refused when it sniffs as a
 * binary format (a PNG named "Alter.txt", the reference's example); a text file that sniffs as another text
 * format file-type knows (XML, iCalendar, vCard…) is fine.
 */
export const TEXT_EXTENSIONS: ReadonlySet<string> = new Set([
  'txt',
  'text',
  'csv',
  'tsv',
  'log',
  'json',
  'xml',
  'html',
  'htm',
  'xhtml',
  'svg',
  'eml',
  'mbox',
  'ics',
  'vcs',
  'vcf',
  'md',
  'markdown',
  'ini',
  'cfg',
  'conf',
  'yaml',
  'yml',
  'toml',
  'css',
  'sql',
  'diff',
  'patch',
  'rtf',
]);

/**
 * Formats whose signature printable text can match by chance: MPEG-TS is recognised by the byte 0x47 ("G")
 * at every 188th position, so a text file of "GGGG…" (or a fixed-width export) sniffs as video. A text-named
 * file sniffed as only one of these is kept; a real disguise (PNG, EXE, PDF, ZIP…) has a signature no text has.
 */
const TEXT_LOOKALIKE_FORMATS: ReadonlySet<string> = new Set(['mts']);

/** Extensions that are the same format as the sniffed one, beyond equality (file-type names one of them). */
const SAME_FORMAT: Record<string, readonly string[]> = {
  jpg: ['jpeg', 'jpe', 'jfif', 'pjpeg', 'pjp'],
  tif: ['tiff'],
  // Office Open XML and OpenDocument files are ZIP archives; files written by other tools may not carry the
  // markers file-type looks for, and then sniff as plain zip.
  zip: [
    'docx',
    'docm',
    'dotx',
    'xlsx',
    'xlsm',
    'xltx',
    'pptx',
    'pptm',
    'potx',
    'odt',
    'ods',
    'odp',
    'odg',
    'epub',
    'vsdx',
    'kmz',
    'apk',
    'xps',
    'oxps',
  ],
  // Old Office, Outlook and Windows Installer files are OLE compound files.
  cfb: ['doc', 'dot', 'xls', 'xlt', 'ppt', 'pps', 'pot', 'msg', 'vsd', 'pub', 'msi'],
  mp4: ['m4a', 'm4v', 'm4b', 'mov', '3gp', '3g2', 'f4v'],
  mov: ['qt', 'mp4', 'm4v'],
  ogg: ['oga', 'ogv', 'ogx', 'opus'],
  xml: ['svg', 'xhtml', 'html', 'htm', 'rss', 'atom', 'xsl', 'xslt', 'kml', 'gpx', 'plist'],
  html: ['htm', 'xhtml'],
  gz: ['tgz'],
  heic: ['heif'],
  eml: ['mbox', 'msg'],
};

/** Formats that run when opened: named as something else (or nothing), they are the disguise this check exists for. */
const EXECUTABLE_FORMATS: ReadonlySet<string> = new Set([
  'exe',
  'elf',
  'macho',
  'class',
  'swf',
  'dex',
  'wasm',
]);

function sameFormat(nameExt: string, sniffedExt: string): boolean {
  if (nameExt === sniffedExt) return true;
  if (SAME_FORMAT[sniffedExt]?.includes(nameExt)) return true;
  return SAME_FORMAT[nameExt]?.includes(sniffedExt) ?? false;
}

/**
 * Content vs extension, by magic bytes. The declared Content-Type header is not consulted: mail clients send
 * application/octet-stream for half of everything, and the sender controls it as much as the name.
 *
 * - Sniffed as nothing (file-type knows no signature for it): kept. Plenty of legitimate binary formats have no
 *   magic bytes or none file-type knows (.dat, .bak, vendor formats), and a disguised executable is not among
 *   them: EXE, ELF and Mach-O all have signatures file-type recognises. Dropping the unsniffable would drop
 *   real customer files and protect against nothing the sniffing catches anyway.
 * - Text extension: kept unless the content sniffs as a binary format.
 * - No extension: nothing to compare, kept — unless the content is an executable (an extension-less EXE is
 *   the classic way around a deny-list).
 * - Otherwise the sniffed format must be the extension's (or one of its known aliases).
 */
async function checkContent(part: StoredPart, sniff: Sniff): Promise<Problem | null> {
  const sniffed = await sniff(part.sha256);
  if (!sniffed) return null;
  const ext = extensionOf(part.filename);
  const found = `content is ${sniffed.ext} (${sniffed.mime})`;
  if (ext === '') {
    return EXECUTABLE_FORMATS.has(sniffed.ext)
      ? { code: 'CONTENT_TYPE_MISMATCH', detail: `no extension; ${found}` }
      : null;
  }
  if (TEXT_EXTENSIONS.has(ext)) {
    return TEXT_EXTENSIONS.has(sniffed.ext) || TEXT_LOOKALIKE_FORMATS.has(sniffed.ext)
      ? null
      : { code: 'CONTENT_TYPE_MISMATCH', detail: `.${ext} but ${found}` };
  }
  return sameFormat(ext, sniffed.ext)
    ? null
    : { code: 'CONTENT_TYPE_MISMATCH', detail: `.${ext} but ${found}` };
}

/**
 * A file name as it may appear in a log line or reason: control and format characters escaped, cut at 200
 * characters. The names shown are exactly the ones that may carry CR/LF (forging log lines) or U+202E.
 */
export function displayName(name: string): string {
  const escaped = Array.from(name, (ch) => {
    const cp = ch.codePointAt(0) ?? 0;
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || /\p{Cf}/u.test(ch)
      ? `\\u${cp.toString(16).padStart(4, '0')}`
      : ch;
  }).join('');
  return escaped.length > 200 ? `${escaped.slice(0, 199)}…` : escaped;
}

/** The intake-log reason line for one dropped item. */
export function dropReason(d: DroppedPart): string {
  const what = isInlineImage(d.part) ? 'inline image' : 'attachment';
  return `dropped ${what} '${displayName(d.part.filename)}': ${d.message}`;
}
