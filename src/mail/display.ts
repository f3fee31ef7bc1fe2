import sanitizeHtml from 'sanitize-html';

/**
 * Mail bodies made safe to show (issue 12 §6). Mail HTML is written by anyone on the internet: this is the
 * first of two layers (the second is the sandboxed frame with its own CSP, features/requests/body-routes.ts).
 * Pure, no I/O.
 *
 * What stays: an allow-list of tags for mail layout (tables, inline formatting, lists, images, links) and
 * attributes, and a safe subset of inline CSS (`style="…"` properties with checked values). What goes:
 * everything else, with the content of script-like and foreign elements (script, style, svg, math, iframe,
 * noscript, template, …) dropped whole. `<style>` blocks are dropped, not filtered: a selector list can reach
 * outside the mail (`body`, `*`), and a filtered stylesheet parser is a second sanitiser to get right. Mails
 * keep their inline styles, which is where most mail layout lives.
 *
 * Links: only absolute http, https and mailto survive (relative ones would point into the console), each with
 * `target="_blank" rel="noopener noreferrer"`. Images: `cid:` through `cidUrl` (unknown → dropped), remote
 * http(s) dropped and counted unless `remoteImages`, `data:` kept only for PNG, GIF, JPEG and WebP in base64
 * (pasted screenshots travel that way; an image decoder runs no script, and the frame's CSP allows `data:`
 * images only), anything else (relative, SVG, other schemes) dropped.
 */

export interface SanitizeOptions {
  /** Show remote http(s) images (the person clicked "show images" for this mail). */
  remoteImages: boolean;
  /** The URL an inline `cid:` part is served at, or null when the mail has no part by that Content-ID. */
  cidUrl: (contentId: string) => string | null;
}

export interface SanitizedHtml {
  html: string;
  /** Remote images left out (0 when `remoteImages`). */
  blockedRemoteImages: number;
}

/** Tags a mail may keep. Everything else is removed (its text kept, except for the NON_TEXT ones). */
// biome-ignore format: a list
export const MAIL_TAGS: readonly string[] = [
  'a', 'abbr', 'address', 'article', 'b', 'bdi', 'bdo', 'big', 'blockquote', 'br', 'caption', 'center',
  'cite', 'code', 'col', 'colgroup', 'dd', 'del', 'dfn', 'div', 'dl', 'dt', 'em', 'figcaption', 'figure',
  'font', 'footer', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header', 'hr', 'i', 'img', 'ins', 'kbd', 'li',
  'main', 'mark', 'nav', 'ol', 'p', 'pre', 'q', 's', 'samp', 'section', 'small', 'span', 'strike', 'strong',
  'sub', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'tt', 'u', 'ul', 'var', 'wbr',
];

/** Elements dropped with everything inside them (their text is not mail text, or is a parser trap). */
// biome-ignore format: a list
const NON_TEXT = [
  'script', 'style', 'textarea', 'option', 'select', 'noscript', 'noembed', 'noframes', 'template', 'title',
  'head', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'svg', 'math', 'xmp', 'plaintext',
  'listing', 'canvas', 'audio', 'video', 'form', 'button', 'xml',
];

const layout = ['align', 'valign', 'width', 'height', 'bgcolor', 'dir', 'lang', 'title', 'style'];

/** Attributes per tag (none starts with "on"; no URL-carrying one but href on a and src on img). */
export const MAIL_ATTRIBUTES: Readonly<Record<string, string[]>> = {
  '*': ['dir', 'lang', 'title', 'style', 'align'],
  a: ['href', 'name', 'target', 'rel'],
  img: ['src', 'alt', 'width', 'height', 'border', 'hspace', 'vspace'],
  table: [...layout, 'border', 'cellpadding', 'cellspacing', 'frame', 'rules', 'summary'],
  thead: layout,
  tbody: layout,
  tfoot: layout,
  tr: layout,
  td: [...layout, 'colspan', 'rowspan', 'nowrap', 'headers', 'scope'],
  th: [...layout, 'colspan', 'rowspan', 'nowrap', 'headers', 'scope'],
  col: [...layout, 'span'],
  colgroup: [...layout, 'span'],
  font: ['color', 'face', 'size'],
  ol: ['start', 'type', 'reversed'],
  ul: ['type'],
  li: ['value', 'type'],
  hr: ['size', 'noshade', 'width'],
  blockquote: ['type'],
  div: layout,
  p: layout,
  span: layout,
};

