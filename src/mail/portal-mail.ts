import { z } from 'zod';
import {
  ACK_BODY_MAX_CHARS,
  ACK_SUBJECT_MAX_CHARS,
  ACKS_PER_SENDER_MAX_CEILING,
  DEFAULT_ACKS_PER_SENDER_PER_HOUR,
  DEFAULT_SENDER_REQUESTS_MAX,
  DEFAULT_SENDER_WINDOW_MINUTES,
  FORM_SENDERS_MAX,
  SENDER_REQUESTS_MAX_CEILING,
  SENDER_WINDOW_MAX_MINUTES,
} from '../kernel/limits.js';
import { check, invalidSettings } from '../kernel/plain-issues.js';

/*
 * A portal's mail settings: who the requester of a mail is (form senders, CC participants), the acknowledgement
 * a new request's requester receives, and the per-sender limit on new requests. Stored like the attachment
 * policy: only the fields an admin set, as one JSON column (portals.mail_settings), so that a later change of a
 * default reaches every portal that did not override it, and a new field needs no migration. Pure: read by the
 * intake (which may not import features/) and by features/portals, which validates what an admin sends.
 */

/** The placeholders an acknowledgement template may use; anything else in {{…}} is refused when saved. */
export const ACK_PLACEHOLDERS = ['id', 'subject', 'requester'] as const;
type Placeholder = (typeof ACK_PLACEHOLDERS)[number];

export interface PortalMailSettings {
  /**
   * Senders whose mails take the requester from Reply-To (web forms, no-reply relays): a lower-cased address,
   * or `*@domain` for every address of a domain.
   */
  formSenders: string[];
  /** CC'd people become participants of the request (and of later conversations). */
  ccParticipants: boolean;
  acknowledgement: {
    enabled: boolean;
    subject: string;
    body: string;
    /** Acknowledgements one sender receives per hour at most. */
    perSenderPerHour: number;
  };
  /** New requests one sender may open per window; maxRequests 0: no limit. */
  rateLimit: { maxRequests: number; windowMinutes: number };
}

export const DEFAULT_ACK_SUBJECT = 'We received your request ##{{id}}##: {{subject}}';
export const DEFAULT_ACK_BODY = [
  'Hello {{requester}},',
  '',
  'thank you for your mail. It is recorded as request {{id}} and we will answer it as soon as we can.',
  'To add to it, reply to this mail and keep ##{{id}}## in the subject.',
  '',
  'This is an automatic message.',
].join('\n');

export const DEFAULT_PORTAL_MAIL_SETTINGS: PortalMailSettings = Object.freeze({
  formSenders: [],
  ccParticipants: true,
  acknowledgement: {
    enabled: false,
    subject: DEFAULT_ACK_SUBJECT,
    body: DEFAULT_ACK_BODY,
    perSenderPerHour: DEFAULT_ACKS_PER_SENDER_PER_HOUR,
  },
  rateLimit: { maxRequests: DEFAULT_SENDER_REQUESTS_MAX, windowMinutes: DEFAULT_SENDER_WINDOW_MINUTES },
}) as PortalMailSettings;

