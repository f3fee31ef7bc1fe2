import { prng } from './prng.js';

/**
 * Out-of-office replies as the usual mail systems send them, in several languages: the vendor's headers (or
 * none, the subject alone), its subject, a random original subject.
 */
const LOCALISED = [
  'Automatic reply',
  'Automatische Antwort',
  'Réponse automatique',
  'Risposta automatica',
  'Respuesta automática',
  'Resposta automática',
  'Automatisch antwoord',
  'Autosvar',
  'Automatyczna odpowiedź',
  'Automatická odpověď',
  'Automaattinen vastaus',
  'Автоматический ответ',
  '自動応答',
  '自动回复',
];
const SUBJECT_ONLY = [
  (s: string) => `AUTO: Jane Doe is out of the office (returning 02.01.2025) ${s}`,
  (s: string) => `Out of Office: ${s}`,
  (s: string) => `Out of Office AutoReply: ${s}`,
  (s: string) => `Abwesenheitsnotiz: ${s}`,
  (s: string) => `Réponse automatique : ${s}`,
  () => 'Jane Doe is out of the office.',
  (s: string) => `Autoreply: ${s}`,
  (s: string) => `Auto-Reply: ${s}`,
];
type Vendor = (rnd: () => number, subject: string) => { headers: string[]; subject: string };
const VENDORS: Record<string, Vendor> = {
  exchange: (rnd, s) => ({
    headers: ['Auto-Submitted: auto-generated', 'X-Auto-Response-Suppress: All'],
    subject: `${pick(rnd, LOCALISED)}: ${s}`,
  }),
  gmail: (_rnd, s) => ({ headers: ['Auto-Submitted: auto-replied'], subject: `Holiday (${s})` }),
  'rfc3834-vacation': (_rnd, s) => ({
    headers: ['Auto-Submitted: auto-replied (vacation)', 'Precedence: bulk'],
    subject: `Re: ${s}`,
  }),
  'x-autoreply': (_rnd, s) => ({ headers: ['X-Autoreply: yes'], subject: `Re: ${s}` }),
  'x-autorespond': (_rnd, s) => ({ headers: ['X-Autorespond: Away'], subject: `Re: ${s}` }),
  'precedence-auto_reply': (_rnd, s) => ({ headers: ['Precedence: auto_reply'], subject: s }),
  'null-sender-junk': (_rnd, s) => ({
    headers: ['Return-Path: <>', 'Precedence: junk'],
    subject: `Re: ${s}`,
  }),
  'subject-only': (rnd, s) => ({ headers: [], subject: pick(rnd, SUBJECT_ONLY)(s) }),
};
const ORIGINAL_SUBJECTS = [
  'Invoice 4711',
  'Drucker defekt',
  'Problème de VPN',
  'Password reset',
  'Re: ##12## laptop',
];

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)] as T;
}

function encodeSubject(subject: string): string {
  return `=?UTF-8?B?${Buffer.from(subject, 'utf8').toString('base64')}?=`;
}

export function generatedOutOfOffice(seed: number, count: number): { vendor: string; raw: string }[] {
  const rnd = prng(seed);
  const names = Object.keys(VENDORS);
  return Array.from({ length: count }, (_, i) => {
    const vendor = names[i % names.length] as string;
    const made = (VENDORS[vendor] as Vendor)(rnd, pick(rnd, ORIGINAL_SUBJECTS));
    const raw = [
      'From: Jane Doe <jane@customer.example>',
      'To: help@example.com',
      `Subject: ${encodeSubject(made.subject)}`,
      `Message-ID: <ooo-${seed}-${i}@customer.example>`,
      'Date: Mon, 02 Dec 2024 10:00:00 +0000',
      ...made.headers,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'I am away until Monday. / Ich bin bis Montag abwesend.',
      '',
    ].join('\r\n');
    return { vendor, raw };
  });
}
