import sanitizeHtml from 'sanitize-html';

/**
 * The two values the application writes beside a mail for the search (migration 0011), because neither engine
 * can compute them in SQL the way the application does: the text of an HTML-only body, and the requester's
 * address in lower case for any script (SQLite's lower() knows ASCII alone).
 */

/** The longest requester filter taken (features/requests/work.ts checks it): longer addresses can never match. */
export const REQUESTER_FILTER_CHARS = 320;

/** How much of an HTML-only body's text is kept for the search (the search reads no further: 0011's caps). */
export const HTML_TEXT_CHARS = 50_000;

/** How much HTML is read for it: that much HTML holds at least HTML_TEXT_CHARS of text, or markup mostly. */
export const HTML_READ_CHARS = 4 * HTML_TEXT_CHARS;

/**
 * The requester's address as the filter compares it: Unicode NFC, then JavaScript's toLowerCase (full Unicode
 * case mapping: ÄNNE@EXÄMPLE.ORG and änne@exämple.org are the same). Null for no address, and for one longer
 * than any filter can be: so that indexed value is bounded (DESIGN.md: a sender's value never goes into an
 * index as it stands) while it stays the full value, compared without a second look-up.
 */
export function requesterNorm(address: string | null | undefined): string | null {
  if (!address) return null;
  const norm = address.normalize('NFC').toLowerCase();
  return norm.length > REQUESTER_FILTER_CHARS ? null : norm;
}

/**
 * The words of an HTML body for the search, when the mail has no text body (mailparser derives one only when
 * the HTML is the mail's root part: an HTML-only mail with an attachment has none). Null when there is HTML
 * text already or no HTML. sanitize-html (a dependency already, maintained) with no tag allowed keeps the
 * text nodes, drops scripts and styles; a space before every tag keeps `a</p><p>b` two words. Its output
 * escapes `& < > "` again, which are turned back. The HTML is cut first (HTML_READ_CHARS).
 */
export function htmlSearchText(
  text: string | null | undefined,
  html: string | null | undefined,
): string | null {
  if ((text ?? '').trim() !== '' || !html) return null;
  const flat = sanitizeHtml(html.slice(0, HTML_READ_CHARS).replaceAll('<', ' <'), {
    allowedTags: [],
    allowedAttributes: {},
    nonTextTags: ['style', 'script', 'textarea', 'option', 'noscript', 'title', 'head'],
  })
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&amp;', '&')
    .replace(/\s+/gu, ' ')
    .trim();
  return flat === '' ? null : flat.slice(0, HTML_TEXT_CHARS);
}
