import { describe, expect, it } from 'vitest';
import { parsedMail } from '../../test/kit/parsed-mail.js';
import { prng } from '../../test/kit/prng.js';
import {
  ccParticipants,
  decideRequester,
  firstAddress,
  forwardFacts,
  isNoReplyAddress,
  type RequesterFacts,
  usableAddress,
} from './requester.js';

const none: RequesterFacts = { formSenders: [], fromIsUser: false, forwardedHead: null };

describe('usableAddress', () => {
  it('takes plain addresses and refuses garbage', () => {
    for (const ok of ['a@b.c', 'ann.lee+x@example.co.uk', 'j@localhost', 'ü@bücher.de'])
      expect(usableAddress(ok), ok).toBe(true);
    for (const bad of [
      '',
      'garbage',
      '@b.c',
      'a@',
      'a b@c.d',
      'a@b..c',
      '<a@b.c>',
      'a@-b.c',
      '.a@b.c',
      'a@b@c',
    ])
      expect(usableAddress(bad), bad).toBe(false);
  });
});

describe('firstAddress', () => {
  it('reads the forms mail clients write', () => {
    expect(firstAddress('"Lee, Ann" <Ann@Example.com>')).toEqual({
      address: 'ann@example.com',
      name: 'Lee, Ann',
    });
    expect(firstAddress('Ann Lee [mailto:ann@example.com]')?.address).toBe('ann@example.com');
    expect(firstAddress('=?UTF-8?Q?J=C3=BCrgen?= <j@x.de>')).toEqual({ address: 'j@x.de', name: 'Jürgen' });
    expect(firstAddress('Team: a@b.c, d@e.f;')?.address).toBe('a@b.c');
    expect(firstAddress('undisclosed-recipients:;')).toBeNull();
    expect(firstAddress('<>')).toBeNull();
    expect(firstAddress('garbage')).toBeNull();
  });
});

