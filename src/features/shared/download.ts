import { Readable } from 'node:stream';

/**
 * Downloads (attachments, raw mails): the stored bytes served so that no browser renders them as part of our
 * origin, whatever the sender wrote into the type and the file name.
 */

/**
 * Types a browser renders as active content (script runs in our origin). An attachment is mail from anyone on
 * the internet: served as text/html it would be stored XSS against whoever downloads it. `attachment` already
 * keeps browsers from rendering, but the type is the second lock.
 */
const ACTIVE_TYPES = new Set([
  'text/html',
  'application/xhtml+xml',
  'image/svg+xml',
  'text/xml',
  'application/xml',
  'text/xsl',
  'multipart/x-mixed-replace',
]);

/** The stored type's essence when it is a plain, safe `type/subtype`; application/octet-stream otherwise. */
export function downloadContentType(stored: string): string {
  const essence = (stored.split(';')[0] ?? '').trim().toLowerCase();
  // A type from the mail that is not a bare token pair (CR/LF, quotes, spaces) never reaches a header.
  if (!/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(essence))
    return 'application/octet-stream';
  if (ACTIVE_TYPES.has(essence) || essence.endsWith('+xml')) return 'application/octet-stream';
  return essence;
}

/**
 * `Content-Disposition: attachment` with the mail's file name encoded per RFC 6266 / RFC 8187.
 * The file name comes from the sender. Copied raw, a `"` ends the quoted string and lets the sender add
 * parameters (`x.pdf"; filename="evil.html`), and CR/LF would split the response into headers of their
 * choosing. So the quoted fallback keeps only printable ASCII minus `"`, `\`, `/` and `%` (some browsers
 * percent-decode it), and the real name travels percent-encoded in `filename*`, where no raw byte can appear.
 *
 * The name is normally one the checks let through (see fileNameProblem), but a portal may skip the checks and
 * older rows were checked by older rules, so the download defends itself: control characters, line separators,
 * bidirectional controls and invisible format characters become `_` (a saved "invoice\u202Egpj.exe" must not
 * display as "invoiceexe.jpg"), and an unpaired surrogate becomes U+FFFD (it has no UTF-8 form, and
 * encodeURIComponent throws on it: the download would fail with a 500).
 */
export function contentDisposition(filename: string): string {
  const cleaned =
    Array.from(filename, (ch) => {
      if (/\p{Cs}/u.test(ch)) return '\uFFFD';
      if (ch === '/' || ch === '\\') return '_';
      // Cc: C0, DEL, C1; Zl/Zp: U+2028/U+2029; Cf: bidi controls, zero-width and tag characters. The joiners
      // ZWNJ/ZWJ are part of Persian and Indic words and emoji, and reorder nothing.
      if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(ch)) return '_';
      if (/\p{Cf}/u.test(ch) && ch !== '\u200C' && ch !== '\u200D') return '_';
      return ch;
    })
      .join('')
      .trim() || 'attachment';
  // For clients that ignore filename*: "Capture d’écran à 10.00.png" → "Capture d_ecran a 10.00.png" (NFKD
  // splits "é" into "e" + a mark, and fullwidth forms into ASCII) rather than a row of underscores. NFKD can
  // make "/" or '"' out of fullwidth forms, so the replacement runs after it.
  const fallback =
    cleaned
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .replace(/[^\x20-\x7e]|["%/\\]/g, '_')
      .trim() || 'attachment';
  // encodeURIComponent leaves ! ' ( ) * unencoded; RFC 8187 attr-char does not allow ' ( ) *.
  const encoded = encodeURIComponent(cleaned).replace(
    /['()*]/g,
    (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

/** What a download needs to know of the stored bytes (a request's attachment, a raw mail, an error mail). */
export interface DownloadMeta {
  filename: string;
  contentType: string;
  size: number;
}

export function attachmentResponse(meta: DownloadMeta, body: Readable): Response {
  return new Response(Readable.toWeb(body) as unknown as ReadableStream<Uint8Array>, {
    status: 200,
    headers: {
      'Content-Type': downloadContentType(meta.contentType),
      'Content-Disposition': contentDisposition(meta.filename),
      'Content-Length': String(meta.size),
    },
  });
}
