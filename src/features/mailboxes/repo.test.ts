import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseMailboxInput } from '../../connectors/settings.js';
import { SecretBox } from '../../kernel/secret-box.js';
import { mailboxColumns, settingsOf, storedSettings } from './repo.js';

const box = new SecretBox(crypto.randomBytes(32));

describe('a mailbox row decoded one way (features/mailboxes/repo.ts)', () => {
  it('gives back the settings it stored, the secrets sealed apart', () => {
    const settings = parseMailboxInput({
      name: 'support',
      protocol: 'imaps',
      server: 'mail.example.com',
      username: 'support@example.com',
      password: 'hunter2',
      emailAddress: 'support@example.com',
    });
    const columns = mailboxColumns(box, settings, 1);
    expect(columns.settings).not.toContain('hunter2');
    const row = { id: 4, settings: columns.settings, secrets: columns.secrets };
    // `enabled` is a column of its own (the mailbox's state), not a setting
    const { enabled: _enabled, ...stored } = settings;
    expect(settingsOf(box, row)).toEqual(stored);
    expect(storedSettings(row)).not.toHaveProperty('password');
  });

  it('rows saved before OAuth existed have no `auth`: Graph used its token, everything else a password', () => {
    const legacy = (protocol: string) => ({
      id: 1,
      settings: JSON.stringify({ name: 'old', protocol, intervalSeconds: 60 }),
    });
    expect(storedSettings(legacy('graph')).auth).toBe('token');
    expect(storedSettings(legacy('imap')).auth).toBe('password');
  });

  it('a damaged row is a coded error naming the row and column, not a crash in whatever reads it', () => {
    expect(() => storedSettings({ id: 9, settings: '{"name":"x"}' })).toThrowError(
      'the stored mailboxes.settings of row 9 does not have the expected shape at protocol',
    );
    expect(() =>
      settingsOf(box, {
        id: 9,
        settings: '{"name":"x","protocol":"imap","intervalSeconds":60}',
        secrets: box.seal('[]'),
      }),
    ).toThrowError(/mailboxes\.secrets of row 9/);
  });
});
