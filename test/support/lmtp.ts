/**
 * Delivering mail into a test Dovecot the way a mail server does: over LMTP (RFC 2033) to its own listener, so
 * Dovecot itself resolves the recipient (a +detail goes to the user's INBOX, recipient_delimiter) and adds its
 * delivery headers. Not used by the product.
 */
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import type { DovecotServer } from './dovecot.js';

/** Delivers `raw` to each recipient over LMTP, with `from` as the envelope sender ('' for a bounce's <>). */
export async function deliverLmtp(
  server: DovecotServer,
  raw: Buffer,
  envelope: { from: string; to: string[] },
): Promise<void> {
  const transport = nodemailer.createTransport({
    host: server.host,
    port: server.ports.lmtp,
    lmtp: true,
    secure: false,
    ignoreTLS: true,
    logger: false,
  });
  try {
    // nodemailer writes the null sender for an empty envelope from
    await transport.sendMail({ envelope: { from: envelope.from, to: envelope.to }, raw });
  } finally {
    transport.close();
  }
}

/** The raw source of every mail in a user's INBOX, oldest first (read-only: flags are left alone). */
export async function inboxSources(server: DovecotServer, user: string): Promise<Buffer[]> {
  const found = server.users.find((u) => u.name === user);
  if (!found) throw new Error(`no user "${user}" in this Dovecot`);
  const client = new ImapFlow({
    host: server.host,
    port: server.ports.imap,
    secure: false,
    doSTARTTLS: false,
    auth: { user, pass: found.password },
    logger: false,
    disableAutoIdle: true,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const box = await client.mailboxOpen('INBOX', { readOnly: true });
    if (box.exists === 0) return [];
    const out: { uid: number; source: Buffer }[] = [];
    for await (const msg of client.fetch('1:*', { uid: true, source: true })) {
      if (msg.source) out.push({ uid: msg.uid, source: msg.source });
    }
    return out.sort((a, b) => a.uid - b.uid).map((m) => m.source);
  } finally {
    await client.logout().catch(() => client.close());
  }
}
