import { describe, expect, it } from 'vitest';
import { prng } from '../../test/kit/prng.js';
import { htmlToText, splitReply } from './reply-split.js';

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

describe('splitReply', () => {
  it('folds a top-posted reply’s quote and signature', () => {
    const r = splitReply(
      [
        'Thanks, the printer works again.',
        '',
        'Best regards,',
        'Ada',
        '',
        'On Tue, 3 Mar 2026 at 10:00, Help Desk <help@example.com> wrote:',
        '> Please restart the spooler.',
        '> Kind regards',
      ].join('\n'),
    );
    expect(r).toEqual({
      newPart: 'Thanks, the printer works again.',
      signature: 'Best regards,\nAda',
      quoted:
        'On Tue, 3 Mar 2026 at 10:00, Help Desk <help@example.com> wrote:\n> Please restart the spooler.\n> Kind regards',
      method: 'split',
    });
  });

  it('keeps a bottom-posted answer and folds the list footer', () => {
    const r = splitReply(
      'Bob wrote:\n> Does it boot?\n> \n\nYes, from the floppy.\n\n---\nTo unsubscribe, write to list@example.org',
    );
    expect(r.newPart).toBe('Yes, from the floppy.');
    expect(r.quoted).toBe('Bob wrote:\n> Does it boot?\n>');
    expect(r.signature).toBe('---\nTo unsubscribe, write to list@example.org');
  });

  it.each([
    [
      'Outlook, English',
      'From: Help Desk <help@example.com>\nSent: Monday, 2 March 2026 09:00\nTo: Ada\nSubject: Re: printer',
    ],
    [
      'Outlook, German',
      'Von: Help Desk <help@example.com>\nGesendet: Montag, 2. März 2026 09:00\nAn: Ada\nBetreff: AW: Drucker',
    ],
    [
      'Outlook, French',
      'De : Help Desk [mailto:help@example.com]\nEnvoyé : lundi 2 mars 2026 09:00\nÀ : Ada\nObjet : RE: imprimante',
    ],
    [
      'Outlook with its rule',
      '________________________________\nFrom: Help Desk <help@example.com>\nSent: Monday\nTo: Ada',
    ],
    ['German attribution', 'Am 02.03.2026 um 09:00 schrieb Help Desk <help@example.com>:'],
    ['French attribution', 'Le lun. 2 mars 2026 à 09:00, Help Desk <help@example.com> a écrit :'],
    [
      'attribution wrapped over two lines',
      'On Mon, Mar 2, 2026 at 9:00 AM Help Desk <\nhelp@example.com> wrote:',
    ],
    ['Original Message', '-----Original Message-----'],
    ['Ursprüngliche Nachricht', '-----Ursprüngliche Nachricht-----'],
    ['forward', '---------- Forwarded message ---------'],
  ])('folds everything below a quote header: %s', (_name, header) => {
    const r = splitReply(`It still fails.\n\n${header}\n\nPlease try again.\nThe help desk`);
    expect(r.newPart).toBe('It still fails.');
    expect(norm(r.quoted)).toBe(norm(`${header} Please try again. The help desk`));
    expect(r.method).toBe('split');
  });

  it('keeps the words before a header on the same line', () => {
    const r = splitReply('reply--- On Wed, Apr 4, 2012 at 3:59 PM, me@example.com wrote:\n> Hi');
    expect(r.newPart).toBe('reply');
    expect(r.quoted).toBe('On Wed, Apr 4, 2012 at 3:59 PM, me@example.com wrote:\n> Hi');
  });

  it('shows an inline reply whole: the answers need the questions', () => {
    const text = 'See inline.\n\n> Which printer?\nThe one on floor 2.\n> Since when?\nMonday.';
    expect(splitReply(text)).toEqual({ newPart: text, quoted: '', signature: '', method: 'inline' });
  });

  it('does not take rules that decorate the text for a signature', () => {
    const text = 'Steps:\n=====\n1. open\n2. close\n=====\nResult:\n=====\nit works\nand more';
    expect(splitReply(text)).toEqual({ newPart: text, quoted: '', signature: '', method: 'whole' });
  });

  it('never folds the whole text as a signature unless it is under "-- "', () => {
    expect(splitReply('Regards,\nAda').newPart).toBe('Regards,\nAda');
    expect(splitReply('-- \nAda Lovelace\n\nFrom: x@example.com\nTo: y@example.com\n\nold').newPart).toBe('');
  });

  it('says when there is nothing', () => {
    expect(splitReply({ text: null, html: null })).toEqual({
      newPart: '',
      quoted: '',
      signature: '',
      method: 'empty',
    });
    expect(splitReply('  \n\n ').method).toBe('empty');
  });

  it('splits the text of an HTML-only mail, blockquotes as quotes', () => {
    const html =
      '<html><head><style>p{}</style></head><body><p>Works now &amp; thanks.</p>' +
      '<div>On Mon, Mar 2, 2026 at 9:00 AM Help Desk &lt;help@example.com&gt; wrote:</div>' +
      '<blockquote><p>Restart it.</p></blockquote></body></html>';
    expect(htmlToText(html)).toBe(
      'Works now & thanks.\n\nOn Mon, Mar 2, 2026 at 9:00 AM Help Desk <help@example.com> wrote:\n\n>\n> Restart it.\n>',
    );
    const r = splitReply({ text: null, html });
    expect(r.newPart).toBe('Works now & thanks.');
    expect(r.quoted).toContain('> Restart it.');
  });
});

