import { describe, expect, it } from 'vitest';
import { hasCorpus } from '../../test/kit/corpus.js';
import { corpusFigures, percent } from '../../test/kit/machine-figures.js';

/*
 * The figures README quotes, over the real corpus (../shared/corpus): print them with
 *   npx vitest run --config vitest.unit.config.ts src/mail/machine-corpus.test.ts
 */
describe.skipIf(!hasCorpus)('machineKind over the corpus', () => {
  it('recognises >= 97 % of sisimai bounces, >= 95 % of its auto-replies, and reads no other mail as a bounce', async () => {
    const f = await corpusFigures();
    console.log(
      [
        `[machine-corpus] bounces recognised: ${f.bouncesFound}/${f.bounces} (${percent(f.bouncesFound, f.bounces)})`,
        `bounces naming the reported mail's Message-ID: ${f.bouncesNamingMail}/${f.bouncesFound}`,
        `auto-replies recognised: ${f.autoRepliesFound}/${f.autoReplies} (${percent(f.autoRepliesFound, f.autoReplies)})`,
        `non-bounces read as bounces: ${f.misreadAsBounce.length}/${f.nonBounces}`,
        `non-bounces read as auto-replies: ${f.readAsAutoReply.length}/${f.nonBounces} ${f.readAsAutoReply.join(' ')}`,
        `unlabelled sisimai mails: ${[...f.unlabelled].map(([k, n]) => `${k} ${n}`).join(', ')}`,
        `missed bounces: ${f.missedBounces.join(' ')}`,
      ].join('\n  '),
    );
    expect(f.bounces).toBeGreaterThan(500);
    expect(f.bouncesFound / f.bounces).toBeGreaterThanOrEqual(0.97);
    expect(f.autoReplies).toBeGreaterThan(0);
    expect(f.autoRepliesFound / f.autoReplies).toBeGreaterThanOrEqual(0.95);
    expect(f.nonBounces).toBeGreaterThan(100);
    expect(f.misreadAsBounce).toEqual([]);
    expect(f.unparsed).toBe(0);
  }, 300_000);
});
