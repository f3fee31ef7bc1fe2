import { simpleParser } from 'mailparser';

/** What Graph and Exchange list of a delivered mail: read from its MIME once, when the double stores it. */
export interface MailFacts {
  /** ISO time without milliseconds, as both services write it. */
  sent: string | null;
  internetMessageId: string | null;
  subject: string | null;
  from: { name: string; address: string } | null;
  attachments: string[];
}

export async function mailFacts(raw: Buffer): Promise<MailFacts> {
  const parsed = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true });
  const from = parsed.from?.value[0];
  return {
    sent: parsed.date ? isoSeconds(parsed.date) : null,
    internetMessageId: parsed.messageId ?? null,
    subject: parsed.subject ?? null,
    from: from ? { name: from.name ?? '', address: from.address ?? '' } : null,
    attachments: parsed.attachments
      .filter((a) => a.contentDisposition === 'attachment' || a.filename)
      .map((a, i) => a.filename ?? `part-${i + 1}`),
  };
}

/** `2026-11-26T10:00:00Z`: the form Graph and EWS give times in. */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}
