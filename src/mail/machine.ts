import type { ParsedMail } from './types.js';

/*
 * Is a mail one a machine sent back at us: our own mail come back, a bounce, an auto-reply? Pure, no I/O.
 *
 * Precedence, strongest first (the first rule that matches decides, and its reasons are the trace):
 *   1. own-loop   our own outgoing mail (our Message-ID domain AND our loop header): nothing else matters, it is
 *                 ours whatever it looks like.
 *   2. bounce     a delivery report (DSN, ARF, the non-standard MTA forms). Before auto-reply because a DSN often
 *                 carries Auto-Submitted too, and "bounce" is the more precise answer (it names a mail we sent).
 *   3. auto-reply RFC 3834 and vendor headers, read receipts, out-of-office subjects.
 *   4. null       a human's mail (or a machine we cannot tell from one): taken in as usual.
 *
 * What is deliberately NOT enough on its own, since ordinary mail carries it too:
 *   - Auto-Submitted other than auto-replied (auto-generated: Jira, monitoring, cron) on a mail that answers
 *     nothing: a machine's notice a help desk takes in as a request (never acknowledged), not an auto-reply;
 *   - a null Return-Path (spam has one; so do some list servers): it only backs up a subject or a sender;
 *   - X-Auto-Response-Suppress (Outlook sets it on meeting invitations and on mail sent by scripts);
 *   - Precedence: bulk / junk / list (newsletters and mailing lists, through which customers do write): only
 *     Precedence: auto_reply is an auto-reply; bulk/junk count together with a null Return-Path (what RFC 3834
 *     §3.3 asks auto-responders to send with);
 *   - a bounce-like subject from a person (customers forward bounces to ask what went wrong: "Fwd: Undelivered…").
 */

export type MachineKind = 'own-loop' | 'bounce' | 'auto-reply';

export interface MachineVerdict {
  kind: MachineKind | null;
  /** Why, for the intake log (empty for a human's mail). */
  reasons: string[];
  /** For a bounce: the Message-ID of the mail it reports, when the report names it (kept for later linking). */
  bouncedMessageId?: string;
}

/** What identifies mail Mailintake sent (the notification outbox, notify/outbox.ts + smtp-transport.ts). */
export const OWN_MESSAGE_ID_DOMAIN = 'mailintake.invalid';
/** Our loop header, set on every mail Mailintake sends (notify/smtp-transport.ts). */
export const OWN_LOOP_HEADER = 'X-Mailintake-Loop';

export function machineKind(mail: ParsedMail): MachineVerdict {
  return ownLoop(mail) ?? bounce(mail) ?? autoReply(mail) ?? { kind: null, reasons: [] };
}

function ownLoop(mail: ParsedMail): MachineVerdict | null {
  const loop = mail.headers[OWN_LOOP_HEADER.toLowerCase()];
  const id = mail.messageId ?? '';
  // Both: the domain alone could be forged or quoted by anyone, and the header alone survives a forward.
  if (loop === undefined || !id.toLowerCase().endsWith(`@${OWN_MESSAGE_ID_DOMAIN}`)) return null;
  return {
    kind: 'own-loop',
    reasons: [
      `Message-ID <${id}> is ours (@${OWN_MESSAGE_ID_DOMAIN}) and it carries ${OWN_LOOP_HEADER}: ${loop}`,
    ],
  };
}

const REPORT_PARTS = new Set([
  'message/delivery-status',
  'message/global-delivery-status',
  'message/feedback-report',
]);

/** Delivery-failure subjects of the MTAs (Postfix, Sendmail, Exim, qmail, Exchange, Gmail, Yahoo, Notes…). */
const BOUNCE_SUBJECT =
  /^\s*(\[?(postmaster|system administrator)\]?\s*[-:]?\s*)?(undeliver|undelivered|returned mail|return(ed)? to sender|mail delivery (failed|failure|system)|delivery (status notification|failure|notification|failed|has failed|report)|failure notice|failed mail|non-?deliver|nondelivery|mail system error|message (not delivered|delivery failure|could not be delivered|you sent (was|has been) (blocked|rejected))|delivery (to the following|problem)|could not send message|warning: (could not|message)|mail could not be delivered|unzustellbar|nicht zustellbar|non remis|non recapitabile|no se puede entregar|onbestelbaar|kan ikke leveres|notification d'état de remise|undelivered mail|rejected:|permanent delivery failure|sorry, your message|your message (was|could not|wasn't|has been|cannot)|message undeliverable|warning: message|delayed mail|delivery delay|mail delivery failed|mail failure|there was an error sending your mail)/i;

/** Senders that are MTAs, not people. */
const DAEMON_LOCAL =
  /^(mailer-daemon|mailer_daemon|mailerdaemon|mail-daemon|maildaemon|postmaster|post_master|double-bounce|bounce[s]?|mdaemon|mail\.?delivery\.?(system|subsystem)?)(@|$)/i;
const DAEMON_NAME =
  /^(mail(er)? delivery (sub)?system|mail ?delivery|mailer[- ]daemon|postmaster|mail administrator|system administrator|internet mail delivery|mail delivery subsystem)\b/i;