const EMAIL = /^[^\s@<>(),;:"[\]\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/;
const DOMAIN_PATTERN = /^\*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/;

const formSender = z
  .string()
  .trim()
  .toLowerCase()
  .refine((s) => EMAIL.test(s) || DOMAIN_PATTERN.test(s), {
    message: 'each entry must be an address (no-reply@forms.example) or *@domain (*@typeform.io)',
  });

/** What a template may hold: text with only the known placeholders. */
function template(max: number, what: string) {
  return z
    .string()
    .min(1, `the ${what} must not be empty`)
    .max(max, `the ${what} is at most ${max} characters`)
    .superRefine((s, ctx) => {
      const unknown = unknownPlaceholders(s);
      if (unknown.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown placeholder${unknown.length === 1 ? '' : 's'} ${unknown.map((u) => `{{${u}}}`).join(', ')}; use ${ACK_PLACEHOLDERS.map((p) => `{{${p}}}`).join(', ')}`,
        });
      }
    });
}

const whole = (min: number, max: number, what: string) =>
  z
    .number(`must be a whole number (${what})`)
    .int(`must be a whole number (${what})`)
    .min(min, `must be at least ${min} (${what})`)
    .max(max, `must be at most ${max} (${what})`);

/** The stored form: every field optional (missing or null: the default), nothing unknown. */
const storedSchema = z.strictObject({
  formSenders: z.array(formSender).max(FORM_SENDERS_MAX).nullish(),
  ccParticipants: z.boolean('must be true or false').nullish(),
  acknowledgement: z
    .strictObject({
      enabled: z.boolean('must be true or false').nullish(),
      subject: template(ACK_SUBJECT_MAX_CHARS, 'subject')
        .refine((s) => !/[\r\n]/.test(s), { message: 'the subject is one line' })
        .nullish(),
      body: template(ACK_BODY_MAX_CHARS, 'body').nullish(),
      perSenderPerHour: whole(
        1,
        ACKS_PER_SENDER_MAX_CEILING,
        'acknowledgements per sender per hour',
      ).nullish(),
    })
    .nullish(),
  rateLimit: z
    .strictObject({
      maxRequests: whole(
        0,
        SENDER_REQUESTS_MAX_CEILING,
        'new requests per sender per window; 0: no limit',
      ).nullish(),
      windowMinutes: whole(1, SENDER_WINDOW_MAX_MINUTES, 'minutes').nullish(),
    })
    .nullish(),
});
export type StoredPortalMailSettings = z.output<typeof storedSchema>;

/** `{{name}}` tokens that are not placeholders we fill. */
export function unknownPlaceholders(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/\{\{\s*([^{}]*?)\s*\}\}/g)) {
    const name = m[1] ?? '';
    if (!(ACK_PLACEHOLDERS as readonly string[]).includes(name) && !out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * Validates stored or submitted settings and fills in the defaults. INVALID_SETTINGS names every bad field
 * (`acknowledgement.subject`, `rateLimit.maxRequests`, `formSenders`) with why; nothing is half taken.
 */
export function resolvePortalMailSettings(input: unknown = {}): PortalMailSettings {
  const checked = check(storedSchema, input, 'mailSettings');
  if (!checked.ok) throw invalidSettings('portal mail settings', checked.fields);
  const s = checked.data;
  const d = DEFAULT_PORTAL_MAIL_SETTINGS;
  return {
    formSenders: [...new Set(s.formSenders ?? d.formSenders)],
    ccParticipants: s.ccParticipants ?? d.ccParticipants,
    acknowledgement: {
      enabled: s.acknowledgement?.enabled ?? d.acknowledgement.enabled,
      subject: s.acknowledgement?.subject ?? d.acknowledgement.subject,
      body: s.acknowledgement?.body ?? d.acknowledgement.body,
      perSenderPerHour: s.acknowledgement?.perSenderPerHour ?? d.acknowledgement.perSenderPerHour,
    },
    rateLimit: {
      maxRequests: s.rateLimit?.maxRequests ?? d.rateLimit.maxRequests,
      windowMinutes: s.rateLimit?.windowMinutes ?? d.rateLimit.windowMinutes,
    },
  };
}

/**
 * A patch over the fields an admin set before: one level deep (acknowledgement.subject alone changes the
 * subject alone), `null` restores a field's — or a whole group's — default. Returns what is to be stored
 * (only fields set), validated.
 */
export function mergePortalMailSettings(
  stored: Record<string, unknown>,
  patch: Record<string, unknown>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...stored };
  for (const [k, v] of Object.entries(patch)) {
    const before = merged[k];
    if (v === null) delete merged[k];
    else if (isObject(v) && isObject(before)) merged[k] = dropNulls({ ...before, ...v });
    else merged[k] = isObject(v) ? dropNulls(v) : v;
  }
  for (const [k, v] of Object.entries(merged)) {
    if (isObject(v) && Object.keys(v).length === 0) delete merged[k];
  }
  resolvePortalMailSettings(merged); // throws INVALID_SETTINGS naming every bad field; nothing saved
  return merged;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function dropNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
}

/** Whether a sender (lower-cased address) is one of the portal's form/no-reply senders. */
export function isFormSender(address: string, formSenders: readonly string[]): boolean {
  const a = address.toLowerCase();
  const domain = a.slice(a.lastIndexOf('@') + 1);
  return formSenders.some((p) => (p.startsWith('*@') ? p.slice(2) === domain : p === a));
}

/**
 * A template with its placeholders filled. Values are made one line for the subject by the caller (the outbox
 * writes the subject through oneLine); here only the text is put in.
 */
export function fillTemplate(text: string, values: Record<Placeholder, string>): string {
  return text.replace(/\{\{\s*([^{}]*?)\s*\}\}/g, (whole, name: string) =>
    Object.hasOwn(values, name) ? values[name as Placeholder] : whole,
  );
}