// ---- Generated inputs ----------------------------------------------------------------------------------------

/** A small deterministic generator (mulberry32), so a failure names its seed. */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const WORDS = [
  'printer',
  'the',
  'invoice',
  'is',
  'broken',
  'since',
  'Monday',
  'please',
  'help',
  'VPN',
  'login',
  'ok',
];
const HEADERS = [
  'On Mon, 2 Mar 2026 at 09:00, Help Desk <help@example.com> wrote:',
  'Le 2 mars 2026 à 09:00, Help Desk <help@example.com> a écrit :',
  'Am 02.03.2026 um 09:00 schrieb Help Desk <help@example.com>:',
  '-----Original Message-----',
  'From: Help Desk <help@example.com>\nSent: Monday\nTo: Ada\nSubject: Re: x',
];
const SIGNATURES = [
  '-- \nAda Lovelace\nAnalytical Engines Ltd',
  'Best regards,\nAda',
  'Sent from my phone',
  '',
];

describe('splitReply on generated replies', () => {
  it('finds the new part of 500 generated top-posted replies', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const rnd = random(seed);
      const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)] as T;
      const sentence = () =>
        Array.from({ length: 3 + Math.floor(rnd() * 8) }, () => pick(WORDS)).join(' ') +
        pick(['.', '?', '!']);
      const paragraphs = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () =>
        Array.from({ length: 1 + Math.floor(rnd() * 3) }, sentence).join('\n'),
      );
      const written = paragraphs.join('\n\n');
      const signature = pick(SIGNATURES);
      const header = pick(HEADERS);
      // The older mail: `>`-quoted, or unmarked below its header (Outlook), one line after the other.
      const marker = rnd() < 0.5 ? '> ' : '';
      const quoted = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => `${marker}${sentence()}`).join(
        '\n',
      );
      const text = [written, signature, header, quoted].filter((p) => p !== '').join('\n\n');
      const r = splitReply(text);
      expect(r.newPart, `seed ${seed}`).toBe(written);
      expect(r.signature, `seed ${seed}`).toBe(signature);
    }
  });

  it('loses no character of 300 generated random texts: new part, quote and signature add up to the body', () => {
    const pieces = [
      '> ',
      '>',
      '-- ',
      '--',
      '---',
      '====',
      'On ',
      ' wrote:',
      'From: a@b',
      'To: c',
      'Sent: d',
      'Regards,',
    ];
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = random(seed);
      const lines = Array.from({ length: Math.floor(rnd() * 40) }, () =>
        Array.from({ length: Math.floor(rnd() * 5) }, () =>
          rnd() < 0.5
            ? (pieces[Math.floor(rnd() * pieces.length)] as string)
            : (WORDS[Math.floor(rnd() * WORDS.length)] as string),
        ).join(rnd() < 0.5 ? ' ' : ''),
      );
      const text = lines.join('\n');
      const r = splitReply(text);
      const chars = (s: string) => [...s.replace(/\s+/g, '')].sort().join('');
      if (r.method === 'inline' || r.method === 'whole') {
        expect(norm(r.newPart), `seed ${seed}`).toBe(norm(text));
      } else {
        // Punctuation-only new parts are dropped (see splitReply): count them back in.
        const dropped = /[\p{L}\p{N}]/u.test(r.newPart) ? '' : text;
        if (dropped === '')
          expect(chars(r.newPart + r.quoted + r.signature), `seed ${seed}`).toBe(chars(text));
      }
    }
  });
});

// ---- Hostile input: each would take minutes to hours with a quadratic pattern -----------------------------------

