/**
 * Putting mail into a test Dovecot and looking at what is there, for assertions about what a connector
 * acknowledged on the server. Not used by the product.
 */
import { chown, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import type { DovecotServer } from './dovecot.js';

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;
const hostPart = os.hostname().replace(/[/:,]/g, '_');
let sequence = 0;

function passwordOf(server: DovecotServer, user: string): string {
  const found = server.users.find((u) => u.name === user);
  if (!found)
    throw new Error(
      `no user "${user}" in this Dovecot (users: ${server.users.map((u) => u.name).join(', ')})`,
    );
  return found.password;
}

/**
 * Fast bulk delivery by the Maildir protocol: write into tmp/, rename into new/ (atomic, so Dovecot never sees
 * half a file). Maildir files use LF line endings; Dovecot serves them with CRLF, so a raw written with CRLF
 * comes back byte-identical over IMAP. Returns the file names in delivery order (= UID order once seen).
 */
export async function deliverMaildir(
  server: DovecotServer,
  user: string,
  raws: Buffer[] | Iterable<Buffer>,
): Promise<string[]> {
  passwordOf(server, user);
  const md = server.maildir(user);
  const names: string[] = [];
  const seconds = Math.floor(Date.now() / 1000);
  for (const raw of raws) {
    const lf = toLf(raw);
    // Dovecot's virtual size adds a CR only for a LF not already preceded by one (a file may keep stray
    // CR LF pairs, e.g. from CR CR LF in the source); a wrong W= makes Dovecot drop the connection mid-FETCH.
    let newlines = 0;
    for (let i = 0; i < lf.length; i++) if (lf[i] === 0x0a && lf[i - 1] !== 0x0d) newlines++;
    // S= physical (LF) size, W= virtual (CRLF) size: Dovecot takes RFC822.SIZE from W= without reading the file
    const name = `${seconds}.M${sequence}P${process.pid}Q${sequence}.${hostPart},S=${lf.length},W=${lf.length + newlines}`;
    sequence++;
    const tmp = path.join(md, 'tmp', name);
    await writeFile(tmp, lf);
    if (isRoot()) await chown(tmp, server.mailUid, server.mailGid);
    await rename(tmp, path.join(md, 'new', name));
    names.push(name);
  }
  return names;
}

function toLf(raw: Buffer): Buffer {
  if (raw.indexOf('\r\n') === -1) return raw;
  const out = Buffer.allocUnsafe(raw.length);
  let o = 0;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i]!;
    if (b === 0x0d && raw[i + 1] === 0x0a) continue;
    out[o++] = b;
  }
  return out.subarray(0, o);
}

async function withClient<T>(
  server: DovecotServer,
  user: string,
  fn: (client: ImapFlow) => Promise<T>,
): Promise<T> {
  const client = new ImapFlow({
    host: server.host,
    port: server.ports.imap,
    secure: false,
    doSTARTTLS: false,
    auth: { user, pass: passwordOf(server, user) },
    logger: false,
    disableAutoIdle: true,
  });
  client.on('error', () => {
    // surfaced by the awaited command instead
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** IMAP APPEND (~200 msg/s): for a few mails, or when flags must be set at delivery. */
export async function appendImap(
  server: DovecotServer,
  user: string,
  raw: Buffer,
  flags: string[] = [],
  folder = 'INBOX',
): Promise<{ uid: number | undefined }> {
  return withClient(server, user, async (client) => {
    if (folder !== 'INBOX') await client.mailboxCreate(folder);
    const res = await client.append(folder, raw, flags);
    if (!res) throw new Error(`APPEND to ${folder} failed`);
    return { uid: res.uid };
  });
}

export interface ListedMail {
  uid: number;
  flags: string[];
  messageId: string | null;
  subject: string | null;
}

/** The mails of a folder (ascending UID), read-only (EXAMINE), so looking does not change \Recent or \Seen. */
export async function folderMessages(
  server: DovecotServer,
  user: string,
  folder: string,
): Promise<ListedMail[]> {
  return withClient(server, user, async (client) => {
    const list = await client.list();
    if (!list.some((m) => m.path === folder)) throw new Error(`no folder "${folder}" for ${user}`);
    const box = await client.mailboxOpen(folder, { readOnly: true });
    if (box.exists === 0) return [];
    const out: ListedMail[] = [];
    for await (const msg of client.fetch('1:*', { uid: true, flags: true, envelope: true })) {
      out.push({
        uid: msg.uid,
        // \Recent belongs to whichever session saw the mail first: noise for assertions
        flags: [...(msg.flags ?? [])].filter((f) => f !== '\\Recent').sort(),
        messageId: msg.envelope?.messageId ?? null,
        subject: msg.envelope?.subject ?? null,
      });
    }
    return out.sort((a, b) => a.uid - b.uid);
  });
}

export async function listInbox(server: DovecotServer, user: string): Promise<ListedMail[]> {
  return folderMessages(server, user, 'INBOX');
}

/** Whether a folder exists for the user. */
export async function folderExists(server: DovecotServer, user: string, folder: string): Promise<boolean> {
  return withClient(server, user, async (client) => (await client.list()).some((m) => m.path === folder));
}

/** Adds flags to one mail by UID, as another mail client would (e.g. \Deleted without EXPUNGE). */
export async function addFlags(
  server: DovecotServer,
  user: string,
  uid: number,
  flags: string[],
): Promise<void> {
  await withClient(server, user, async (client) => {
    const lock = await client.getMailboxLock('INBOX');
    try {
      await client.messageFlagsAdd(String(uid), flags, { uid: true });
    } finally {
      lock.release();
    }
  });
}
