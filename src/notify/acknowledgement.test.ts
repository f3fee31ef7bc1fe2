import { describe, expect, it } from 'vitest';
import { parsedMail } from '../../test/kit/parsed-mail.js';
import { prng } from '../../test/kit/prng.js';
import { acknowledgementRefusal, acknowledgementSubject } from './acknowledgement.js';

const own = new Set(['support@example.test', 'help@example.test']);
const ann = { address: 'ann@example.com', name: 'Ann' };

describe('acknowledgementRefusal', () => {
  it('lets a person’s plain mail be acknowledged', () => {
    expect(acknowledgementRefusal(parsedMail(), ann, null, own, null)).toBeNull();
  });

  it('refuses each kind of mail nobody should answer, whatever else the mail holds (generated)', () => {
    const rand = prng(11);
    const refusals: [
      string,
      (m: ReturnType<typeof parsedMail>) => Parameters<typeof acknowledgementRefusal>,
      RegExp,
    ][] = [
      ['machine', (m) => [m, ann, 'auto-reply', own, null], /machine's \(auto-reply\)/],
      ['no requester', (m) => [m, null, null, own, null], /no requester address/],
      [
        'List-Id',
        (m) => [{ ...m, headers: { ...m.headers, 'list-id': '<l.example>' } }, ann, null, own, null],
        /List-Id/,
      ],
      [
        'List-Unsubscribe',
        (m) => [
          { ...m, headers: { ...m.headers, 'list-unsubscribe': '<mailto:u@x>' } },
          ann,
          null,
          own,
          null,
        ],
        /List-Unsubscribe/,
      ],
      [
        'Precedence',
        (m) => [{ ...m, headers: { ...m.headers, precedence: ' Junk ' } }, ann, null, own, null],
        /Precedence: junk/,
      ],
      ['flagged', (m) => [m, ann, null, own, 'loop-suspect: X-Loop: x'], /flagged as sent by a machine/],
      [
        'own',
        (m) => [m, { address: 'Help@example.test', name: '' }, null, own, null],
        /our own mailbox addresses/,
      ],
      [
        'no-reply',
        (m) => [m, { address: 'no-reply@shop.example', name: '' }, null, own, null],
        /no-reply-style/,
      ],
    ];
    for (let i = 0; i < 200; i++) {
      const subject = rand() < 0.5 ? 'Question' : 'Re: ##12## Question';
      const [name, args, reason] = refusals[Math.floor(rand() * refusals.length)]!;
      expect(acknowledgementRefusal(...args(parsedMail({ subject }))), name).toMatch(reason);
    }
  });
});

describe('acknowledgementSubject', () => {
  it('always carries ##id##, one line, filled once', () => {
    expect(acknowledgementSubject('Got it ##{{id}}##', 7, 'x', 'Ann')).toBe('Got it ##7##');
    expect(acknowledgementSubject('Got it: {{subject}}', 7, 'Printer\r\nBcc: x@y.z', 'Ann')).toBe(
      'Got it: Printer Bcc: x@y.z ##7##',
    );
    expect(acknowledgementSubject('{{subject}}', 9, '', 'Ann')).toBe('(no subject) ##9##');
    expect(acknowledgementSubject('{{subject}}', 9, 'about {{id}}', 'Ann')).toBe('about {{id}} ##9##');
  });
});
