import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { storedMailboxSettings } from '../../connectors/settings.js';
import { currentActor } from '../../kernel/actor.js';
import { MailintakeError } from '../../kernel/errors.js';
import {
  REPLY_ATTACHMENTS_MAX_BYTES,
  REPLY_BODY_MAX_CHARS,
  REPLY_RECIPIENTS_MAX,
  REPLY_REFERENCES_MAX,
} from '../../kernel/limits.js';
import { OWN_MESSAGE_ID_DOMAIN } from '../../mail/machine.js';
import { baseAddress, makeReplyAddress } from '../../mail/reply-address.js';
import type { Address } from '../../mail/types.js';
import type { OutboxAttachment } from '../../notify/outbox.js';
import type { BlobStore } from '../../store/blobs/blob-store.js';
import { nowIso, type Store } from '../../store/db.js';
import { storableText, valueKey } from '../../store/keys.js';
import { htmlSearchText } from '../../store/search-text.js';
import { parseStored } from '../../store/stored-json.js';
import { withTransaction } from '../../store/tx.js';

/**
 * Replies and forwards from a request (issue 13 §1). One transaction stores the outgoing conversation, its
 * attachments, the outbox row that sends it and our Message-ID in message_ids (so the customer's answer threads
 * by its headers); the outbox sends it after the commit with the claim/mark-sent scheme of every outbox mail
 * (notify/outbox.ts): once, or after a crash between the server's acceptance and our note of it, once more
 * with the same Message-ID. Never lost.
 *
 * The help desk's own addresses (every mailbox's address and aliases, in every portal, compared without case
 * and +tags) never receive a reply, whatever was typed: our own mail coming back would be at best ignored and
 * at worst the start of a loop.
 */

export interface ReplyInput {
  /** Reply: default the requester. Forward: required. Each "Name <a@b>" or "a@b". */
  to?: string[];
  cc?: string[];
  bcc?: string[];
  text: string;
  html?: string;
  /** New files sent with it (kept as the conversation's attachments). */
  attachments?: { filename: string; contentType: string; content: Buffer }[];
  /** Attachments of the request (ids) sent along, e.g. with a forward. */
  requestAttachments?: number[];
}

export interface ReplyOptions {
  /** A technician's portal: a request of another portal is NOT_FOUND to them. null/absent: any portal. */
  portal?: string | null;
  forward?: boolean;
}

export interface RepliesDeps {
  store: Store;
  blobs: BlobStore;
  /** Keys of the per-request reply address (current first); see mail/reply-address.ts. */
  replyKeys: () => Buffer[];
  /** Wakes the outbox sender after the commit. */
  kick: () => void;
}

const bad = (field: string, message: string) =>
  new MailintakeError('INVALID_SETTINGS', `${field}: ${message}`, {
    details: { fields: [{ field, message }] },
  });

