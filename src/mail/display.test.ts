import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ChildNode } from 'domhandler';
import { parseDocument } from 'htmlparser2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpusMails, hasCorpus } from '../../test/kit/corpus.js';
import { prng } from '../../test/kit/prng.js';
import {
  ATTRIBUTE_SHAPES,
  carry,
  HANDLERS,
  HOSTILE_FRAGMENTS,
  HOSTILE_STYLES,
  HOSTILE_URLS,
  htmlSafetyProblems,
  SCHEME_ENCODINGS,
} from '../../test/kit/xss-vectors.js';
import { isMailintakeError } from '../kernel/errors.js';
import { FileBlobStore } from '../store/blobs/blob-store.js';
import { MAIL_TAGS, plainTextToHtml, type SanitizeOptions, sanitizeMailHtml } from './display.js';
import { parseMail } from './parse.js';

/**
 * The sanitiser is checked on what a browser would build from its output, not on strings: the output is parsed
 * again (htmlparser2, a different version from the one inside sanitize-html) and every element, attribute,
 * URL and CSS declaration is held against the allow-lists, for generated vectors × carrier tags × encodings
 * and for every HTML body of the real-mail corpus.
 */

const INLINE = '/requests/1/inline/';
const opts = (remoteImages = false): SanitizeOptions => ({
  remoteImages,
  cidUrl: (id) => (id === 'logo@x' ? `${INLINE}7` : null),
});

/** Runs the cases, collecting every failure (a thrown error counts) with its input, so one report shows all. */
function check(cases: Iterable<{ name: string; html: string }>, remoteImages = false): number {
  const failures: string[] = [];
  let n = 0;
  for (const c of cases) {
    n++;
    try {
      const out = sanitizeMailHtml(c.html, opts(remoteImages)).html;
      const p = htmlSafetyProblems(out, { remoteImages, inlinePrefix: INLINE });
      if (p.length > 0) failures.push(`${c.name}: ${p.join('; ')}\n  in:  ${c.html}\n  out: ${out}`);
      // Sanitising the output again changes nothing: what a second parse sees is what was checked.
      const again = sanitizeMailHtml(out, opts(remoteImages)).html;
      if (again !== out) failures.push(`${c.name}: not stable\n  out:   ${out}\n  again: ${again}`);
    } catch (err) {
      failures.push(`${c.name}: threw ${String(err)}`);
    }
  }
  expect(failures.slice(0, 20), `${failures.length} of ${n} cases failed`).toEqual([]);
  return n;
}

const URL_ATTRIBUTES = [
  'href',
  'src',
  'background',
  'action',
  'formaction',
  'xlink:href',
  'srcset',
  'poster',
  'data',
  'cite',
  'dynsrc',
  'lowsrc',
];

