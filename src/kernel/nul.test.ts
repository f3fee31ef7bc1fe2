import { describe, expect, it } from 'vitest';
import { firstNulPath, refuseNul, withoutNulChars } from './nul.js';

describe('NUL in input', () => {
  it('names the first string holding one, by its path, in values and keys', () => {
    expect(firstNulPath({ text: 'fine', to: ['a@b'] })).toBeNull();
    expect(firstNulPath({ text: 'a\u0000b' })).toBe('text');
    expect(firstNulPath({ attachments: [{ filename: 'ok' }, { filename: 'x\u0000.exe' }] })).toBe(
      'attachments.1.filename',
    );
    expect(firstNulPath({ mailSettings: { 'bad\u0000key': 1 } })).toBe('mailSettings.bad\\u0000key');
    expect(firstNulPath('\u0000')).toBe('(body)');
    expect(firstNulPath([1, null, true, 2.5])).toBeNull();
  });

  it('walks a deeply nested value without overflowing the stack', () => {
    let deep: unknown = 'x\u0000';
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(firstNulPath(deep)).toMatch(/^(0\.){199999}0$/);
  });

  it('refuses with INVALID_SETTINGS naming the field', () => {
    expect(() => refuseNul({ from: 'Help\u0000 <a@b>' }, 'request body')).toThrow(
      expect.objectContaining({
        code: 'INVALID_SETTINGS',
        details: { fields: [{ field: 'from', message: 'contains a NUL character (U+0000); remove it' }] },
      }),
    );
    expect(() => refuseNul({ from: 'Help <a@b>' }, 'request body')).not.toThrow();
  });

  it('cleans a form value', () => {
    expect(withoutNulChars('a\u0000b\u0000')).toBe('ab');
    expect(withoutNulChars('plain')).toBe('plain');
  });
});
