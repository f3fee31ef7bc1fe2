import { describe, expect, it } from 'vitest';
import { fts5Query, MAX_SEARCH_TERMS, searchTerms } from './request-search.js';

describe('search queries are words, never syntax', () => {
  it('cuts at white space and drops words without a letter or digit', () => {
    expect(searchTerms('  printer   jam\tNEAR( * - : " x ')).toEqual(['printer', 'jam', 'NEAR(', 'x']);
    expect(searchTerms('"" * - : ( )')).toEqual([]);
    expect(searchTerms('écran 42')).toEqual(['écran', '42']);
  });
  it('turns controls (NUL among them) into white space', () => {
    expect(searchTerms('a\u0000b\u0085c')).toEqual(['a', 'b', 'c']);
  });
  it(`uses at most ${MAX_SEARCH_TERMS} words`, () => {
    expect(searchTerms(Array.from({ length: 40 }, (_, i) => `w${i}`).join(' '))).toHaveLength(
      MAX_SEARCH_TERMS,
    );
  });
  it('quotes every word for FTS5, doubling its quotes, all required', () => {
    expect(fts5Query(['say"hi', 'NEAR(a', 'x*'])).toBe('"say""hi" AND "NEAR(a" AND "x*"');
  });
});
