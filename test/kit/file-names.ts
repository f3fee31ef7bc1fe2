import type { FileNameRule } from '../../src/mail/attachment-checks.js';

/**
 * Generated attachment file names for property-style tests: names people write in many scripts, and the unsafe
 * elements (by the rule that refuses them) to inject into them. Seeded through prng() so a failure replays.
 */

/** Characters of names people write, by script; no dot (the generator places dots) and nothing refused. */
export const SCRIPTS: readonly string[] = [
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  'àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœßÀÉÈÇÑÖÜŒ',
  'абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙ',
  'αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΕΖΗΘ',
  '的一是不了人我在有他这为之大来以个中上们会议纪要报告发票',
  'あいうえおかきくけこさしすせそアイウエオカキクケコ漢字日本語',
  '가나다라마바사아자차카타파하한국어',
  'ابتثجحخدذرسشصضطظعغفقكلمنهوي٠١٢٣٤٥٦٧٨٩',
  'אבגדהוזחטיכלמנסעפצקרשת',
  'कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह\u093E\u093F\u0940\u094D',
  'กขคงจฉชซญดตถทธนบปผพฟภมยรลวสหอ\u0E31\u0E34\u0E35',
  " ()[]{}'’‘“”«»,;!@#$%&+=~^`–—_-・「」（）：？！、。",
  '😀📄🧾✅★♥',
];

export const EXTENSIONS: readonly string[] = [
  'pdf',
  'jpg',
  'png',
  'docx',
  'xlsx',
  'txt',
  'zip',
  'eml',
  'heic',
  'tar.gz',
];

/** A name the safe rule keeps: 1–40 characters from two random scripts and Latin, usually with an extension. */
export function generatedName(rand: () => number, opts: { extension?: string } = {}): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T;
  for (;;) {
    const scripts = [pick(SCRIPTS), pick(SCRIPTS), SCRIPTS[0] as string];
    const length = 1 + Math.floor(rand() * 40);
    let stem = '';
    for (let i = 0; i < length; i++) stem += pick(Array.from(pick(scripts)));
    stem = stem.replace(/ +$/, '');
    // a stem that is only spaces or a Windows device name by chance is drawn again
    if (stem === '' || /^(con|prn|aux|nul|com\d|lpt\d)$/i.test(stem)) continue;
    if (opts.extension !== undefined) return `${stem}.${opts.extension}`;
    return rand() < 0.1 ? stem : `${stem}.${pick(EXTENSIONS)}`;
  }
}

/** One list of unsafe elements per rule; each refused wherever it appears in a name. */
export const INJECTED: readonly [FileNameRule, readonly string[]][] = [
  [
    'control-character',
    [...Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)), '\u007F', '\u0080', '\u0085', '\u009F'],
  ],
  ['line-separator', ['\u2028', '\u2029']],
  [
    'bidi-control',
    [
      '\u202A',
      '\u202B',
      '\u202C',
      '\u202D',
      '\u202E',
      '\u2066',
      '\u2067',
      '\u2068',
      '\u2069',
      '\u200E',
      '\u200F',
      '\u061C',
    ],
  ],
  [
    'invisible-character',
    [
      '\u200B',
      '\u2060',
      '\u2061',
      '\u2064',
      '\uFEFF',
      '\u00AD',
      '\u180E',
      '\uFFF9',
      '\u{E0001}',
      '\u{E007F}',
    ],
  ],
  ['noncharacter', ['\uFDD0', '\uFDEF', '\uFFFE', '\uFFFF', '\u{1FFFE}', '\u{10FFFF}']],
  ['unpaired-surrogate', ['\uD800', '\uDBFF', '\uDC00', '\uDFFF']],
  ['path-separator', ['/', '\\']],
  ['windows-forbidden', ['<', '>', ':', '"', '|', '?', '*']],
];

/** `name` with `element` inserted before the code point at `at` (never inside a surrogate pair). */
export function inject(name: string, element: string, rand: () => number): { name: string; at: number } {
  const chars = Array.from(name);
  const at = Math.floor(rand() * (chars.length + 1));
  chars.splice(at, 0, element);
  return { name: chars.join(''), at };
}