describe('decideRequester', () => {
  it('takes Reply-To for a form sender, exact or by domain pattern', () => {
    const rand = prng(13);
    for (let i = 0; i < 50; i++) {
      const domain = `forms${Math.floor(rand() * 1000)}.example`;
      const sender = `no-reply@${domain}`;
      const customer = `c${i}@customer.example`;
      const formSenders = rand() < 0.5 ? [sender] : [`*@${domain}`];
      const d = decideRequester(
        parsedMail({ from: { address: sender, name: 'Form' }, replyTo: [{ address: customer, name: 'C' }] }),
        { ...none, formSenders },
      );
      expect(d.requester?.address).toBe(customer);
      expect(d.via).toBe('reply-to');
      expect(d.reasons[0]).toContain('form sender');
    }
  });

  it('keeps From when the sender is not a form sender, even with Reply-To', () => {
    const d = decideRequester(parsedMail({ replyTo: [{ address: 'other@example.com', name: '' }] }), {
      ...none,
      formSenders: ['no-reply@forms.example'],
    });
    expect(d).toEqual({ requester: { address: 'ann@example.com', name: 'Ann' }, via: 'from', reasons: [] });
  });

  it('a form sender without Reply-To stays the requester, with a reason', () => {
    const d = decideRequester(parsedMail({ from: { address: 'no-reply@forms.example', name: '' } }), {
      ...none,
      formSenders: ['no-reply@forms.example'],
    });
    expect(d.requester?.address).toBe('no-reply@forms.example');
    expect(d.reasons[0]).toContain('no usable Reply-To');
  });

  const tech = { address: 'tech@help.example', name: 'Tech' };
  const forwards: [string, Partial<Parameters<typeof parsedMail>[0]>, string | null][] = [
    [
      'Gmail inline',
      {
        subject: 'Fwd: Printer',
        text: 'see below\n\n---------- Forwarded message ---------\nFrom: Carl Customer <carl@customer.example>\nDate: Mon, 1 Jan 2024\nSubject: Printer\nTo: tech@help.example\n\nIt burns',
      },
      null,
    ],
    [
      'Outlook inline',
      {
        subject: 'WG: Printer',
        text: 'FYI\n\n-----Original Message-----\nFrom: Carl Customer [mailto:carl@customer.example]\nSent: Monday, January 1, 2024 10:00\nTo: Tech\nSubject: Printer\n\nIt burns',
      },
      null,
    ],
    [
      'Outlook block without marker',
      {
        subject: 'FW: Printer',
        text: 'FYI\n________________________________\nFrom: Carl Customer <carl@customer.example>\nSent: Monday, January 1, 2024 10:00\nTo: Tech\nSubject: Printer\n',
      },
      null,
    ],
    [
      'attached message/rfc822',
      { subject: 'Printer' },
      'From: "Carl Customer" <carl@customer.example>\r\nSubject: Printer\r\n',
    ],
  ];
  for (const [name, over, head] of forwards) {
    it(`a technician's forward (${name}) opens the request for the original sender`, () => {
      const d = decideRequester(parsedMail({ from: tech, ...over }), {
        ...none,
        fromIsUser: true,
        forwardedHead: head,
      });
      expect(d.requester?.address).toBe('carl@customer.example');
      expect(d.via).toBe('forward');
      expect(d.reasons[0]).toContain('forwarded by the technician tech@help.example');
    });
    it(`the same forward from someone who is not a user keeps From (${name})`, () => {
      const d = decideRequester(parsedMail({ from: tech, ...over }), { ...none, forwardedHead: head });
      expect(d.requester?.address).toBe('tech@help.example');
    });
  }

  it('a technician forward naming nobody keeps the technician, with a reason', () => {
    const d = decideRequester(parsedMail({ from: tech, subject: 'Fwd: something', text: 'no block here' }), {
      ...none,
      fromIsUser: true,
    });
    expect(d.requester?.address).toBe('tech@help.example');
    expect(d.via).toBe('technician');
    expect(d.reasons[0]).toContain('names no usable original sender');
  });

  it('a technician writing (not forwarding) stays the requester without a note', () => {
    const d = decideRequester(parsedMail({ from: tech, subject: 'Printer', text: 'Hi' }), {
      ...none,
      fromIsUser: true,
    });
    expect(d).toEqual({ requester: tech, via: 'from', reasons: [] });
  });

  // Every combination of a broken From with the fallbacks present or not: the first usable one wins, in order,
  // and there is always a reason when From is not the requester.
  const brokenFroms: [string, string | undefined][] = [
    ['garbage', 'garbage'],
    ['missing', undefined],
    ['group syntax', 'undisclosed-recipients:;'],
    ['empty', ''],
    ['null', '<>'],
  ];
  const senders = [undefined, 'garbage', 'Ops <ops@company.example>'];
  const replyTos = [[], [{ address: 'nonsense', name: '' }], [{ address: 'rt@company.example', name: 'RT' }]];
  const returnPaths = [undefined, '<>', '<bounce@company.example>'];
  for (const [fromName, rawFrom] of brokenFroms) {
    it(`a broken From (${fromName}) falls back Sender → Reply-To → Return-Path, in every combination`, () => {
      for (const sender of senders)
        for (const replyTo of replyTos)
          for (const returnPath of returnPaths) {
            const headers: Record<string, string> = {};
            if (rawFrom !== undefined) headers.from = rawFrom;
            if (sender !== undefined) headers.sender = sender;
            if (returnPath !== undefined) headers['return-path'] = returnPath;
            const d = decideRequester(parsedMail({ from: null, replyTo, headers }), none);
            const expected = sender?.includes('@')
              ? ['ops@company.example', 'sender']
              : replyTo[0]?.address.includes('@')
                ? ['rt@company.example', 'reply-to']
                : returnPath?.includes('@')
                  ? ['bounce@company.example', 'return-path']
                  : [null, null];
            expect([d.requester?.address ?? null, d.via]).toEqual(expected);
            expect(d.reasons).toHaveLength(1);
            expect(d.reasons[0]).toMatch(
              d.requester
                ? /^requester \S+ from (Sender|Reply-To|Return-Path): /
                : /^no usable sender address: /,
            );
            if (rawFrom === undefined) expect(d.reasons[0]).toContain('the mail has no From');
          }
    });
  }
});

