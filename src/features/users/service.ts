import crypto from 'node:crypto';
import { MailintakeError } from '../../kernel/errors.js';
import {
  PASSWORD_LINK_TTL_MS,
  SESSION_IDLE_MS,
  SESSION_MAX_AGE_MS,
  USER_EMAIL_MAX_CHARS,
} from '../../kernel/limits.js';
import type { Store } from '../../store/db.js';
import { systemLog } from '../../store/system-log.js';
import { checkPassword, hashPassword, verifyPassword } from './passwords.js';
import { createUserRepo, type UserRow } from './repo.js';
import { admission, DEFAULT_THROTTLE, type ThrottleLimits } from './throttle.js';
import { ROLES, type Role, type SessionUser, type UserView } from './views.js';

export interface UsersService {
  /**
   * A new admin or technician (of `portal`). With `password` it is set now; with `link` the answer holds a
   * one-time URL to set it (valid 24 h). There is no default password: one of the two is required.
   */
  create(input: {
    email: string;
    role: string;
    portal?: string;
    password?: string;
    link?: boolean;
  }): Promise<{ user: UserView; link?: string }>;
  list(): Promise<UserView[]>;
  /** Disables the account and ends its sessions. */
  disable(email: string): Promise<UserView>;
  /**
   * A session for the right email and password: its token (for the cookie) and who signed in. Refused with
   * UNAUTHORIZED, or SIGN_IN_THROTTLED after too many failures for the account or from the address.
   */
  signIn(input: {
    email: string;
    password: string;
    address: string;
  }): Promise<{ token: string; user: SessionUser }>;
  /** Who holds this session token, or null (unknown, expired, idle too long, user disabled). */
  session(token: string): Promise<SessionUser | null>;
  signOut(token: string): Promise<void>;
  /** The email a password-set link is for; NOT_FOUND when it is unknown, used or expired. */
  linkFor(token: string): Promise<{ email: string }>;
  /** Sets the password through a link (once) and ends the user's sessions. */
  setPassword(token: string, password: string): Promise<{ email: string }>;
  /** Where browsers reach this installation (links, and whether cookies are Secure). */
  readonly publicUrl: string;
}

const sha256 = (text: string) => crypto.createHash('sha256').update(text).digest('hex');
const token = () => crypto.randomBytes(32).toString('base64url');

function fieldError(field: string, message: string, text = `${field}: ${message}`): MailintakeError {
  return new MailintakeError('INVALID_SETTINGS', text, { details: { fields: [{ field, message }] } });
}

/** Lowercased and trimmed, so that one person is one account whatever the case they type. */
export function normalEmail(email: string): string {
  const e = email.trim().toLowerCase();
  if (e.length > USER_EMAIL_MAX_CHARS)
    throw fieldError('email', `at most ${USER_EMAIL_MAX_CHARS} characters`);
  if (!/^[^\s@]+@[^\s@]+$/.test(e)) throw fieldError('email', 'an email address (name@example.org)');
  return e;
}

function viewOf(row: UserRow): UserView {
  return {
    id: row.id,
    email: row.email,
    role: row.role as Role,
    portal: row.portal_name ?? null,
    passwordSet: row.password_hash !== null,
    createdAt: row.created_at,
    disabledAt: row.disabled_at,
  };
}

const linkGone = () =>
  new MailintakeError(
    'NOT_FOUND',
    'This link is unknown, was used already or has expired. Ask an admin for a new one.',
  );

const WRONG = () => new MailintakeError('UNAUTHORIZED', 'Wrong email or password.');