/** "Name <a@b>", "<a@b>" or "a@b"; the address lower-cased. null when it is none of these. */
export function parseTypedAddress(typed: string): Address | null {
  const t = typed.trim();
  const angled = /^(?:"?([^"<>]*?)"?\s*)?<([^<>\s]+)>$/.exec(t);
  const address = (angled ? angled[2] : t) ?? '';
  const name = (angled?.[1] ?? '').trim();
  // one @, a dot-free local part is fine, a domain with a dot; no spaces, no commas, no angle brackets
  if (!/^[^\s@<>,;"()[\]\\]+@[^\s@<>,;"()[\]\\]+\.[^\s@<>,;"()[\]\\]+$/.test(address)) return null;
  if (address.length > 254) return null;
  return { address: address.toLowerCase(), name };
}

/** The subject of a reply or forward: the request's subject, one prefix, the `##id##` token exactly once. */
export function replySubject(subject: string, requestId: number, forward: boolean): string {
  let s = subject.replace(/##\d+##/g, ' ');
  // strip the prefixes mail clients stack up ("Re: AW: Fwd: …"), so they never pile up in the thread
  for (;;) {
    const next = s.replace(/^\s*(re|aw|sv|vs|antw|fwd?|wg|tr|rv)\s*(\[\d+\])?\s*:\s*/i, '');
    if (next === s) break;
    s = next;
  }
  s = s.replace(/\s+/g, ' ').trim();
  return `${forward ? 'Fwd' : 'Re'}: ${s === '' ? '(no subject)' : s} ##${requestId}##`;
}

export function createReplies(deps: RepliesDeps) {
  const db = deps.store.db;

  /** Every address of the help desk, as baseAddress (lower case, +tag stripped). */
  const ownAddresses = async (): Promise<{ own: Set<string>; byMailbox: Map<number, MailboxFrom> }> => {
    const rows = await db
      .selectFrom('mailboxes')
      .select(['id', 'settings', 'portal_id', 'removed_at'])
      .execute();
    const own = new Set<string>();
    const byMailbox = new Map<number, MailboxFrom>();
    for (const r of rows) {
      const s = storedMailboxSettings(r, parseStored);
      for (const a of s.emailAddress) own.add(baseAddress(a));
      if (r.removed_at === null && s.emailAddress[0]) {
        byMailbox.set(r.id, {
          id: r.id,
          portalId: r.portal_id,
          address: s.emailAddress[0],
          replyAddress: s.replyAddress === true,
        });
      }
    }
    return { own, byMailbox };
  };

  const send = async (requestId: number, input: ReplyInput, opts: ReplyOptions = {}) => {
    const forward = opts.forward === true;
    const request = await db
      .selectFrom('requests')
      .innerJoin('portals', 'portals.id', 'requests.portal_id')
      .select([
        'requests.id',
        'requests.portal_id',
        'requests.mailbox_id',
        'requests.subject',
        'requests.requester_address',
        'requests.requester_name',
        'requests.message_id',
        'requests.text_body',
        'requests.html_text',
        'requests.mail_date',
        'portals.name as portal_name',
      ])
      .where('requests.id', '=', requestId)
      .executeTakeFirst();
    if (!request || (opts.portal != null && opts.portal !== request.portal_name)) {
      throw new MailintakeError('NOT_FOUND', `no request #${requestId}`);
    }
    const text = input.text ?? '';
    if (text.trim() === '' && (input.html ?? '').trim() === '') throw bad('text', 'write something to send');
    if (text.length > REPLY_BODY_MAX_CHARS || (input.html ?? '').length > REPLY_BODY_MAX_CHARS) {
      throw bad('text', `at most ${REPLY_BODY_MAX_CHARS} characters`);
    }

    const { own, byMailbox } = await ownAddresses();
    const from =
      (request.mailbox_id !== null ? byMailbox.get(request.mailbox_id) : undefined) ??
      [...byMailbox.values()].find((m) => m.portalId === request.portal_id);
    if (!from) {
      throw new MailintakeError(
        'CONFLICT',
        `request #${requestId} has no mailbox to send from: add a mailbox with an address to portal "${request.portal_name}"`,
      );
    }

    // The typed lists, each address checked; our own addresses and aliases are dropped, whatever was typed.
    const dropped: string[] = [];
    const seen = new Set<string>();
    const field = (name: 'to' | 'cc' | 'bcc', typed: string[] | undefined): Address[] => {
      const out: Address[] = [];
      for (const t of (typed ?? []).flatMap(splitList)) {
        const a = parseTypedAddress(t);
        if (!a) throw bad(name, `"${t.slice(0, 200)}" is not an email address`);
        if (own.has(baseAddress(a.address))) {
          dropped.push(a.address);
          continue;
        }
        if (seen.has(a.address)) continue;
        seen.add(a.address);
        out.push(a);
      }
      return out;
    };
    const typedTo = (input.to ?? []).filter((t) => t.trim() !== '');
    if (forward && typedTo.length === 0) throw bad('to', 'a forward needs an address');
    // By default the requester, by the address alone: their display name is the sender's text (it may hold
    // anything) and is only shown, never parsed as if someone had typed it.
    const requester = request.requester_address ? parseTypedAddress(request.requester_address) : null;
    if (!forward && typedTo.length === 0 && request.requester_address && !requester) {
      throw bad(
        'to',
        `the requester's address "${request.requester_address.slice(0, 200)}" cannot be written to: type one`,
      );
    }
    const to =
      typedTo.length > 0
        ? field('to', typedTo)
        : field('to', requester ? [requester.address] : []).map((a) => ({
            ...a,
            name: request.requester_name ?? '',
          }));
    // A reply goes to the request's participants (the people in Cc the portal made participants) unless the
    // caller names the Cc itself (an empty list: nobody). A forward goes only where it is sent.
    const participants =
      input.cc === undefined && !forward
        ? (
            await db
              .selectFrom('request_participants')
              .select('address')
              .where('request_id', '=', requestId)
              .orderBy('id')
              .execute()
          ).map((p) => p.address)
        : undefined;
    const cc = field('cc', input.cc ?? participants);
    const bcc = field('bcc', input.bcc);
    if (to.length === 0) {
      throw bad(
        'to',
        dropped.length > 0
          ? `nobody left to send to: ${dropped.join(', ')} ${dropped.length === 1 ? 'is' : 'are'} the help desk's own`
          : 'the request has no requester to reply to: type an address',
      );
    }
    if (to.length + cc.length + bcc.length > REPLY_RECIPIENTS_MAX) {
      throw bad('cc', `at most ${REPLY_RECIPIENTS_MAX} addresses in To, Cc and Bcc together`);
    }

    // The thread: In-Reply-To the newest mail of the request, References its first and newest mails.
    const thread = [
      request.message_id,
      ...(
        await db
          .selectFrom('conversations')
          .select('message_id')
          .where('request_id', '=', requestId)
          .orderBy('id')
          .execute()
      ).map((c) => c.message_id),
      // a sender's id goes into our headers: only one that is a single token (no space, no angle bracket, no line
      // break) and fits a header line
    ].filter((id): id is string => id !== null && /^[^\s<>]{1,900}$/.test(id));
    const references =
      thread.length <= REPLY_REFERENCES_MAX
        ? thread
        : [thread[0]!, ...thread.slice(thread.length - (REPLY_REFERENCES_MAX - 1))];
    const inReplyTo = thread.at(-1) ?? null;

    // The files: new ones into the blob store now (content-addressed; a rollback leaves a blob the sweep takes)
    const files: OutboxAttachment[] = [];
    let total = 0;
    for (const a of input.attachments ?? []) {
      total += a.content.length;
      if (total > REPLY_ATTACHMENTS_MAX_BYTES) {
        throw bad('attachments', `at most ${REPLY_ATTACHMENTS_MAX_BYTES / 1024 / 1024} MB together`);
      }
      const name = a.filename.replace(/[\r\n\\/]/g, '_').slice(0, 255) || 'attachment';
      const stored = await deps.blobs.put(Readable.from([a.content]));
      files.push({
        sha256: stored.sha256,
        filename: name,
        contentType: a.contentType || 'application/octet-stream',
        size: stored.size,
      });
    }
    if (input.requestAttachments && input.requestAttachments.length > 0) {
      const rows = await db
        .selectFrom('attachments')
        .select(['id', 'sha256', 'filename', 'content_type', 'size'])
        .where('request_id', '=', requestId)
        .where('id', 'in', input.requestAttachments)
        .execute();
      for (const id of input.requestAttachments) {
        const r = rows.find((x) => x.id === id);
        if (!r) throw bad('attachments', `attachment #${id} is not one of request #${requestId}`);
        total += Number(r.size);
        if (total > REPLY_ATTACHMENTS_MAX_BYTES) {
          throw bad('attachments', `at most ${REPLY_ATTACHMENTS_MAX_BYTES / 1024 / 1024} MB together`);
        }
        files.push({
          sha256: r.sha256,
          filename: r.filename,
          contentType: r.content_type,
          size: Number(r.size),
        });
      }
    }

    const subject = replySubject(request.subject, requestId, forward);
    // a forward carries the mail it forwards, below the technician's words, as mail clients write it
    const sentText = forward
      ? `${text.trimEnd()}\n\n---------- Forwarded message ----------\n${[
          `From: ${request.requester_name ? `${request.requester_name} <${request.requester_address ?? ''}>` : (request.requester_address ?? '')}`,
          `Date: ${request.mail_date ?? ''}`,
          `Subject: ${request.subject}`,
        ].join('\n')}\n\n${request.text_body ?? request.html_text ?? ''}`
      : text;
    const messageId = `mailintake-reply-${randomBytes(12).toString('hex')}@${OWN_MESSAGE_ID_DOMAIN}`;
    const replyTo = from.replyAddress
      ? makeReplyAddress(from.address, request.portal_id, requestId, deps.replyKeys()[0]!)
      : null;
    const actor = currentActor();
    const now = nowIso();
    const html = input.html && input.html.trim() !== '' ? storableText(input.html) : null;
    const conversationId = await withTransaction(deps.store, async (tx) => {
      const conv = await tx
        .insertInto('conversations')
        .values({
          request_id: requestId,
          mailbox_id: from.id,
          from_address: baseAddress(from.address),
          from_name: null,
          to_addresses: JSON.stringify(to),
          cc_addresses: JSON.stringify(cc),
          subject,
          message_id: messageId,
          text_body: storableText(sentText),
          html_body: html,
          html_text: htmlSearchText(sentText, html),
          mail_date: now,
          created_at: now,
          direction: 'out',
          actor,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      if (files.length > 0) {
        await tx
          .insertInto('attachments')
          .values(
            files.map((f) => ({
              request_id: requestId,
              conversation_id: conv.id,
              filename: f.filename,
              content_type: f.contentType,
              size: f.size,
              sha256: f.sha256,
              content_id: null,
              disposition: 'attachment',
              created_at: now,
            })),
          )
          .execute();
      }
      await tx
        .insertInto('mail_outbox')
        .values({
          event: forward ? 'request-forward' : 'request-reply',
          recipients: JSON.stringify(to.map((a) => a.address)),
          subject,
          body: storableText(sentText),
          created_at: now,
          next_attempt_at: now,
          request_id: requestId,
          conversation_id: conv.id,
          from_address: from.address,
          from_name: null,
          cc: JSON.stringify(cc.map((a) => a.address)),
          bcc: JSON.stringify(bcc.map((a) => a.address)),
          reply_to: replyTo,
          message_id: messageId,
          message_key: valueKey(messageId),
          in_reply_to: inReplyTo,
          references_ids: JSON.stringify(references),
          html_body: html,
          attachments: JSON.stringify(files),
        })
        .execute();
      // the customer's answer names this id in In-Reply-To: it threads to the request by headers
      await tx
        .insertInto('message_ids')
        .values({
          portal_id: request.portal_id,
          message_key: valueKey(messageId),
          message_id: messageId,
          request_id: requestId,
        })
        .onConflict((oc) => oc.columns(['portal_id', 'message_key']).doNothing())
        .execute();
      await tx.updateTable('requests').set({ updated_at: now }).where('id', '=', requestId).execute();
      return conv.id;
    });
    deps.kick();
    return { conversationId, dropped };
  };

  return { send };
}

interface MailboxFrom {
  id: number;
  portalId: number;
  address: string;
  replyAddress: boolean;
}

/** One typed field may hold several addresses separated by commas or semicolons (outside quotes). */
function splitList(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === ',' || ch === ';')) {
      if (cur.trim() !== '') out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}