// CSS values. Anchored; no function call but rgb()/rgba()/hsl()/hsla() and no `\` (CSS escapes), so url(),
// expression(), image-set(), var() and escaped forms of them cannot appear.
const num = String.raw`(?:\d+(?:\.\d+)?|\.\d+)`;
const length = `(?:0|${num}(?:px|pt|em|rem|ex|ch|%|cm|mm|in|pc|vw|vh)|auto)`;
const lengths = (max: number) => new RegExp(String.raw`^\s*${length}(?:\s+${length}){0,${max - 1}}\s*$`, 'i');
const color = new RegExp(
  String.raw`^\s*(?:#[0-9a-f]{3,8}|[a-z]{3,30}|(?:rgb|rgba|hsl|hsla)\(\s*${num}%?\s*(?:,\s*${num}%?\s*){2,3}\))\s*$`,
  'i',
);
const keyword = (...words: string[]) => new RegExp(`^\\s*(?:${words.join('|')})\\s*$`, 'i');
const fontFamily = /^[\w\s,'"-]{1,200}$/;
const borderShorthand = new RegExp(
  String.raw`^\s*(?:(?:${length}|thin|medium|thick|none|hidden|dotted|dashed|solid|double|groove|ridge|inset|outset|#[0-9a-f]{3,8}|[a-z]{3,30}|(?:rgb|rgba)\(\s*${num}%?\s*(?:,\s*${num}%?\s*){2,3}\))\s*){1,3}$`,
  'i',
);

/** Inline CSS a mail may keep: nothing that positions, layers, loads or runs. */
// biome-ignore format: a table
export const MAIL_STYLES: Readonly<Record<string, RegExp[]>> = {
  color: [color],
  'background-color': [color],
  'font-size': [lengths(1), keyword('xx-small', 'x-small', 'small', 'medium', 'large', 'x-large', 'xx-large', 'smaller', 'larger')],
  'font-weight': [keyword('normal', 'bold', 'bolder', 'lighter', '[1-9]00')],
  'font-style': [keyword('normal', 'italic', 'oblique')],
  'font-family': [fontFamily],
  'font-variant': [keyword('normal', 'small-caps')],
  'text-align': [keyword('left', 'right', 'center', 'justify', 'start', 'end')],
  'text-decoration': [keyword('none', 'underline', 'overline', 'line-through')],
  'text-transform': [keyword('none', 'uppercase', 'lowercase', 'capitalize')],
  'text-indent': [lengths(1)],
  'line-height': [lengths(1), /^\s*\d+(?:\.\d+)?\s*$/, keyword('normal')],
  'letter-spacing': [lengths(1), keyword('normal')],
  'vertical-align': [keyword('baseline', 'top', 'middle', 'bottom', 'text-top', 'text-bottom', 'sub', 'super')],
  'white-space': [keyword('normal', 'nowrap', 'pre', 'pre-wrap', 'pre-line')],
  'word-break': [keyword('normal', 'break-all', 'keep-all', 'break-word')],
  'overflow-wrap': [keyword('normal', 'break-word', 'anywhere')],
  'word-wrap': [keyword('normal', 'break-word')],
  display: [keyword('none', 'block', 'inline', 'inline-block', 'table', 'table-row', 'table-cell', 'list-item')],
  'list-style-type': [keyword('none', 'disc', 'circle', 'square', 'decimal', 'lower-alpha', 'upper-alpha', 'lower-roman', 'upper-roman')],
  'border-collapse': [keyword('collapse', 'separate')],
  'border-spacing': [lengths(2)],
  width: [lengths(1)],
  height: [lengths(1)],
  'max-width': [lengths(1), keyword('none')],
  'min-width': [lengths(1)],
  'max-height': [lengths(1), keyword('none')],
  'min-height': [lengths(1)],
  margin: [lengths(4)],
  'margin-top': [lengths(1)],
  'margin-right': [lengths(1)],
  'margin-bottom': [lengths(1)],
  'margin-left': [lengths(1)],
  padding: [lengths(4)],
  'padding-top': [lengths(1)],
  'padding-right': [lengths(1)],
  'padding-bottom': [lengths(1)],
  'padding-left': [lengths(1)],
  border: [borderShorthand],
  'border-top': [borderShorthand],
  'border-right': [borderShorthand],
  'border-bottom': [borderShorthand],
  'border-left': [borderShorthand],
  'border-color': [color],
  'border-width': [lengths(4)],
  'border-style': [keyword('none', 'solid', 'dotted', 'dashed', 'double')],
  'border-radius': [lengths(4)],
};

/** Browsers skip ASCII whitespace and control characters inside a scheme ("java\tscript:"). */
const schemeOf = (url: string): string | null => {
  const squeezed = url.replace(/[\s\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+/gu, '');
  if (squeezed.startsWith('//')) return '//';
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(squeezed);
  return m?.[1] ? m[1].toLowerCase() : null;
};

const SAFE_DATA_IMAGE = /^data:image\/(?:png|gif|jpeg|jpg|webp);base64,[a-z0-9+/=\s]+$/i;

export function sanitizeMailHtml(html: string, opts: SanitizeOptions): SanitizedHtml {
  let blockedRemoteImages = 0;
  // An image left out keeps its tag but loses every attribute; exclusiveFilter then removes it. (Renaming it to
  // an unknown tag instead makes sanitize-html close the parent with that name.)
  const drop = { tagName: 'img', attribs: {} };
  const out = sanitizeHtml(html, {
    allowedTags: [...MAIL_TAGS],
    allowedAttributes: MAIL_ATTRIBUTES,
    allowedStyles: { '*': MAIL_STYLES },
    nonTextTags: NON_TEXT,
    disallowedTagsMode: 'discard',
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: ['http', 'https', 'data'] },
    allowedSchemesAppliedToAttributes: ['href', 'src', 'cite'],
    allowProtocolRelative: false,
    allowVulnerableTags: false,
    parseStyleAttributes: true,
    exclusiveFilter: (frame) => frame.tag === 'img' && !frame.attribs.src,
    transformTags: {
      a: (tagName, attribs) => {
        const { href, target: _target, rel: _rel, ...rest } = attribs;
        const scheme = href === undefined ? null : schemeOf(href);
        const keep = href !== undefined && (scheme === 'http' || scheme === 'https' || scheme === 'mailto');
        return {
          tagName,
          attribs: {
            ...(keep ? { href: href.trim() } : {}),
            ...rest,
            target: '_blank',
            rel: 'noopener noreferrer',
          },
        };
      },
      img: (tagName, attribs) => {
        const { src, ...rest } = attribs;
        if (src === undefined) return drop;
        const scheme = schemeOf(src);
        const trimmed = src.trim();
        if (scheme === 'cid') {
          const id = trimmed.replace(/^cid:/i, '');
          let url = opts.cidUrl(id);
          if (url === null && id.includes('%')) {
            try {
              url = opts.cidUrl(decodeURIComponent(id));
            } catch {
              url = null; // a malformed escape: no such part
            }
          }
          return url === null ? drop : { tagName, attribs: { src: url, ...rest } };
        }
        if (scheme === 'http' || scheme === 'https' || scheme === '//') {
          if (!opts.remoteImages || scheme === '//') {
            blockedRemoteImages++;
            return drop;
          }
          return { tagName, attribs: { src: trimmed, ...rest } };
        }
        if (scheme === 'data' && SAFE_DATA_IMAGE.test(trimmed))
          return { tagName, attribs: { src: trimmed, ...rest } };
        return drop;
      },
    },
  });
  return { html: out, blockedRemoteImages };
}

const escapeMap: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
/** Text made safe in HTML content and in quoted attribute values. */
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (ch) => escapeMap[ch] ?? ch);