/** Phrases the MTAs put at the top of a plain-text bounce. */
const BOUNCE_BODY =
  /(this is the mail system at host|i'm afraid i wasn't able to deliver|was not delivered to|could not be delivered to|delivery has failed to these recipients|delivery to the following recipient(s)? (failed|has been delayed)|your message did not reach some or all|this message was created automatically by mail delivery software|the following addresses had permanent fatal errors|the original message was received at|message could not be delivered|unable to deliver (your|the) message|permanent error|hi\. this is the qmail-send program|delivery status notification|could not deliver|undeliverable|the following recipient\(s\) could not be reached|message not delivered|returned to sender|remote host said|smtp error from remote|did not reach the following recipient|there was an error delivering your mail|diagnostic-code|final-recipient|status: 5\.\d|status: 4\.\d|user unknown|mailbox (is )?(full|unavailable)|no such user|recipient address rejected)/i;

function bounce(mail: ParsedMail): MachineVerdict | null {
  const reasons = bounceReasons(mail);
  if (reasons === null) return null;
  const bounced = reportedMessageId(mail);
  return {
    kind: 'bounce',
    // the id is the sender's text: the trace shows at most SHOWN_ID_CHARS of it (the field keeps it whole)
    reasons: bounced ? [...reasons, `it reports on <${shownId(bounced)}>`] : reasons,
    ...(bounced ? { bouncedMessageId: bounced } : {}),
  };
}

const SHOWN_ID_CHARS = 256;
const shownId = (id: string) => (id.length > SHOWN_ID_CHARS ? `${id.slice(0, SHOWN_ID_CHARS)}…` : id);