describe('forwardFacts', () => {
  it('sees no forward in an ordinary mail', () => {
    expect(forwardFacts(parsedMail(), null)).toEqual({ signal: null, original: null });
  });
  it('prefers the attached part over an inline block', () => {
    const f = forwardFacts(
      parsedMail({ text: '---------- Forwarded message ---------\nFrom: x@inline.example\n' }),
      'From: y@part.example\r\n',
    );
    expect(f.original?.address.address).toBe('y@part.example');
  });
});

describe('ccParticipants', () => {
  it('drops our own addresses, the requester, duplicates and garbage', () => {
    const rand = prng(7);
    const own = new Set(['help@example.com', 'support@example.com']);
    for (let i = 0; i < 50; i++) {
      const pool = [
        'help@example.com',
        'support@example.com',
        'ann@example.com',
        'bob@example.com',
        'Carl@Example.com',
        'garbage',
        'dee@example.org',
      ];
      const cc = pool.filter(() => rand() < 0.6).map((address) => ({ address, name: '' }));
      const { participants } = ccParticipants(parsedMail({ cc: [...cc, ...cc] }), own, ['ann@example.com']);
      const got = participants.map((p) => p.address);
      expect(new Set(got).size).toBe(got.length);
      for (const a of got) {
        expect(own.has(a)).toBe(false);
        expect(a).not.toBe('ann@example.com');
        expect(a).toContain('@');
      }
      const expected = cc
        .map((c) => c.address.toLowerCase())
        .filter(
          (a, j, all) => all.indexOf(a) === j && a.includes('@') && !own.has(a) && a !== 'ann@example.com',
        );
      expect(got).toEqual(expected);
    }
  });
});

describe('isNoReplyAddress', () => {
  it('recognises no-reply-style local parts, generated', () => {
    const words = [
      'noreply',
      'no-reply',
      'no_reply',
      'no.reply',
      'do-not-reply',
      'donotreply',
      'dont-reply',
      'bounce',
      'bounces',
    ];
    for (const word of words)
      for (const variant of [word, word.toUpperCase(), `${word}+x123`, `team-${word}`, `${word}.eu`])
        expect(isNoReplyAddress(`${variant}@example.com`), variant).toBe(true);
    for (const machine of ['mailer-daemon', 'MAILER-DAEMON', 'postmaster', 'listserv', 'majordomo'])
      expect(isNoReplyAddress(`${machine}@example.com`), machine).toBe(true);
    for (const person of [
      'ann',
      'noreen',
      'replyhelp',
      'bouncer.castle',
      'post',
      'master',
      'postmaster-jane',
      'renoreply',
    ])
      expect(isNoReplyAddress(`${person}@example.com`), person).toBe(false);
  });
});