const LINKABLE = /\bhttps?:\/\/[^\s<>"'`\p{Cc}]+|[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}/giu;

/** A URL's end without the punctuation a sentence puts after it; a ")" stays when the URL opened one. */
function trimTrailing(url: string): string {
  let end = url.length;
  for (;;) {
    const ch = url[end - 1];
    if (ch === undefined) break;
    if ('.,;:!?\'"*>'.includes(ch)) {
      end--;
      continue;
    }
    const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
    const open = pairs[ch];
    if (open !== undefined) {
      const s = url.slice(0, end);
      const opens = s.split(open).length - 1;
      const closes = s.split(ch).length - 1;
      if (closes > opens) {
        end--;
        continue;
      }
    }
    break;
  }
  return url.slice(0, end);
}

/**
 * A plain-text body as HTML: everything escaped, line breaks kept, http(s) URLs and mail addresses made links
 * (`target="_blank" rel="noopener noreferrer"`; the link text is the escaped URL, trailing punctuation left
 * outside).
 */
export function plainTextToHtml(text: string): string {
  const lines = text.replace(/\r\n?/g, '\n');
  let out = '';
  let last = 0;
  for (const m of lines.matchAll(LINKABLE)) {
    const start = m.index ?? 0;
    const found = m[0];
    const isUrl = /^https?:/i.test(found);
    const target = isUrl ? trimTrailing(found) : found.replace(/\.+$/, '');
    if (target === '' || (isUrl && !/^https?:\/\/[^/?#]/i.test(target))) continue;
    out += escapeHtml(lines.slice(last, start));
    const href = isUrl ? target : `mailto:${target}`;
    out += `<a href="${escapeHtml(href)}" target="_blank" rel="noopener noreferrer">${escapeHtml(target)}</a>`;
    last = start + target.length;
  }
  out += escapeHtml(lines.slice(last));
  return `<div style="white-space:pre-wrap;overflow-wrap:anywhere">${out.replace(/\n/g, '<br>')}</div>`;
}
