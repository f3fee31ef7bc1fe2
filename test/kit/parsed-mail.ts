import type { ParsedMail } from '../../src/mail/types.js';

/** A parsed mail from a person (Ann, to the help desk), with only what a test changes given. */
export function parsedMail(overrides: Partial<ParsedMail> = {}): ParsedMail {
  return {
    messageId: 'new@example.com',
    inReplyTo: [],
    references: [],
    subject: 'Printer on fire',
    from: { address: 'ann@example.com', name: 'Ann' },
    to: [{ address: 'help@example.com', name: '' }],
    cc: [],
    replyTo: [],
    date: '2024-01-01T00:00:00.000Z',
    text: 'Help',
    html: null,
    attachments: [],
    headers: {},
    contentHash: '0'.repeat(64),
    size: 100,
    ...overrides,
  };
}
