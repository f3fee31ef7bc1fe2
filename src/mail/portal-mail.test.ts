import { describe, expect, it } from 'vitest';
import { prng } from '../../test/kit/prng.js';
import {
  ACK_PLACEHOLDERS,
  DEFAULT_PORTAL_MAIL_SETTINGS,
  fillTemplate,
  isFormSender,
  mergePortalMailSettings,
  resolvePortalMailSettings,
  unknownPlaceholders,
} from './portal-mail.js';

/** The INVALID_SETTINGS fields of what `run` throws. */
function fieldsOf(run: () => unknown): { field: string; message: string }[] {
  try {
    run();
  } catch (err) {
    expect(err).toMatchObject({ code: 'INVALID_SETTINGS' });
    return (err as { details: { fields: { field: string; message: string }[] } }).details.fields;
  }
  throw new Error('nothing was refused');
}

describe('portal mail settings', () => {
  it('defaults: acknowledgement off, CC participants on, 20 new requests per sender per hour', () => {
    expect(resolvePortalMailSettings({})).toEqual(DEFAULT_PORTAL_MAIL_SETTINGS);
    expect(DEFAULT_PORTAL_MAIL_SETTINGS).toMatchObject({
      ccParticipants: true,
      acknowledgement: { enabled: false, perSenderPerHour: 5 },
      rateLimit: { maxRequests: 20, windowMinutes: 60 },
    });
  });

  it('names every bad field with why, and takes nothing', () => {
    const fields = fieldsOf(() =>
      resolvePortalMailSettings({
        formSenders: ['ok@forms.example', 'not an address'],
        ccParticipants: 'yes',
        acknowledgement: { subject: 'Hi {{name}} ##{{id}}##', body: '', perSenderPerHour: 0 },
        rateLimit: { maxRequests: -1, windowMinutes: 1.5 },
        colour: 'blue',
      }),
    );
    const named = Object.fromEntries(fields.map((f) => [f.field, f.message]));
    expect(Object.keys(named).sort()).toEqual(
      [
        'acknowledgement.body',
        'acknowledgement.perSenderPerHour',
        'acknowledgement.subject',
        'ccParticipants',
        'formSenders',
        'mailSettings',
        'rateLimit.maxRequests',
        'rateLimit.windowMinutes',
      ].sort(),
    );
    expect(named['acknowledgement.subject']).toBe(
      'unknown placeholder {{name}}; use {{id}}, {{subject}}, {{requester}}',
    );
    expect(named.formSenders).toContain('*@domain');
    expect(named.mailSettings).toContain('colour');
  });

  it('refuses a multi-line subject (it would start headers of its own)', () => {
    expect(
      fieldsOf(() => resolvePortalMailSettings({ acknowledgement: { subject: 'a\r\nBcc: x@y.z' } })),
    ).toEqual([{ field: 'acknowledgement.subject', message: 'the subject is one line' }]);
  });

  it('merges a patch group by group; null restores a field or a group; only set fields are stored', () => {
    let stored = mergePortalMailSettings({}, { acknowledgement: { enabled: true } });
    expect(stored).toEqual({ acknowledgement: { enabled: true } });
    stored = mergePortalMailSettings(stored, { acknowledgement: { subject: 'Re ##{{id}}##' } });
    expect(resolvePortalMailSettings(stored).acknowledgement).toMatchObject({
      enabled: true,
      subject: 'Re ##{{id}}##',
    });
    stored = mergePortalMailSettings(stored, {
      acknowledgement: { enabled: null },
      rateLimit: { maxRequests: 0 },
    });
    expect(stored).toEqual({ acknowledgement: { subject: 'Re ##{{id}}##' }, rateLimit: { maxRequests: 0 } });
    stored = mergePortalMailSettings(stored, { acknowledgement: null });
    expect(stored).toEqual({ rateLimit: { maxRequests: 0 } });
    expect(() => mergePortalMailSettings(stored, { rateLimit: 'lots' })).toThrow(/rateLimit/);
  });

  it('form senders match exactly or by *@domain, any case, over generated addresses', () => {
    const rand = prng(3);
    for (let i = 0; i < 200; i++) {
      const domain = `d${Math.floor(rand() * 5)}.example`;
      const local = `u${Math.floor(rand() * 5)}`;
      const address = rand() < 0.5 ? `${local}@${domain}` : `${local}@${domain}`.toUpperCase();
      expect(isFormSender(address, [`*@d1.example`])).toBe(domain === 'd1.example');
      expect(isFormSender(address, ['u2@d3.example'])).toBe(local === 'u2' && domain === 'd3.example');
      expect(isFormSender(address, [`*@sub.${domain}`])).toBe(false);
    }
  });

  it('fills placeholders once: a subject holding {{id}} is not filled again', () => {
    expect(
      fillTemplate('#{{id}} {{ subject }} for {{requester}} {{other}}', {
        id: '7',
        subject: 'about {{id}}',
        requester: 'Ann',
      }),
    ).toBe('#7 about {{id}} for Ann {{other}}');
    for (const p of ACK_PLACEHOLDERS) expect(unknownPlaceholders(`{{${p}}}`)).toEqual([]);
    expect(unknownPlaceholders('{{id}} {{ID}} {{x}} {{x}}')).toEqual(['ID', 'x']);
  });
});
