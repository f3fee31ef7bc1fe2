/**
 * The benchmark's deterministic mail mix: the same 5,000 mails on every run and every machine (seeded PRNG,
 * attachment bytes from AES-256-CTR over a fixed key, i.e. incompressible "random" data).
 *
 * - every mail: a 5–20 KB body, half of them plain text, half multipart/alternative (text + HTML);
 * - a quarter: one 50–500 KB attachment (application/octet-stream, base64);
 * - about 10 %: replies, with In-Reply-To/References naming an earlier mail of the mix.
 */
import { createCipheriv } from 'node:crypto';
import { buildMail } from '../test/kit/mails.js';
import { prng } from '../test/kit/prng.js';

/** `n` deterministic, incompressible bytes for mail `index`. */
export function attachmentBytes(index: number, n: number): Buffer {
  const key = Buffer.alloc(32, 7);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(index, 12);
  return createCipheriv('aes-256-ctr', key, iv).update(Buffer.alloc(n));
}

const WORDS = (
  'printer fire ticket please help urgent laptop screen broken password reset account locked invoice ' +
  'server down network slow email cannot send receive attachment update install license office vpn ' +
  'access denied error message thank you regards team manager report monday tuesday again still the a ' +
  'is not and with for on at it this that we our your customer order delivery refund'
).split(' ');

function paragraph(rnd: () => number, bytes: number): string {
  const lines: string[] = [];
  let total = 0;
  while (total < bytes) {
    let line = '';
    while (line.length < 72) line += `${WORDS[Math.floor(rnd() * WORDS.length)]} `;
    line = line.trimEnd();
    lines.push(line);
    total += line.length + 2;
  }
  return lines.join('\r\n');
}

export interface MixMail {
  index: number;
  raw: Buffer;
  attachment: number; // bytes before base64, 0 when none
  reply: boolean;
}

export interface MixStats {
  mails: number;
  bytes: number;
  withAttachment: number;
  replies: number;
  html: number;
}

/** The mails, generated one at a time (the whole mix is ~0.5 GB; it is never held here). */
export function* mailMix(count: number, seed = 20240601, stats?: MixStats): Generator<MixMail> {
  const rnd = prng(seed);
  const subjects: string[] = [];
  for (let i = 0; i < count; i++) {
    const messageId = `bench-${seed}-${i}@mix.example.test`;
    const reply = i > 0 && rnd() < 0.1;
    const parent = reply ? Math.floor(rnd() * i) : -1;
    const withAttachment = rnd() < 0.25;
    const attachment = withAttachment ? 50 * 1024 + Math.floor(rnd() * 450 * 1024) : 0;
    const html = rnd() < 0.5;
    const bodyBytes = 5 * 1024 + Math.floor(rnd() * 15 * 1024);
    const subject = reply ? `Re: ${subjects[parent]}` : `Case ${i}: ${paragraph(rnd, 20).slice(0, 40)}`;
    subjects.push(subject);
    const text = paragraph(rnd, html ? bodyBytes / 2 : bodyBytes);
    const raw = buildMail({
      from: `Customer ${i % 500} <customer${i % 500}@example.test>`,
      to: 'Support <support@example.test>',
      subject,
      messageId,
      date: new Date(Date.UTC(2024, 0, 1) + i * 60_000).toUTCString(),
      ...(reply
        ? {
            inReplyTo: `bench-${seed}-${parent}@mix.example.test`,
            references: `<bench-${seed}-${parent}@mix.example.test>`,
          }
        : {}),
      body: `${text}\r\n`,
      ...(html
        ? {
            html: `<html><body>${paragraph(rnd, bodyBytes / 2)
              .split('\r\n')
              .map((l) => `<p>${l}</p>`)
              .join('\r\n')}</body></html>`,
          }
        : {}),
      ...(withAttachment
        ? {
            attachments: [
              {
                filename: `file-${i}.bin`,
                contentType: 'application/octet-stream',
                content: attachmentBytes(i, attachment),
              },
            ],
          }
        : {}),
    });
    if (stats) {
      stats.mails++;
      stats.bytes += raw.length;
      if (withAttachment) stats.withAttachment++;
      if (reply) stats.replies++;
      if (html) stats.html++;
    }
    yield { index: i, raw, attachment, reply };
  }
}

/** The one big mail of measurement (d): a short text and one attachment of `bytes` random bytes. */
export function bigMail(bytes: number): Buffer {
  return buildMail({
    from: 'Big Sender <big@example.test>',
    to: 'support@example.test',
    subject: `One attachment of ${Math.round(bytes / 1024 / 1024)} MB`,
    messageId: 'bench-big@mix.example.test',
    date: new Date(Date.UTC(2024, 0, 1)).toUTCString(),
    body: 'See the attached file.\r\n',
    attachments: [
      {
        filename: 'big.bin',
        contentType: 'application/octet-stream',
        content: attachmentBytes(999_999, bytes),
      },
    ],
  });
}

/**
 * One mail whose only body is `bytes` of text/plain (7bit, 76-character lines of words) or of HTML (paragraphs
 * of the same words, no text part): the huge-body cases of issue 10. Deterministic, no attachment.
 */
export function bigBodyMail(kind: 'text' | 'html', bytes: number, id: string = kind): Buffer {
  const words = [
    'printer',
    'ticket',
    'queue',
    'toner',
    'invoice',
    'reply',
    'server',
    'mailbox',
    'urgent',
    'the',
  ];
  const lines: string[] = [];
  let size = 0;
  let n = 0;
  while (size < bytes) {
    let line = kind === 'html' ? '<p>' : '';
    while (line.length < 70) line += `${words[(n++ * 7) % words.length]} `;
    line += kind === 'html' ? '</p>\r\n' : '\r\n';
    lines.push(line);
    size += line.length;
  }
  const head = [
    'From: Long Writer <long@example.test>',
    'To: support@example.test',
    `Subject: A ${Math.round(bytes / 1024 / 1024)} MB ${kind} body`,
    `Message-ID: <bench-body-${id}@mix.example.test>`,
    `Date: ${new Date(Date.UTC(2024, 0, 1)).toUTCString()}`,
    'MIME-Version: 1.0',
    `Content-Type: ${kind === 'html' ? 'text/html' : 'text/plain'}; charset=utf-8`,
    'Content-Transfer-Encoding: 7bit',
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head), Buffer.from(lines.join(''))]);
}