describe('splitReply on hostile input', () => {
  const big = (line: string, n: number) => Array.from({ length: n }, () => line).join('\n');
  it.each([
    ['100,000 ">" lines', big('>', 100_000)],
    ['100,000 quoted lines under a header', `hi\nOn x wrote:\n${big('> quoted text', 100_000)}`],
    ['one 4 MiB line starting "On "', `On ${'a '.repeat(2 * 1024 * 1024)}`],
    ['one 4 MiB line ending "wrote:"', `${'On a '.repeat(800_000)}wrote:`],
    ['100,000 attribution-like lines', big('reply On Wed, Apr 4, 2012 at 3:59 PM, bob wrote: x', 100_000)],
    ['100,000 "Op …" and "Dnia …" lines', big('Op x schreef y\nDnia z pisze', 50_000)],
    ['100,000 From:/To: lines', big('From: a@example.com', 100_000)],
    ['100,000 rules', big('-- \n====\n___', 33_000)],
    ['100,000 closings', big('Regards,', 100_000)],
    [
      'HTML: 100,000 nested blockquotes',
      `${'<blockquote>'.repeat(100_000)}x${'</blockquote>'.repeat(100_000)}`,
    ],
    ['HTML: an unclosed tag of 4 MiB', `<a ${'b'.repeat(4 * 1024 * 1024)}`],
  ])(
    '%s',
    (_name, input) => {
      const r = input.startsWith('<') ? splitReply({ html: input }) : splitReply(input);
      expect(['whole', 'split', 'inline', 'empty']).toContain(r.method);
    },
    30_000,
  );
});

describe('hostile input', () => {
  const samples = [
    'Thanks!\n\nOn Mon, 1 Jan 2024 at 10:00, Carl <carl@example.com> wrote:\n> question\n> more\n\n-- \nAnna\n',
    'Yes.\n\n-----Original Message-----\nFrom: Carl\nSent: Monday\nTo: Anna\nSubject: x\n\nold text\n',
    '> q1\nanswer 1\n> q2\nanswer 2\n\nBest regards,\nAnna\nSent from my phone\n',
  ];
  const pieces = [
    '\n',
    '\r\n',
    ' ',
    '>',
    '-',
    '_',
    '=',
    'On ',
    ' wrote:',
    'From: a',
    'Sent: b',
    'Regards,',
    '<!--',
    '-->',
    '<a',
    '<blockquote>',
    '&#xd800;',
    '&#0;',
    '\0',
    '\ud800',
  ];

  function mutate(rand: () => number, text: string): string {
    let t = text;
    for (let s = 1 + Math.floor(rand() * 5); s > 0; s--) {
      const at = Math.floor(rand() * (t.length + 1));
      const piece = pieces[Math.floor(rand() * pieces.length)]!.repeat(1 + Math.floor(rand() * 3000));
      t = rand() < 0.15 ? t.slice(0, at) : t.slice(0, at) + piece + t.slice(at + (rand() < 0.5 ? 1 : 0));
    }
    return t;
  }

  it('mutated replies, as text and as HTML: every line ends up in one part, never more than came in', () => {
    const rand = prng(1312);
    for (let round = 0; round < 300; round++) {
      const text = mutate(rand, samples[round % samples.length]!);
      const asText = splitReply(text);
      const parts = asText.newPart.length + asText.quoted.length + asText.signature.length;
      expect(parts).toBeLessThanOrEqual(text.length);
      const html = `<div>${text.replace(/\n/g, '<br>')}</div>`;
      const fromHtml = htmlToText(html);
      // at most a block tag's line break and 20 quote marks (41 characters) for each tag of 3 or more
      expect(fromHtml.length).toBeLessThanOrEqual(14 * html.length);
      expect(splitReply({ html }).method).not.toBe(undefined);
    }
  });

  it('HTML of 1 MB of unclosed comments or tags is read in linear time', () => {
    // one pattern for tags and comments scanned to its bound (4,000 / 100,000 characters) from every `<a` and
    // `<!--` without an end in reach: 10^10 steps for the comments, most of an hour
    const comments = `<p>before</p>${'<!--'.repeat(1 << 18)}`;
    expect(htmlToText(comments)).toBe(`before\n${'<!--'.repeat(1 << 18)}`);
    const opens = `<p>before</p>${'<a'.repeat(1 << 19)}`;
    expect(htmlToText(opens)).toBe(`before\n${'<a'.repeat(1 << 19)}`);
    // a comment that does close is still one, however many unclosed tags before it
    const late = `${'<a'.repeat(1 << 18)}\n${'x'.repeat(5000)}<!-- hidden -->y`;
    expect(htmlToText(late)).toBe(`${'<a'.repeat(1 << 18)} ${'x'.repeat(5000)}y`);
  });
});
