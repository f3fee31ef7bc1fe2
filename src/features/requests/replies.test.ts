import { describe, expect, it } from 'vitest';
import { prng } from '../../../test/kit/prng.js';
import { subjectRequestId } from '../../mail/classify.js';
import { parseTypedAddress, replySubject } from './replies.js';

describe('replySubject', () => {
  it('one prefix and the ##id## token exactly once, whatever prefixes and tokens the subject carried', () => {
    const random = prng(13);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const prefixes = [
      'Re: ',
      'RE:',
      'Fwd: ',
      'FW: ',
      'AW: ',
      'SV: ',
      'Antw: ',
      'WG: ',
      'TR: ',
      'Re[2]: ',
      're : ',
    ];
    for (let i = 0; i < 500; i++) {
      const id = 1 + Math.floor(random() * 1e6);
      const core = pick(['Printer on fire', 'VPN', 'Réponse: café ☕', '', '   ']);
      const stacked = Array.from({ length: Math.floor(random() * 4) }, () => pick(prefixes)).join('');
      const token = pick(['', ` ##${id}##`, `[##${id}##] `, ` ##${id + 1}##`]);
      const subject = random() < 0.5 ? `${stacked}${token}${core}` : `${stacked}${core}${token}`;
      for (const forward of [false, true]) {
        const out = replySubject(subject, id, forward);
        expect(out.startsWith(forward ? 'Fwd: ' : 'Re: '), out).toBe(true);
        expect(out.match(/##\d+##/g), out).toEqual([`##${id}##`]);
        expect(subjectRequestId(out)).toBe(id);
        expect(out.slice(forward ? 5 : 4), out).not.toMatch(/^(re|fwd?|aw|sv|antw|wg|tr)\s*(\[\d+\])?\s*:/i);
      }
    }
    expect(replySubject('Re: AW: Printer ##12##', 12, false)).toBe('Re: Printer ##12##');
    expect(replySubject('', 3, true)).toBe('Fwd: (no subject) ##3##');
  });
});

describe('parseTypedAddress', () => {
  it('takes the forms people type, the address lower-cased', () => {
    expect(parseTypedAddress(' Ann@Example.COM ')).toEqual({ address: 'ann@example.com', name: '' });
    expect(parseTypedAddress('<ann@example.com>')).toEqual({ address: 'ann@example.com', name: '' });
    expect(parseTypedAddress('Ann Lee <ann+x@example.com>')).toEqual({
      address: 'ann+x@example.com',
      name: 'Ann Lee',
    });
    expect(parseTypedAddress('"Lee, Ann" <ann@example.com>')).toEqual({
      address: 'ann@example.com',
      name: 'Lee, Ann',
    });
  });

  it('refuses what is not one address, or could smuggle a header', () => {
    for (const bad of [
      '',
      'ann',
      'ann@',
      '@example.com',
      'ann@localhost',
      'ann@example.com, bob@example.com',
      'ann@exa mple.com',
      'ann@example.com\r\nBcc: eve@example.org',
      '<ann@example.com',
      'a<b>@example.com',
      `${'a'.repeat(250)}@example.com`,
    ]) {
      expect(parseTypedAddress(bad), bad).toBeNull();
    }
  });
});
