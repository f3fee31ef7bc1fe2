import addressparser from 'nodemailer/lib/addressparser/index.js';
import { PARTICIPANTS_PER_MAIL_MAX } from '../kernel/limits.js';
import { storableText } from '../store/keys.js';
import { isFormSender } from './portal-mail.js';
import type { Address, ParsedMail } from './types.js';

/*
 * Who a new request is for, and who else takes part. Pure, no I/O: the intake looks up what only the store
 * knows (whether the sender is one of our users, our own mailbox addresses) and the forwarded part's header
 * (read back from the blob store before the transaction), and passes them in.
 *
 * Precedence, first that applies decides; every step leaves its reason line for the intake log:
 *   1. From is one of the portal's form senders and Reply-To holds a usable address → Reply-To.
 *   2. From is a known user (a technician or admin) and the mail is a forward → the original sender, from the
 *      attached message/rfc822 part's From first, else the inline forward block's From: line. Nothing usable
 *      found → the technician, with a reason.
 *   3. From holds a usable address → From.
 *   4. From missing or garbage → Sender, then Reply-To, then Return-Path, each fallback named in the trace.
 *   5. Nothing usable anywhere → no requester, and the reason says so ("no usable sender address: …").
 */

export interface RequesterFacts {
  /** The portal's form/no-reply senders (portal mail settings). */
  formSenders: readonly string[];
  /** Whether the From address belongs to a known user (users table), looked up by the caller. */
  fromIsUser: boolean;
  /** The header block of the mail's first message/rfc822 part, when it has one (intake/forwarded-head.ts). */
  forwardedHead: string | null;
}

export interface RequesterDecision {
  requester: Address | null;
  /** Where it came from (the trace says it in words too). */
  via: 'from' | 'reply-to' | 'forward' | 'sender' | 'return-path' | 'technician' | null;
  reasons: string[];
}

/** A usable mailbox address: one @, a local part without spaces or specials, a domain of labels. */
export function usableAddress(value: string | null | undefined): boolean {
  if (!value || value.length > 254) return false;
  const at = value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1) return false;
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  return (
    local.length <= 64 &&
    /^[^\s@<>()[\]\\,;:"\p{Cc}]+$/u.test(local) &&
    !local.startsWith('.') &&
    !local.endsWith('.') &&
    /^[\p{L}\p{N}-]+(\.[\p{L}\p{N}-]+)*$/u.test(domain) &&
    !domain.startsWith('-')
  );
}

/**
 * The first usable address in a header value (`Name <a@b>`, a bare address, a group's first member). The name
 * is storable as it is: a forwarded part's header is read raw and an encoded word may decode to NUL
 * (`=?utf-8?q?=00?=`), which PostgreSQL refuses in the requester's name (the mail would fail to store every round).
 */
export function firstAddress(value: string | null | undefined): Address | null {
  if (!value) return null;
  // Outlook writes `Name [mailto:a@b]` in its inline forward blocks; addressparser reads that as a group.
  // `[` ends the address too: otherwise every `[mailto:` of a value without `]` scans to its end (quadratic).
  const mailto = /\[mailto:([^\]\s[]+)\]/i.exec(value);
  if (mailto && usableAddress(mailto[1]!)) {
    return {
      address: mailto[1]!.toLowerCase(),
      name: storableText(decodeWords(value.slice(0, mailto.index).trim())),
    };
  }
  const visit = (list: ReturnType<typeof addressparser>): Address | null => {
    for (const entry of list) {
      if ('group' in entry && entry.group) {
        const found = visit(entry.group);
        if (found) return found;
      } else if ('address' in entry && usableAddress(entry.address)) {
        return { address: entry.address.toLowerCase(), name: storableText(decodeWords(entry.name ?? '')) };
      }
    }
    return null;
  };
  try {
    return visit(addressparser(value.replace(/\s+/g, ' ')));
  } catch {
    return null;
  }
}

/** Decodes RFC 2047 encoded words (a forwarded part's header is read raw), UTF-8 and Latin-1; others stay. */
export function decodeWords(text: string): string {
  return text
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (whole, charset: string, enc: string, data: string) => {
      const label = charset.toLowerCase().split('*')[0]!;
      if (!['utf-8', 'utf8', 'iso-8859-1', 'latin1', 'us-ascii', 'windows-1252'].includes(label))
        return whole;
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : Buffer.from(
              data
                .replace(/_/g, ' ')
                .replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
              'latin1',
            );
      try {
        return new TextDecoder(label.startsWith('utf') ? 'utf-8' : 'windows-1252', { fatal: true }).decode(
          bytes,
        );
      } catch {
        return whole;
      }
    })
    .replace(/^"(.*)"$/, '$1');
}