describe('sanitizeMailHtml: generated XSS vectors × carrier tags × encodings', () => {
  it('hostile URLs in every URL-carrying attribute of every allowed tag, in every scheme encoding', () => {
    function* cases() {
      for (const tag of MAIL_TAGS)
        for (const url of HOSTILE_URLS)
          for (const enc of SCHEME_ENCODINGS) {
            const value = `${enc.encode(url.scheme)}${url.rest}`.replace(/"/g, '&quot;');
            const attrs = URL_ATTRIBUTES.map((a) => ` ${a}="${value}"`).join('');
            yield { name: `<${tag}> ${url.scheme} ${enc.name}`, html: carry(tag, attrs) };
          }
    }
    expect(check(cases())).toBeGreaterThan(6000);
  });

  it('event handlers on every allowed tag, in every attribute shape, with images shown or not', () => {
    function* cases() {
      for (const tag of MAIL_TAGS)
        for (const h of HANDLERS)
          for (const shape of ATTRIBUTE_SHAPES)
            yield {
              name: `<${tag}> ${h} ${shape.name}`,
              html: carry(tag, `${shape.write(h, 'alert(1)')} title=x`),
            };
    }
    check(cases());
    check(cases(), true);
  });

  it('CSS that escapes its box, loads or runs, in the style attribute of every allowed tag', () => {
    function* cases() {
      for (const tag of MAIL_TAGS)
        for (const css of HOSTILE_STYLES)
          for (const shape of ATTRIBUTE_SHAPES.slice(0, 2))
            yield {
              name: `<${tag}> style ${css}`,
              html: carry(tag, shape.write('style', `color:red;${css}`)),
            };
    }
    check(cases());
  });

  it('hostile elements (script, SVG, iframe srcdoc, meta refresh, base, forms, style, comments, mXSS) inside every allowed tag', () => {
    function* cases() {
      for (const tag of MAIL_TAGS)
        for (const f of HOSTILE_FRAGMENTS) {
          yield { name: `<${tag}> ⊃ ${f.name}`, html: carry(tag, '', f.html) };
          yield { name: `${f.name} then <${tag}>`, html: `${f.html}${carry(tag, ' title=after')}` };
        }
    }
    check(cases());
    check(cases(), true);
  });

  it('keeps the mail: tables, formatting, safe CSS, links with target and rel, and text around removed parts', () => {
    const { html } = sanitizeMailHtml(
      '<table border=1 cellpadding="4"><tr><td style="color:#333;padding:4px 8px;margin:0;position:fixed">' +
        '<b>Hi</b> <a href="https://ok.example/x?a=1&amp;b=2" onclick="x()">link</a> ' +
        '<a href="mailto:me@ok.example">mail</a><script>alert(1)</script> after</td></tr></table>',
      opts(),
    );
    expect(html).toBe(
      '<table border="1" cellpadding="4"><tr><td style="color:#333;padding:4px 8px;margin:0">' +
        '<b>Hi</b> <a href="https://ok.example/x?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">link</a> ' +
        '<a href="mailto:me@ok.example" target="_blank" rel="noopener noreferrer">mail</a> after</td></tr></table>',
    );
  });

  it('drops a style block whole, @import and overlay included (no filtered subset is kept)', () => {
    const { html } = sanitizeMailHtml(
      '<style>@import "https://x/y.css"; .a{position:fixed}</style><p class="a">text</p>',
      opts(),
    );
    expect(html).toBe('<p>text</p>');
  });

  it('images: cid through cidUrl (percent-encoded too), unknown cid dropped, remote counted, data only for raster types', () => {
    const mail =
      '<img src="cid:logo@x" alt="l"><img src="CID:logo%40x"><img src="cid:other@x">' +
      '<img src="https://t.example/a.gif"><img src="http://t.example/b.gif"><img src="//t.example/c.gif">' +
      '<img src="data:image/png;base64,iVBORw0KGgo="><img src="data:image/svg+xml;base64,PHN2Zz4=">' +
      '<img src="data:text/html;base64,PHNjcmlwdD4="><img src="/api/v1/users"><img src="x"><img>';
    const blocked = sanitizeMailHtml(mail, opts());
    expect(blocked).toEqual({
      html: `<img src="${INLINE}7" alt="l" /><img src="${INLINE}7" /><img src="data:image/png;base64,iVBORw0KGgo=" />`,
      blockedRemoteImages: 3,
    });
    const shown = sanitizeMailHtml(mail, opts(true));
    expect(shown.blockedRemoteImages).toBe(1); // protocol-relative stays out: it would follow the console's scheme
    expect(shown.html).toContain('<img src="https://t.example/a.gif" />');
    expect(shown.html).toContain('<img src="http://t.example/b.gif" />');
    expect(htmlSafetyProblems(shown.html, { remoteImages: true, inlinePrefix: INLINE })).toEqual([]);
  });

  it('relative and fragment links lose their href (they would point into the console)', () => {
    const { html } = sanitizeMailHtml(
      '<a href="/users">a</a><a href="#x">b</a><a href="//evil.example">c</a>',
      opts(),
    );
    expect(html).not.toContain('href');
  });

  it('never throws on junk', () => {
    const rand = prng(12);
    const pieces = [
      '<',
      '>',
      '"',
      "'",
      '=',
      '/',
      '&',
      '#',
      ';',
      'a',
      'img',
      'svg',
      'script',
      'style',
      ' ',
      'on',
      ':',
      '!--',
      '-->',
      '\u0000',
      'x',
    ];
    for (let i = 0; i < 2000; i++) {
      let s = '';
      for (let j = 0; j < 60; j++) s += pieces[Math.floor(rand() * pieces.length)];
      const out = sanitizeMailHtml(s, opts()).html;
      expect(htmlSafetyProblems(out, { remoteImages: false, inlinePrefix: INLINE }), s).toEqual([]);
    }
  });
});

describe.skipIf(!hasCorpus)('sanitizeMailHtml on every HTML body of the corpus', () => {
  let dir: string;
  let blobs: FileBlobStore;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mailintake-display-'));
    blobs = new FileBlobStore(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the invariants and never throws', async () => {
    const failures: string[] = [];
    let bodies = 0;
    for (const { name, raw } of corpusMails()) {
      if (!/text\/html/i.test(raw.toString('latin1'))) continue;
      let mail: Awaited<ReturnType<typeof parseMail>>;
      try {
        mail = await parseMail(Readable.from([raw]), { blobs });
      } catch (err) {
        if (isMailintakeError(err)) continue; // refused by the parser: never stored, never shown
        throw err;
      }
      if (!mail.html) continue;
      bodies++;
      const cids = new Map(
        mail.attachments.flatMap((a, i) => (a.contentId ? [[a.contentId, i] as const] : [])),
      );
      for (const remoteImages of [false, true]) {
        try {
          const out = sanitizeMailHtml(mail.html, {
            remoteImages,
            cidUrl: (id) => (cids.has(id) ? `${INLINE}${cids.get(id)}` : null),
          });
          const p = htmlSafetyProblems(out.html, { remoteImages, inlinePrefix: INLINE });
          if (p.length > 0) failures.push(`${name}: ${p.slice(0, 5).join('; ')}`);
          if (remoteImages && out.blockedRemoteImages !== 0 && !/src\s*=\s*["']?\s*\/\//i.test(mail.html))
            failures.push(`${name}: ${out.blockedRemoteImages} blocked with images shown`);
        } catch (err) {
          failures.push(`${name}: threw ${String(err)}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(bodies).toBeGreaterThan(20);
  });
});

describe('plainTextToHtml', () => {
  /** What a browser shows as text (br as a newline), and the links, parsed from the output. */
  function read(html: string): { text: string; links: { href: string; text: string }[]; tags: string[] } {
    const links: { href: string; text: string }[] = [];
    const tags: string[] = [];
    let text = '';
    const walk = (nodes: ChildNode[], into: (s: string) => void) => {
      for (const n of nodes) {
        if (n.type === 'text') into(n.data);
        else if (n.type === 'tag') {
          tags.push(n.name);
          if (n.name === 'br') into('\n');
          if (n.name === 'a') {
            let t = '';
            walk(n.children, (s) => {
              t += s;
            });
            links.push({ href: n.attribs.href ?? '', text: t });
            into(t);
            expect(n.attribs.target).toBe('_blank');
            expect(n.attribs.rel).toBe('noopener noreferrer');
          } else walk(n.children, into);
        }
      }
    };
    walk(parseDocument(html, { decodeEntities: true }).children, (s) => {
      text += s;
    });
    return { text, links, tags };
  }

  it('generated text with <, &, quotes and URLs: shown exactly as written, only safe links added', () => {
    const rand = prng(7);
    const pieces = [
      '<',
      '>',
      '&',
      '&amp;',
      '"',
      "'",
      ' ',
      '\n',
      '\r\n',
      'text',
      '<script>alert(1)</script>',
      'https://example.com/a?b=1&c=2',
      'http://x.test/p_(q)',
      '(see https://x.test/y)',
      'https://x.test/z.',
      'mail@example.org',
      'a.b+c@sub.example.org,',
      'javascript:alert(1)',
      'https://"onmouseover=alert(1)',
      '<a href="javascript:x">',
      '.',
      ',',
      ')',
      'ü',
      '&#60;',
    ];
    for (let i = 0; i < 3000; i++) {
      let s = '';
      for (let j = 0; j < 12; j++) s += pieces[Math.floor(rand() * pieces.length)];
      const html = plainTextToHtml(s);
      const { text, links, tags } = read(html);
      expect(text, s).toBe(s.replace(/\r\n?/g, '\n'));
      expect(new Set(tags).size <= 3 && tags.every((t) => ['div', 'br', 'a'].includes(t)), html).toBe(true);
      for (const l of links) {
        expect(l.href, html).toMatch(/^(?:https?:\/\/[^\s"'<>]+|mailto:[^\s"'<>]+)$/);
        expect(l.href.replace(/^mailto:/, ''), html).toBe(l.text);
        expect(l.text, html).not.toMatch(/[.,;:!?'"]$/);
      }
    }
  });

  it('links URLs and addresses, leaves trailing punctuation and unbalanced brackets outside', () => {
    expect(plainTextToHtml('Go to https://example.com/a_(b)). Or write to help@example.org.\nBye')).toBe(
      '<div style="white-space:pre-wrap;overflow-wrap:anywhere">Go to ' +
        '<a href="https://example.com/a_(b)" target="_blank" rel="noopener noreferrer">https://example.com/a_(b)</a>). ' +
        'Or write to <a href="mailto:help@example.org" target="_blank" rel="noopener noreferrer">help@example.org</a>.<br>Bye</div>',
    );
    expect(plainTextToHtml('x <https://a.test/?q=1&r="2"> y')).toBe(
      '<div style="white-space:pre-wrap;overflow-wrap:anywhere">x &lt;' +
        '<a href="https://a.test/?q=1&amp;r=" target="_blank" rel="noopener noreferrer">https://a.test/?q=1&amp;r=</a>' +
        '&quot;2&quot;&gt; y</div>',
    );
  });
});
