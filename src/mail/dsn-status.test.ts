import { describe, expect, it } from 'vitest';
import { parsedMail } from '../../test/kit/parsed-mail.js';
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
});