function bounceReasons(mail: ParsedMail): string[] | null {
  const h = mail.headers;
  const report = reportType(h['content-type']);
  if (report === 'delivery-status' || report === 'global-delivery-status')
    return [`multipart/report; report-type=${report} (a DSN, RFC 3464)`];
  if (report === 'feedback-report')
    return ['multipart/report; report-type=feedback-report (an abuse report on a mail sent, RFC 5965)'];
  const part = mail.attachments.find((a) => REPORT_PARTS.has(a.contentType.toLowerCase()));
  if (part) return [`it carries a ${part.contentType.toLowerCase()} part (a delivery report)`];
  if (h['x-failed-recipients'] !== undefined)
    return [`X-Failed-Recipients: ${h['x-failed-recipients']} (Exim's bounce header)`];

  const from = mail.from?.address ?? '';
  const name = mail.from?.name ?? '';
  // Amazon SES reports bounces through SNS as a JSON text mail.
  const sns = /\\?"notificationType\\?"\s*:\s*\\?"(Bounce|Complaint|Delivery)\\?"/.exec(mail.text ?? '');
  if (sns && /@sns\.amazonaws\.com$/i.test(from))
    return [`an Amazon SES ${sns[1]?.toLowerCase()} notification from ${from}`];
  const nullSender = isNullReturnPath(h['return-path']);
  const rawFrom = h.from ?? '';
  const daemon =
    DAEMON_LOCAL.test(from) ||
    DAEMON_NAME.test(name) ||
    (from === '' && (nullSender || /^\s*"?mailer-daemon\b/i.test(rawFrom)));
  // A machine that is not an MTA (no-reply@) counts only with the MTA's text (below).
  const noReply = /^(no-?reply|do-?not-?reply|noreply)@/i.test(from);
  const subject = BOUNCE_SUBJECT.test(mail.subject);
  const body = BOUNCE_BODY.exec(`${mail.text ?? ''}\n${mail.html ?? ''}`.slice(0, 20_000));
  const who = from === '' ? 'an unnamed sender' : from;
  // A daemon sender with the MTA's subject or text; a null sender with both (a person forwarding a bounce has
  // neither the null sender nor the subject at its start: "Fwd: Undelivered Mail…").
  if (daemon && subject) return [`a delivery-failure subject "${mail.subject}" from ${who}`];
  // The sender says it is an auto-responder's answer (RFC 3834): only the MTA's own subject overrules that
  // (Exim marks its bounces auto-replied); the weaker guesses below do not.
  if (/^\s*auto-replied\b/i.test(h['auto-submitted'] ?? '')) return null;
  if (daemon && body) return [`sent by ${who} with a delivery-failure text ("${body[0]}")`];
  if (
    noReply &&
    body &&
    mail.attachments.some((a) => /^(message\/rfc822|text\/rfc822-headers)$/i.test(a.contentType))
  )
    return [`sent by ${who} with a delivery-failure text ("${body[0]}") and the returned mail attached`];
  if (nullSender && subject && body)
    return [`Return-Path <> with a delivery-failure subject "${mail.subject}" and text ("${body[0]}")`];
  if (
    /^mailer-daemon\b/i.test(from) ||
    /^mailer-daemon\b/i.test(name) ||
    /mailer-daemon@/i.test(h['return-path'] ?? '')
  )
    return [`sent by MAILER-DAEMON (${who})`];
  return null;
}

/** The Message-ID of the reported mail: from its returned-mail part, or quoted in the report's text. */
function reportedMessageId(mail: ParsedMail): string | undefined {
  if (mail.returnedMessageId) return mail.returnedMessageId;
  const text = mail.text ?? '';
  const own = mail.messageId;
  for (const m of text.matchAll(/^\s*message-id:\s*<([^>\s]+)>/gim)) {
    if (m[1] && m[1] !== own) return m[1];
  }
  return undefined;
}

/**
 * Out-of-office subjects in the languages our customers write in (start of the subject). Only the phrases mail
 * systems put there: "Vacation request", "Abwesenheit melden" or "Je suis absent demain" are people's subjects.
 */
const AUTO_REPLY_SUBJECT =
  /^\s*(auto:|auto-?reply|auto(matic)? ?(reply|response|answer)|automatic reply|automatische antwort|automatisch antwoord|abwesenheitsnotiz|out of (the )?office|réponse automatique|reponse automatique|absence du bureau|absent(e)? du bureau|risposta automatica|fuori sede|respuesta automática|respuesta automatica|fuera de la oficina|resposta automática|resposta automatica|autosvar|automatisk svar|automaattinen vastaus|automatyczna odpowiedź|automatická odpověď|automatikus válasz|otomatik yanıt|otomatik cevap|автоматический ответ|自動応答|自動返信|自动回复|i am (currently )?out of (the )?office)/i;
/** Lotus Notes: "Jane Doe is out of the office." */
const NOTES_SUBJECT = /\bis out of (the )?office\b/i;

function autoReply(mail: ParsedMail): MachineVerdict | null {
  const h = mail.headers;
  const auto = h['auto-submitted'];
  if (auto !== undefined) {
    const value = (/^\s*([\w-]+)/.exec(auto)?.[1] ?? '').toLowerCase();
    // RFC 3834 §5: auto-replied is a machine's answer. Any other value but "no" (auto-generated, auto-notified)
    // is machine-made but not necessarily an answer: Exchange marks its out-of-office replies auto-generated,
    // and so do Jira, monitoring systems and cron mail, which a help desk must take in as requests. It is an
    // auto-reply when it answers something (In-Reply-To / References, or Exchange's X-Auto-Response-Suppress);
    // otherwise the rules below decide (an out-of-office subject), and failing those it is taken in, flagged
    // (mail/classify.ts autoSubmitted), and never acknowledged.
    if (value === 'auto-replied') return verdict(`Auto-Submitted: ${auto} (RFC 3834)`);
    if (value !== '' && value !== 'no') {
      const answers =
        mail.inReplyTo.length > 0
          ? 'In-Reply-To'
          : mail.references.length > 0
            ? 'References'
            : h['x-auto-response-suppress'] !== undefined
              ? 'X-Auto-Response-Suppress'
              : null;
      if (answers) return verdict(`Auto-Submitted: ${auto} (RFC 3834) on an answer (${answers})`);
    }
  }
  for (const [key, label] of [
    ['x-autoreply', 'X-Autoreply'],
    ['x-autorespond', 'X-Autorespond'],
    ['x-autoresponder', 'X-Autoresponder'],
  ] as const) {
    const value = h[key];
    if (value !== undefined && !/^\s*(no|false|0)?\s*$/i.test(value)) return verdict(`${label}: ${value}`);
  }
  const generated = h['x-autogenerated'];
  if (generated !== undefined && /^\s*reply\b/i.test(generated))
    return verdict(`X-AutoGenerated: ${generated}`);
  if (h['x-ms-exchange-inbox-rules-loop'] !== undefined && h['x-auto-response-suppress'] !== undefined)
    return verdict(
      'an Exchange inbox rule sent it (X-MS-Exchange-Inbox-Rules-Loop, X-Auto-Response-Suppress)',
    );
  if (reportType(h['content-type']) === 'disposition-notification')
    return verdict('a read receipt (multipart/report; report-type=disposition-notification)');
  const precedence = (h.precedence ?? '').trim().toLowerCase();
  if (precedence === 'auto_reply') return verdict('Precedence: auto_reply');
  if (AUTO_REPLY_SUBJECT.test(mail.subject) || NOTES_SUBJECT.test(mail.subject))
    return verdict(`an out-of-office subject "${mail.subject}"`);
  if ((precedence === 'bulk' || precedence === 'junk') && isNullReturnPath(h['return-path']))
    return verdict(`Precedence: ${precedence} with Return-Path <> (how RFC 3834 §3.3 auto-responders send)`);
  return null;
}

function verdict(reason: string): MachineVerdict {
  return { kind: 'auto-reply', reasons: [reason] };
}

function isNullReturnPath(value: string | undefined): boolean {
  return value !== undefined && /^\s*<\s*>\s*$/.test(value);
}

function reportType(contentType: string | undefined): string | null {
  const ct = (contentType ?? '').toLowerCase();
  if (!/^\s*multipart\/report\b/.test(ct)) return null;
  return /;\s*report-type\s*=\s*"?([\w-]+)"?/.exec(ct)?.[1] ?? '';
}