/** Subjects mail clients write on a forward: English, German (WG), French (TR), Spanish (RV), Dutch (Doorst). */
const FORWARD_SUBJECT = /^\s*(\[[^\]]*\]\s*)?((re|aw|sv|antw)\s*:\s*)*(fwd?|wg|tr|rv|doorst|vs|enc)\s*:/i;

/** Lines that open an inline forwarded or quoted original in a body (Gmail, Outlook, Apple Mail, Thunderbird). */
const INLINE_MARKERS = [
  /^-{5,}\s*(forwarded message|weitergeleitete nachricht|message transf[ée]r[ée]|mensaje reenviado)\s*-{5,}\s*$/im,
  /^-{3,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original)\s*-{3,}\s*$/im,
  /^begin forwarded message:\s*$/im,
  /^-{3,}\s*original-nachricht\s*-{3,}\s*$/im,
];

/**
 * An Outlook block without a marker line: `From: …` followed within a few lines by `Sent: …`. The value starts
 * at its first non-blank, so blanks belong to one quantifier only: `\s*:\s*(?:\*)?[ \t]*(.+)` let a line of
 * `From:` and blanks split them three ways before failing (a 2,000-blank line took a second, 200,000 hours).
 */
const OUTLOOK_BLOCK =
  /^\*?(from|von|de|da)[ \t]*:[ \t]*(?:\*[ \t]*)?(\S.*)\r?\n(?:.*\r?\n){0,3}?\*?(sent|gesendet|envoyé|enviado|inviato)\s*:/im;

export interface ForwardFacts {
  /** The mail looks forwarded: what says so. Null: not a forward. */
  signal: string | null;
  /** The original sender found, and where. */
  original: { address: Address; where: string } | null;
}

/** Whether a mail is a forward, and the original sender when its forwarded part or block names one. */
export function forwardFacts(mail: ParsedMail, forwardedHead: string | null): ForwardFacts {
  const signals: string[] = [];
  if (FORWARD_SUBJECT.test(mail.subject)) signals.push(`its subject "${mail.subject.slice(0, 80)}"`);
  if (forwardedHead !== null) signals.push('an attached message/rfc822 part');
  const text = (mail.text ?? '').slice(0, 200_000);
  let inline: Address | null = null;
  let inlineWhat = '';
  for (const marker of INLINE_MARKERS) {
    const m = marker.exec(text);
    if (!m) continue;
    // the line as far as a reader needs it: a marker of 200,000 dashes matches too
    const said = m[0].trim();
    signals.push(`the line "${said.length > 80 ? `${said.slice(0, 80)}…` : said}"`);
    // the block's From: line, within the lines right after the marker
    const after = text.slice(m.index + m[0].length, m.index + m[0].length + 2000);
    const from = /^\s*(?:\*)?(from|von|de|da)\s*:\s*(?:\*)?[ \t]*(.+)$/im.exec(after);
    inline = firstAddress(from?.[2]);
    inlineWhat = `the From: line after "${said.length > 80 ? `${said.slice(0, 80)}…` : said}"`;
    break;
  }
  if (!inline) {
    const block = OUTLOOK_BLOCK.exec(text);
    if (block) {
      if (!inlineWhat) signals.push('an Outlook "From: … Sent: …" block');
      inline = firstAddress(block[2]);
      inlineWhat = 'the From: line of the Outlook "From: … Sent: …" block';
    }
  }
  const headFrom = forwardedHead === null ? null : firstAddress(headerOf(forwardedHead, 'from'));
  const original = headFrom
    ? { address: headFrom, where: 'the attached message/rfc822 part’s From' }
    : inline
      ? { address: inline, where: inlineWhat }
      : null;
  return { signal: signals.length > 0 ? signals.join(', ') : null, original };
}

/** One header of a raw header block, unfolded (first occurrence). */
export function headerOf(block: string, name: string): string | null {
  const re = new RegExp(`^${name}[ \\t]*:[ \\t]*(.*(?:\\r?\\n[ \\t].*)*)`, 'im');
  const m = re.exec(block);
  return m ? m[1]!.replace(/\r?\n[ \t]+/g, ' ').trim() : null;
}