export function createUsersService(deps: {
  store: Store;
  publicUrl: string;
  throttle?: ThrottleLimits;
  now?: () => number;
}): UsersService {
  const repo = createUserRepo(deps.store);
  const limits = deps.throttle ?? DEFAULT_THROTTLE;
  const now = deps.now ?? Date.now;
  const log = (message: string, details: Record<string, unknown>) =>
    systemLog(deps.store.db, { level: 'info', category: 'settings-changed', message, details });

  const newLink = async (userId: number) => {
    const t = token();
    await repo.insertLink({ tokenHash: sha256(t), userId, expiresAt: now() + PASSWORD_LINK_TTL_MS });
    return `${deps.publicUrl}/set-password?token=${t}`;
  };
  const openLink = async (t: string) => {
    const link = t.length <= 100 ? await repo.link(sha256(t)) : undefined;
    const user = link ? await repo.userById(link.user_id) : undefined;
    if (!link || !user || link.used_at !== null || Date.parse(link.expires_at) <= now() || user.disabled_at) {
      throw linkGone();
    }
    return { link, user };
  };

  return {
    publicUrl: deps.publicUrl,
    create: async (input) => {
      const email = normalEmail(input.email);
      if (!(ROLES as readonly string[]).includes(input.role)) throw fieldError('role', 'admin or technician');
      let portalId: number | null = null;
      if (input.role === 'technician') {
        if (!input.portal)
          throw fieldError('portal', 'a technician works the requests of one portal: name it');
        portalId = (await repo.portalId(input.portal)) ?? null;
        if (portalId === null) throw fieldError('portal', `no portal named "${input.portal}"`);
      } else if (input.portal) {
        throw fieldError('portal', 'admins see every portal: leave it out');
      }
      if (input.link && input.password !== undefined)
        throw fieldError('password', 'either a password or --link');
      if (!input.link && input.password === undefined)
        throw fieldError('password', 'required (or use --link)');
      const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
      if (await repo.userByEmail(email)) {
        throw new MailintakeError('CONFLICT', `A user ${email} exists already.`);
      }
      let id: number;
      try {
        id = (await repo.insertUser({ email, role: input.role, portalId, passwordHash })).id;
      } catch (e) {
        // a concurrent create of the same address loses on the unique index
        if (await repo.userByEmail(email))
          throw new MailintakeError('CONFLICT', `A user ${email} exists already.`);
        throw e;
      }
      await log(`user ${email} created (${input.role})`, {
        email,
        role: input.role,
        portal: input.portal ?? null,
      });
      const user = viewOf((await repo.userById(id)) as UserRow);
      return input.link ? { user, link: await newLink(id) } : { user };
    },
    list: async () => (await repo.users()).map(viewOf),
    disable: async (email) => {
      const row = await repo.userByEmail(normalEmail(email));
      if (!row) throw new MailintakeError('NOT_FOUND', `no user ${email}`);
      await repo.disable(row.id);
      await log(`user ${row.email} disabled`, { email: row.email });
      return viewOf((await repo.userById(row.id)) as UserRow);
    },
    signIn: async ({ email, password, address }) => {
      const e = email.trim().toLowerCase().slice(0, USER_EMAIL_MAX_CHARS);
      const keys = [`account:${sha256(e)}`, `address:${sha256(address)}`];
      // Each attempt is counted before its password is checked, so parallel guesses cannot outrun the lock.
      const t0 = now();
      const states = [];
      for (const k of keys) states.push(await repo.reserveAttempt(k, t0, limits));
      const wait = Math.max(...states.map((s) => admission(s, t0, limits)));
      if (wait > 0) {
        const retryAfterSeconds = Math.ceil(wait / 1000);
        throw new MailintakeError(
          'SIGN_IN_THROTTLED',
          `Too many failed sign-ins. Try again in ${Math.ceil(retryAfterSeconds / 60)} minute(s).`,
          { details: { retryAfterSeconds } },
        );
      }
      const row = await repo.userByEmail(e);
      const ok = await verifyPassword(password, row?.password_hash ?? null);
      if (!row || !ok || row.disabled_at !== null) {
        for (const k of keys) await repo.lockIfReached(k, now(), limits);
        throw WRONG();
      }
      await repo.releaseAttempt(keys[1] as string);
      await repo.clearFailures(keys[0] as string);
      await repo.deleteExpired(now(), SESSION_IDLE_MS);
      const t = token();
      const csrf = token();
      await repo.insertSession({
        id: sha256(t),
        userId: row.id,
        csrf,
        expiresAt: now() + SESSION_MAX_AGE_MS,
      });
      return {
        token: t,
        user: { id: row.id, email: row.email, role: row.role as Role, portal: row.portal_name ?? null, csrf },
      };
    },
    session: async (t) => {
      if (t.length > 100) return null;
      const s = await repo.session(sha256(t));
      if (!s) return null;
      const at = now();
      if (Date.parse(s.expires_at) <= at || Date.parse(s.last_seen_at) + SESSION_IDLE_MS <= at) {
        await repo.deleteSession(s.id);
        return null;
      }
      const user = await repo.userById(s.user_id);
      if (!user || user.disabled_at !== null) return null;
      // one write a minute at most: a page view is a read
      if (at - Date.parse(s.last_seen_at) > 60_000) await repo.touchSession(s.id);
      return {
        id: user.id,
        email: user.email,
        role: user.role as Role,
        portal: user.portal_name ?? null,
        csrf: s.csrf_token,
      };
    },
    signOut: async (t) => {
      if (t.length <= 100) await repo.deleteSession(sha256(t));
    },
    linkFor: async (t) => ({ email: (await openLink(t)).user.email }),
    setPassword: async (t, password) => {
      checkPassword(password);
      const { link, user } = await openLink(t);
      const hash = await hashPassword(password);
      if (!(await repo.useLink(link.token_hash))) throw linkGone();
      await repo.setPassword(user.id, hash);
      await log(`password of ${user.email} set through a link`, { email: user.email });
      return { email: user.email };
    },
  };
}
