import { describe, expect, it } from 'vitest';
import { hasCorpus } from '../../test/kit/corpus.js';
import {
  corpusCases,
  describeScore,
  libraryCases,
  type Score,
  score,
  splitters,
} from '../../test/kit/reply-split-figures.js';

/*
 * The figures README quotes for the new part of a reply (definitions in test/kit/reply-split-figures.ts):
 *   npx vitest run --config vitest.unit.config.ts src/mail/reply-split-figures.test.ts
 * The libraries (email-reply-parser, planer) are dev dependencies, measured on the same cases.
 */
/** Every splitter on the cases, printed; our own splitter's score, which the floors are checked on. */
async function measure(title: string, cases: Parameters<typeof score>[0]): Promise<Score> {
  let ours: Score | undefined;
  const lines = [`[reply-split] ${title} (${cases.length} cases)`];
  for (const [name, split] of Object.entries(await splitters())) {
    if (typeof split === 'string') {
      lines.push(`${name}: ${split}`);
      continue;
    }
    const s = score(cases, split);
    lines.push(`${name}: ${describeScore(s)}; misses: ${s.misses.join(' ')}`);
    if (name.includes('ours')) ours = s;
  }
  console.log(lines.join('\n  '));
  if (!ours) throw new Error('our own splitter was not measured');
  return ours;
}

describe('the new part of a reply, measured', () => {
  it('on the libraries’ own test cases', async () => {
    const ours = await measure('library fixtures', libraryCases());
    expect(ours.exact / ours.mails).toBeGreaterThanOrEqual(0.85);
    expect(ours.linesShownRight / ours.linesShown).toBeGreaterThanOrEqual(0.95);
  });

  it.skipIf(!hasCorpus)(
    'on 30 hand-labelled mails of the corpus',
    async () => {
      const cases = await corpusCases();
      expect(cases.length).toBe(30);
      const ours = await measure('corpus, hand-labelled', cases);
      expect(ours.exact / ours.mails).toBeGreaterThanOrEqual(0.8);
      expect(ours.linesShownRight / ours.linesShown).toBeGreaterThanOrEqual(0.95);
    },
    120_000,
  );
});
