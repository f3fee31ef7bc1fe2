import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { prng } from '../../test/kit/prng.js';
import { decodeAs, decodeUnlabelled, labelFits, oddness } from './charset.js';

/** Text people write, per charset it is usually sent in: subjects, display names and file names. */
const SAMPLES: Record<string, string[]> = {
  Shift_JIS: [
    '請求書について',
    '添付ファイル.pdf',
    '山田 太郎',
    'お問い合わせの件（至急）',
    'パスワードを忘れました',
  ],
  'EUC-JP': ['お問い合わせの件について、ご確認ください', '請求書の再発行をお願いします'],
  GB18030: ['关于发票的问题，请尽快回复', '我的账户无法登录，请帮忙处理'],
  'windows-1252': ['Grüße aus München', 'Rechnung für März', 'François Müller', 'Café crème – déjà vu'],
  'windows-1251': ['Привет, мир! Счёт за услуги', 'Иван Петров'],
  'KOI8-R': ['Привет, мир! Счёт за услуги связи'],
};

describe('decodeUnlabelled', () => {
  it('gives UTF-8 back as it is, whatever is declared', () => {
    for (const texts of Object.values(SAMPLES)) {
      for (const text of texts) {
        expect(decodeUnlabelled(Buffer.from(text, 'utf8'), ['iso-8859-1'])).toEqual({
          text,
          charset: 'UTF-8',
          how: 'utf-8',
        });
      }
    }
  });

  it('reads each sample back from its own charset with nothing declared (the detector and the oddness)', () => {
    const wrong: string[] = [];
    let total = 0;
    for (const [charset, texts] of Object.entries(SAMPLES)) {
      for (const text of texts) {
        total++;
        const got = decodeUnlabelled(iconv.encode(text, charset), []);
        expect(got.text).not.toContain('\ufffd');
        if (got.text !== text) wrong.push(`${charset}: ${text} → ${got.text} (${got.charset})`);
      }
    }
    // Short strings are hard for any detector; the samples above are all read right.
    expect(wrong).toEqual([]);
    expect(total).toBeGreaterThan(10);
  });

  it('takes a declared charset when it reads cleanly, before the detector', () => {
    const text = 'Größe 10 cm';
    const got = decodeUnlabelled(iconv.encode(text, 'iso-8859-15'), ['utf-8', 'ISO-8859-15']);
    expect(got).toMatchObject({ text, how: 'declared' });
  });

  it('passes over a declared charset that turns the bytes into mojibake', () => {
    const text = '添付ファイル.pdf';
    const got = decodeUnlabelled(iconv.encode(text, 'Shift_JIS'), ['iso-8859-1', 'iso-2022-jp']);
    expect(got).toMatchObject({ text, charset: 'Shift_JIS', how: 'detected' });
  });

  it('never gives U+FFFD for random bytes, and always gives something', () => {
    const rand = prng(1307);
    for (let i = 0; i < 300; i++) {
      const bytes = Buffer.alloc(1 + Math.floor(rand() * 200));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      const got = decodeUnlabelled(bytes, rand() < 0.5 ? [] : ['iso-2022-jp', 'utf-8', 'x-unknown']);
      // ISO-8859-1 maps every byte; the chain ends there at the latest, and never with a lost byte
      expect(got.text.length).toBeGreaterThan(0);
      expect(got.text).not.toContain('\ufffd');
    }
  });
});

describe('labelFits', () => {
  it('catches the lies: 8-bit under a 7-bit label, invalid UTF-8, bytes a multi-byte charset cannot hold', () => {
    const sjis = iconv.encode('請求書について', 'Shift_JIS');
    expect(labelFits(sjis, 'ISO-2022-JP')).toBe(false);
    expect(labelFits(sjis, 'us-ascii')).toBe(false);
    expect(labelFits(sjis, 'UTF-8')).toBe(false);
    expect(labelFits(sjis, 'Shift_JIS')).toBe(true);
    expect(labelFits(iconv.encode('Grüße', 'windows-1252'), 'utf-8')).toBe(false);
    expect(labelFits(iconv.encode('Grüße', 'windows-1252'), 'windows-1252')).toBe(true);
    expect(labelFits(iconv.encode('关于发票的问题', 'GB18030'), 'UTF-8')).toBe(false);
    expect(labelFits(Buffer.from('plain ascii'), 'iso-2022-jp')).toBe(true);
    expect(labelFits(Buffer.from('Grüße', 'utf8'), 'UTF-8')).toBe(true);
    // a label nobody knows is left to decode as before
    expect(labelFits(sjis, 'x-made-up')).toBe(true);
  });
});

describe('oddness', () => {
  it('is 0 for real text and above 0 for the usual mojibake', () => {
    for (const texts of Object.values(SAMPLES)) for (const t of texts) expect(oddness(t)).toBe(0);
    expect(
      oddness(iconv.decode(iconv.encode('添付ファイル.pdf', 'Shift_JIS'), 'windows-1252')),
    ).toBeGreaterThan(0);
    expect(oddness(Buffer.from('Grüße', 'utf8').toString('latin1'))).toBeGreaterThan(0);
    expect(oddness('a\ufffdb')).toBeGreaterThan(0);
  });
});

describe('hostile bytes and labels', () => {
  const labels = [
    '',
    'utf-8',
    'UTF_8',
    'us-ascii',
    'iso-2022-jp',
    'utf-16',
    'UTF-16BE',
    'ucs-4',
    'utf-7',
    'cp65000',
    'x-unknown',
    'shift_jis',
    'gb18030',
    'big5',
    'base64',
    'utf8\0',
    '\ud800',
    'latin1'.repeat(10_000),
  ];

  it('random and mutated bytes under any label: a decoding, no exception, no more characters than bytes', () => {
    const rand = prng(606);
    for (let round = 0; round < 400; round++) {
      const base = iconv.encode(
        Object.values(SAMPLES).flat()[round % 17] ?? 'x',
        Object.keys(SAMPLES)[round % Object.keys(SAMPLES).length]!,
      );
      const bytes = Buffer.from(base);
      for (let f = Math.floor(rand() * 4); f > 0; f--)
        bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      const cut = rand() < 0.3 ? bytes.subarray(0, Math.floor(rand() * bytes.length)) : bytes;
      const declared = Array.from(
        { length: Math.floor(rand() * 4) },
        () => labels[Math.floor(rand() * labels.length)]!,
      );
      const label = labels[Math.floor(rand() * labels.length)]!;
      const got = decodeUnlabelled(cut, declared, label, rand() < 0.5);
      expect(got.text.length).toBeLessThanOrEqual(cut.length);
      expect(typeof labelFits(cut, label, rand() < 0.5)).toBe('boolean');
      const as = decodeAs(cut, label);
      if (as !== null) expect(as.length).toBeLessThanOrEqual(2 * cut.length + 2);
    }
  });

  it('1 MB of bytes, one line or none: decoded, judged on a sample only', () => {
    const rand = prng(9);
    const bytes = Buffer.alloc(1 << 20);
    for (let i = 0; i < bytes.length; i++) bytes[i] = 0x80 + Math.floor(rand() * 128);
    const got = decodeUnlabelled(bytes, ['shift_jis', 'koi8-r'], undefined, true);
    expect(got.text.length).toBeGreaterThan(0);
    expect(got.text.length).toBeLessThanOrEqual(bytes.length);
    expect(oddness('\u0000'.repeat(1 << 20))).toBe(1 << 20);
  });
});
