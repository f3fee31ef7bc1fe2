import { describe, expect, it } from 'vitest';
import { parsedMail } from '../../test/kit/parsed-mail.js';
import { prng } from '../../test/kit/prng.js';
import { bounceFailure } from './dsn-status.js';

describe('bounceFailure', () => {
  it('reads the DSN Status and the folded Diagnostic-Code', () => {
    const text = [
      'Final-Recipient: rfc822; gone@example.org',
      'Action: failed',
      'Status: 5.1.1',
      'Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected:',
      '    User unknown',
    ].join('\n');
    expect(bounceFailure(parsedMail({ text }))).toEqual({
      status: '5.1.1',
      reason: 'smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown',
    });
  });

  it('takes the refusal line of a non-standard bounce, its enhanced code first', () => {
    const text =
      'Hi. This is the qmail-send program.\n<x@example.org>:\nRemote host said: 552 5.2.2 Mailbox full\n';
    expect(bounceFailure(parsedMail({ text }))).toEqual({
      status: '5.2.2',
      reason: 'Remote host said: 552 5.2.2 Mailbox full',
    });
  });

  it('never gives an empty reason', () => {
    const none = bounceFailure(parsedMail({ text: 'It did not work.', subject: 'Returned mail' }));
    expect(none).toEqual({ status: null, reason: 'the bounce "Returned mail" gives no reason' });
    const exim = bounceFailure(parsedMail({ text: '', headers: { 'x-failed-recipients': 'a@b.c' } }));
    expect(exim.reason).toBe('delivery to a@b.c failed (no reason given)');
  });

  it('hostile bounces (mutated samples, blank runs, 1 MB lines, NULs, lone surrogates): a short reason, never an exception', () => {
    const sample = [
      'Reporting-MTA: dns; mx.example.org',
      'Final-Recipient: rfc822; gone@example.org',
      'Status: 5.1.1',
      'Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected:',
      '    User unknown',
      'Remote host said: 552 5.2.2 Mailbox full',
    ].join('\n');
    const rand = prng(31);
    const pieces = [
      '\n',
      '\r',
      ' ',
      '\t',
      'status:',
      'diagnostic-code:',
      '550 ',
      '5.1.1',
      '\0',
      '\ud800',
      'x',
    ];
    const texts: string[] = [
      // every line start followed by blanks up to the text's end: `^\s*status:` tried each run anew (quadratic)
      '\n'.repeat(200_000),
      '\r'.repeat(200_000),
      ' \r\n\t'.repeat(50_000),
      `Diagnostic-Code:${' '.repeat(1 << 20)}`,
      `${'4'.repeat(1 << 20)} 5.1.1`,
    ];
    for (let i = 0; i < 300; i++) {
      let t = sample;
      for (let s = 1 + Math.floor(rand() * 5); s > 0; s--) {
        const at = Math.floor(rand() * (t.length + 1));
        const piece = pieces[Math.floor(rand() * pieces.length)]!.repeat(1 + Math.floor(rand() * 3000));
        t = rand() < 0.2 ? t.slice(0, at) : t.slice(0, at) + piece + t.slice(at + (rand() < 0.5 ? 1 : 0));
      }
      texts.push(t);
    }
    for (const text of texts) {
      const got = bounceFailure(parsedMail({ text, subject: 'Undelivered' }));
      expect(got.reason.length).toBeGreaterThan(0);
      expect(got.reason.length).toBeLessThanOrEqual(1001);
      if (got.status !== null) expect(got.status).toMatch(/^(?:[245]\.\d{1,3}\.\d{1,3}|[45]\d\d)$/);
    }
  });
});