describe('hostile forwards and sender headers', () => {
  const tech = { address: 'tech@help.example', name: 'Tech' };
  const bodies = [
    'FYI\n\n-----Original Message-----\nFrom: Carl Customer [mailto:carl@customer.example]\nSent: Monday\nTo: Tech\n\nIt burns',
    'FYI\n________________________________\nFrom: Carl Customer <carl@customer.example>\nSent: Monday\nTo: Tech\n',
    'see below\n\n---------- Forwarded message ---------\nFrom: =?utf-8?q?Carl_C=C3=BCstomer?= <carl@customer.example>\nDate: Mon\n',
  ];
  const pieces = [
    ' ',
    '\t',
    '\n',
    '\r\n',
    'From:',
    '*',
    '[mailto:',
    ']',
    '<',
    '>',
    '"',
    '(',
    ':',
    ',',
    '@',
    '=?utf-8?q?',
    '?=',
    '\0',
    '\ud800',
    'Sent:',
  ];

  function mutate(rand: () => number, text: string): string {
    let t = text;
    for (let s = 1 + Math.floor(rand() * 5); s > 0; s--) {
      const at = Math.floor(rand() * (t.length + 1));
      const piece = pieces[Math.floor(rand() * pieces.length)]!.repeat(1 + Math.floor(rand() * 2000));
      t = rand() < 0.15 ? t.slice(0, at) : t.slice(0, at) + piece + t.slice(at + (rand() < 0.5 ? 1 : 0));
    }
    return t;
  }

  it('mutated forwards and sender headers: a usable requester or none, with bounded reasons, never an exception', () => {
    const rand = prng(4711);
    for (let round = 0; round < 400; round++) {
      const text = mutate(rand, bodies[round % bodies.length]!);
      const head =
        round % 3 === 0 ? mutate(rand, 'From: "Carl" <carl@customer.example>\r\nSubject: x\r\n') : null;
      const header = mutate(rand, 'Carl Customer [mailto:carl@customer.example]');
      const d = decideRequester(
        parsedMail({
          from: round % 2 ? tech : null,
          subject: mutate(rand, 'Fwd: Printer'),
          text,
          headers: { from: header, sender: header, 'return-path': header },
        }),
        { ...none, fromIsUser: true, forwardedHead: head },
      );
      if (d.requester) expect(usableAddress(d.requester.address)).toBe(true);
      for (const r of d.reasons) expect(r.length).toBeLessThanOrEqual(2000);
      expect(d.reasons.length + (d.via === 'from' ? 1 : 0)).toBeGreaterThan(0);
    }
  });

  it('values of 1 MB shaped to backtrack are read in linear time', () => {
    // `[mailto:` over and over without `]`: the address pattern scanned to the end from each one (quadratic)
    expect(firstAddress(`${'[mailto:'.repeat(1 << 17)}x <a@b.example>`)?.address).toBe('a@b.example');
    // `From:` and blanks: the Outlook block pattern split the blanks three ways before failing (cubic)
    const blanks = forwardFacts(parsedMail({ subject: 'Fwd: x', text: `From:${' '.repeat(1 << 20)}` }), null);
    expect(blanks).toEqual({ signal: 'its subject "Fwd: x"', original: null });
    const block = forwardFacts(
      // (the body is read up to 200,000 characters)
      parsedMail({ text: `From: * ${' '.repeat(150_000)}carl@customer.example\nSent: Monday\n` }),
      null,
    );
    expect(block.original?.address.address).toBe('carl@customer.example');
  });

  it('a marker line of 150,000 dashes is quoted in the reason only in part', () => {
    const text = `${'-'.repeat(150_000)} Forwarded message -----\nFrom: carl@customer.example\n`;
    const f = forwardFacts(parsedMail({ text }), null);
    expect(f.original?.address.address).toBe('carl@customer.example');
    expect(f.signal!.length).toBeLessThanOrEqual(200);
  });

  it('a NUL in a forwarded name, raw or encoded, is never passed on (PostgreSQL refuses it in a text column)', () => {
    const head = 'From: "Carl\0 =?utf-8?q?C=00?=" <carl@customer.example>\r\n';
    const inline =
      '---------- Forwarded message ---------\nFrom: =?utf-8?q?Carl=00?= [mailto:carl@customer.example]\n';
    for (const [text, forwardedHead] of [
      ['FYI', head],
      [inline, null],
    ] as const) {
      const d = decideRequester(parsedMail({ from: tech, subject: 'Fwd: x', text }), {
        ...none,
        fromIsUser: true,
        forwardedHead,
      });
      expect(d.requester?.address).toBe('carl@customer.example');
      expect(d.requester?.name).toContain('\ufffd');
      expect(d.requester?.name).not.toContain('\0');
    }
  });
});
