import { describe, expect, it } from 'vitest';
import { prng } from '../../test/kit/prng.js';
import { HTML_TEXT_CHARS, htmlSearchText, REQUESTER_FILTER_CHARS, requesterNorm } from './search-text.js';

describe('the text of an HTML-only body, for the search', () => {
  it('keeps the words, decodes entities, and leaves tags, attributes, styles and scripts out', () => {
    expect(
      htmlSearchText(
        null,
        '<style>.zebra{}</style><p class="wobble">caf&eacute;&nbsp;<b>bold</b>er &amp; 1 &lt; 2</p>' +
          '<script>narwhal()</script><div>two</div><div>words</div>',
      ),
    ).toBe('café bold er & 1 < 2 two words');
  });
  it('is null when the mail has a text body or no HTML', () => {
    expect(htmlSearchText('text', '<p>html</p>')).toBeNull();
    expect(htmlSearchText('', null)).toBeNull();
    expect(htmlSearchText('  ', '<p></p>')).toBeNull();
    expect(htmlSearchText(null, '<p>x</p>')).toBe('x');
  });
  it(`keeps at most ${HTML_TEXT_CHARS} characters, whatever the HTML`, () => {
    const rand = prng(7);
    const tags = [
      '<p>',
      '</p>',
      '<b>',
      '<!--',
      '-->',
      '<',
      '>',
      '&',
      '&amp;',
      '"',
      "'",
      ' ',
      'word',
      '\u0000',
    ];
    for (let run = 0; run < 50; run++) {
      let html = '';
      while (html.length < 1000) html += tags[Math.floor(rand() * tags.length)];
      const text = htmlSearchText(null, html);
      expect(text === null || !/<p>|<b>/.test(text), html).toBe(true);
    }
    const long = htmlSearchText(null, `<p>${'long '.repeat(HTML_TEXT_CHARS)}</p>`);
    expect(long?.length).toBe(HTML_TEXT_CHARS);
  });
});

describe("the requester's address as the filter compares it", () => {
  it('lower-cases every script and composes accents', () => {
    expect(requesterNorm('ÄNNE@EXÄMPLE.ORG')).toBe('änne@exämple.org');
    expect(requesterNorm('A\u0308NNE@example.org')).toBe('änne@example.org');
    expect(requesterNorm('ΣΟΦΙΑ@example.gr')).toBe(requesterNorm('σοφια@EXAMPLE.GR'));
  });
  it(`is null for no address and for one longer than a filter (${REQUESTER_FILTER_CHARS})`, () => {
    expect(requesterNorm(null)).toBeNull();
    expect(requesterNorm('')).toBeNull();
    expect(requesterNorm(`${'x'.repeat(REQUESTER_FILTER_CHARS)}@example.test`)).toBeNull();
  });
});
