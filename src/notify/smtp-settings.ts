import fs from 'node:fs';
import { z } from 'zod';
import { MailintakeError } from '../errors.js';
import type { SecretBox } from '../security/secret-box.js';
import type { Store } from '../store/db.js';
import { readSetting, writeSetting } from '../store/instance-settings.js';
import { systemLog } from '../store/system-log.js';
import { type Tx, withTransaction } from '../store/tx.js';
import { validated } from './validate.js';

/**
 * The outgoing SMTP server that notification mail goes through (the reference's outgoing mail server), an
 * instance setting. TLS follows the mailboxes' rules: certificates are always verified (a private CA may be
 * added with `caFile`), `secure` is TLS from the first byte (port 465, RFC 8314), otherwise STARTTLS is
 * required unless the admin turns `starttls` off for a server without TLS. The password is sealed at rest and
 * never shown.
 */

const hostname = z
  .string()
  .trim()
  .min(1, 'the server name or IP address is required')
  .max(253)
  .regex(/^[A-Za-z0-9.\-:[\]]+$/, 'must be a host name or IP address, without scheme or path');

const FROM_HELP = 'must be an address such as helpdesk@example.com or "Help Desk <helpdesk@example.com>"';

/** `addr@example.com` or `Display Name <addr@example.com>`; null when it is neither. */
export function parseFromAddress(value: string): { name: string; address: string } | null {
  const text = value.trim();
  // no CR/LF or other controls: this goes into a header
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(text)) return null;
  const angled = /^(?:"([^"]*)"|([^"<>]*?))\s*<([^<>\s]+)>$/.exec(text);
  const name = angled ? (angled[1] ?? angled[2] ?? '').trim() : '';
  const address = angled ? angled[3]! : text;
  if (!z.email().safeParse(address).success) return null;
  return { name, address: address.toLowerCase() };
}

export const smtpInputSchema = z
  .strictObject({
    host: hostname,
    /** Default 465 with `secure`, else 587 (submission). */
    port: z.number('must be a number').int().min(1).max(65535).optional(),
    /** TLS from the first byte (implicit TLS, usually port 465). */
    secure: z.boolean('must be true or false').default(false),
    /** Without `secure`: require STARTTLS (default). false only for a server without TLS. */
    starttls: z.boolean('must be true or false').default(true),
    username: z
      .string()
      .min(1, 'must not be empty (leave it out for a server without login)')
      .max(500)
      .optional(),
    /** Kept when left out on an update with the same username. */
    password: z.string().min(1, 'must not be empty').max(1000).optional(),
    from: z
      .string()
      .max(400)
      .refine((v) => parseFromAddress(v) !== null, FROM_HELP),
    caFile: z.string().min(1).optional(),
  })
  // checked even when other fields are bad (`when`), so every problem is named at once
  .superRefine(
    (s, ctx) => {
      if (s.password !== undefined && s.username === undefined) {
        ctx.addIssue({ code: 'custom', path: ['password'], message: 'only used together with "username"' });
      }
      if (s.secure && s.port === 587) {
        ctx.addIssue({
          code: 'custom',
          path: ['port'],
          message: 'port 587 speaks plain SMTP with STARTTLS; leave "secure" off, or use port 465',
        });
      }
    },
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );

/** What is stored (instance setting 'smtp'): the password sealed, never in clear. */
interface StoredSmtp {
  host: string;
  port: number;
  secure: boolean;
  starttls: boolean;
  username: string | null;
  passwordSealed: string | null;
  from: string;
  caFile: string | null;
}

/** What the API and CLI show: everything but the password. */
export interface SmtpSettingsView {
  host: string;
  port: number;
  secure: boolean;
  starttls: boolean;
  username: string | null;
  passwordSet: boolean;
  from: string;
  caFile: string | null;
}

/** Settings ready to connect with (the password opened); only ever held in memory. */
export interface SmtpConfig {
  host: string;
  port: number;
  secure: boolean;
  starttls: boolean;
  username: string | null;
  password: string | null;
  from: { name: string; address: string };
  caFile: string | null;
}

const KEY = 'smtp';

export class SmtpSettings {
  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
  ) {}

  async get(): Promise<SmtpSettingsView | null> {
    const stored = await storedSmtp(this.store.db);
    return stored ? viewOf(stored) : null;
  }

  /**
   * Replaces the settings. A missing password keeps the stored one when the username stays the same (an edit
   * form cannot send back a password it was never shown). INVALID_SETTINGS names every bad field.
   */
  async set(input: unknown): Promise<SmtpSettingsView> {
    const s = validated(smtpInputSchema, input, 'SMTP settings');
    const fields: { field: string; message: string }[] = [];
    if (s.caFile) {
      try {
        fs.accessSync(s.caFile, fs.constants.R_OK);
      } catch {
        fields.push({ field: 'caFile', message: `cannot read ${s.caFile}` });
      }
    }
    return withTransaction(this.store, async (tx) => {
      const before = await storedSmtp(tx);
      let passwordSealed: string | null = null;
      if (s.username !== undefined) {
        if (s.password !== undefined) passwordSealed = this.box.seal(s.password);
        else if (before?.passwordSealed && before.username === s.username)
          passwordSealed = before.passwordSealed;
        else fields.push({ field: 'password', message: 'required with "username"' });
      }
      if (fields.length > 0) {
        throw new MailintakeError(
          'INVALID_SETTINGS',
          `Invalid SMTP settings (${fields.length} problem${fields.length === 1 ? '' : 's'}): ${fields.map((f) => f.field).join(', ')}`,
          { details: { fields } },
        );
      }
      const from = parseFromAddress(s.from)!;
      const stored: StoredSmtp = {
        host: s.host,
        port: s.port ?? (s.secure ? 465 : 587),
        secure: s.secure,
        starttls: s.starttls,
        username: s.username ?? null,
        passwordSealed,
        from: from.name ? `${from.name} <${from.address}>` : from.address,
        caFile: s.caFile ?? null,
      };
      await writeSetting(tx, KEY, stored);
      const view = viewOf(stored);
      await systemLog(tx, {
        level: 'info',
        category: 'notification-settings',
        message: `outgoing SMTP server set to ${view.host}:${view.port} (${tlsMode(view)})`,
        details: { smtp: view, previous: before ? viewOf(before) : null },
      });
      return view;
    });
  }

  /** The settings to connect with, password opened; undefined when no SMTP server is configured. */
  async config(): Promise<SmtpConfig | undefined> {
    const stored = await storedSmtp(this.store.db);
    if (!stored) return undefined;
    return {
      host: stored.host,
      port: stored.port,
      secure: stored.secure,
      starttls: stored.starttls,
      username: stored.username,
      password: stored.passwordSealed ? this.box.open(stored.passwordSealed) : null,
      from: parseFromAddress(stored.from)!,
      caFile: stored.caFile,
    };
  }
}

async function storedSmtp(tx: Tx): Promise<StoredSmtp | undefined> {
  return (await readSetting(tx, KEY)) as StoredSmtp | undefined;
}

function viewOf(s: StoredSmtp): SmtpSettingsView {
  return {
    host: s.host,
    port: s.port,
    secure: s.secure,
    starttls: s.starttls,
    username: s.username,
    passwordSet: s.passwordSealed !== null,
    from: s.from,
    caFile: s.caFile,
  };
}

/** "implicit TLS" / "STARTTLS" / "no TLS": how the connection is protected, in words. */
export function tlsMode(s: { secure: boolean; starttls: boolean }): string {
  if (s.secure) return 'implicit TLS';
  return s.starttls ? 'STARTTLS' : 'no TLS';
}