/** The requester of a new request, with the reasons (see the precedence above). */
export function decideRequester(mail: ParsedMail, facts: RequesterFacts): RequesterDecision {
  const from = mail.from && usableAddress(mail.from.address) ? mail.from : null;
  const replyTo = mail.replyTo.find((a) => usableAddress(a.address)) ?? null;

  if (from && isFormSender(from.address, facts.formSenders)) {
    if (replyTo) {
      return {
        requester: replyTo,
        via: 'reply-to',
        reasons: [
          `requester ${replyTo.address} from Reply-To: ${from.address} is a form sender of this portal`,
        ],
      };
    }
    return {
      requester: from,
      via: 'from',
      reasons: [
        `requester ${from.address}: a form sender of this portal, but the mail has no usable Reply-To`,
      ],
    };
  }

  if (from && facts.fromIsUser) {
    const fwd = forwardFacts(mail, facts.forwardedHead);
    if (fwd.signal !== null) {
      if (fwd.original && fwd.original.address.address !== from.address) {
        return {
          requester: fwd.original.address,
          via: 'forward',
          reasons: [
            `requester ${fwd.original.address.address}: forwarded by the technician ${from.address} (${fwd.signal}); the original sender from ${fwd.original.where}`,
          ],
        };
      }
      return {
        requester: from,
        via: 'technician',
        reasons: [
          `requester ${from.address}: the technician's own forward (${fwd.signal}) names no usable original sender`,
        ],
      };
    }
  }

  if (from) return { requester: from, via: 'from', reasons: [] };

  const raw = mail.headers.from;
  const what =
    raw === undefined
      ? 'the mail has no From'
      : raw.trim() === ''
        ? 'From is empty'
        : `From "${raw.slice(0, 120)}" holds no usable address`;
  const tried: string[] = [];
  const sender = firstAddress(mail.headers.sender);
  if (sender) {
    return {
      requester: sender,
      via: 'sender',
      reasons: [`requester ${sender.address} from Sender: ${what}`],
    };
  }
  tried.push(mail.headers.sender === undefined ? 'no Sender' : 'Sender holds no usable address');
  if (replyTo) {
    return {
      requester: replyTo,
      via: 'reply-to',
      reasons: [`requester ${replyTo.address} from Reply-To: ${what}, ${tried.join(', ')}`],
    };
  }
  tried.push(mail.replyTo.length === 0 ? 'no Reply-To' : 'Reply-To holds no usable address');
  const returnPath = firstAddress(mail.headers['return-path']);
  if (returnPath) {
    return {
      requester: returnPath,
      via: 'return-path',
      reasons: [`requester ${returnPath.address} from Return-Path: ${what}, ${tried.join(', ')}`],
    };
  }
  tried.push(
    mail.headers['return-path'] === undefined
      ? 'no Return-Path'
      : `Return-Path "${mail.headers['return-path'].slice(0, 120)}" holds no usable address`,
  );
  return { requester: null, via: null, reasons: [`no usable sender address: ${what}, ${tried.join(', ')}`] };
}

/**
 * The participants a mail adds: its CC addresses, minus our own addresses and aliases, minus the requester
 * (and anyone in `exclude`), usable and de-duplicated, at most PARTICIPANTS_PER_MAIL_MAX.
 */
export function ccParticipants(
  mail: ParsedMail,
  own: ReadonlySet<string>,
  exclude: readonly (string | null | undefined)[],
): { participants: Address[]; reasons: string[] } {
  const skip = new Set(exclude.filter((a): a is string => !!a).map((a) => a.toLowerCase()));
  const out: Address[] = [];
  let ownSkipped = 0;
  let over = 0;
  for (const cc of mail.cc) {
    const address = cc.address.toLowerCase();
    if (!usableAddress(address) || skip.has(address)) continue;
    if (own.has(address)) {
      ownSkipped++;
      continue;
    }
    skip.add(address);
    if (out.length >= PARTICIPANTS_PER_MAIL_MAX) {
      over++;
      continue;
    }
    out.push({ address, name: cc.name });
  }
  const reasons: string[] = [];
  if (out.length > 0) reasons.push(`participants from CC: ${out.map((p) => p.address).join(', ')}`);
  if (ownSkipped > 0)
    reasons.push(`${ownSkipped} CC address${ownSkipped === 1 ? ' is' : 'es are'} our own, not participants`);
  if (over > 0)
    reasons.push(`${over} more CC addresses left out (at most ${PARTICIPANTS_PER_MAIL_MAX} per mail)`);
  return { participants: out, reasons };
}

/** Words in a local part that say nobody reads what is sent there (no-reply@, bounces+x@, team-donotreply@). */
const NO_REPLY_WORD = /(^|[-_.+])(no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|bounces?)([-_.+]|$)/i;
/** Whole local parts of mail machines. */
const MACHINE_LOCAL = /^(mailer[-_.]?daemon|postmaster|listserv|majordomo|auto[-_.]?reply|autoresponder)$/i;

/** Whether an address is a no-reply-style sender (no-reply@, donotreply@, mailer-daemon@, bounces+x@…). */
export function isNoReplyAddress(address: string): boolean {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  return NO_REPLY_WORD.test(local) || MACHINE_LOCAL.test(local);
}
