import { type Generated, sql } from 'kysely';
import { nowIso, type Store } from '../../store/db.js';
import type { FailureState, ThrottleLimits } from './throttle.js';

/** The tables of migration 0008-people, typed here (the feature's own tables, added to the store's type). */
type PeopleTables = {
  users: {
    id: Generated<number>;
    email: string;
    role: string;
    portal_id: number | null;
    password_hash: string | null;
    created_at: string;
    disabled_at: string | null;
  };
  sessions: {
    id: string;
    user_id: number;
    csrf_token: string;
    created_at: string;
    expires_at: string;
    last_seen_at: string;
  };
  password_links: { token_hash: string; user_id: number; expires_at: string; used_at: string | null };
  sign_in_failures: { key: string; count: number; window_start: string; locked_until: string | null };
};

const iso = (ms: number) => new Date(ms).toISOString();
const ms = (text: string) => Date.parse(text);

/** The users, sessions, password links and sign-in failure counters (SQL only; the rules are in service.ts). */
export function createUserRepo(store: Store) {
  const db = store.db.withTables<PeopleTables>();
  const userColumns = [
    'users.id',
    'users.email',
    'users.role',
    'users.portal_id',
    'users.password_hash',
    'users.created_at',
    'users.disabled_at',
    'portals.name as portal_name',
  ] as const;
  const users = () => db.selectFrom('users').leftJoin('portals', 'portals.id', 'users.portal_id');
  return {
    portalId: async (name: string) =>
      (await db.selectFrom('portals').select('id').where('name', '=', name).executeTakeFirst())?.id,
    insertUser: (row: {
      email: string;
      role: string;
      portalId: number | null;
      passwordHash: string | null;
    }) =>
      db
        .insertInto('users')
        .values({
          email: row.email,
          role: row.role,
          portal_id: row.portalId,
          password_hash: row.passwordHash,
          created_at: nowIso(),
        })
        .returning('id')
        .executeTakeFirstOrThrow(),
    users: () => users().select(userColumns).orderBy('users.id').execute(),
    userByEmail: (email: string) =>
      users().select(userColumns).where('users.email', '=', email).executeTakeFirst(),
    userById: (id: number) => users().select(userColumns).where('users.id', '=', id).executeTakeFirst(),
    disable: async (id: number) => {
      await db.updateTable('users').set({ disabled_at: nowIso() }).where('id', '=', id).execute();
      await db.deleteFrom('sessions').where('user_id', '=', id).execute();
    },
    setPassword: async (id: number, hash: string) => {
      await db.updateTable('users').set({ password_hash: hash }).where('id', '=', id).execute();
      await db.deleteFrom('sessions').where('user_id', '=', id).execute();
    },

    insertSession: async (s: { id: string; userId: number; csrf: string; expiresAt: number }) => {
      const now = nowIso();
      await db
        .insertInto('sessions')
        .values({
          id: s.id,
          user_id: s.userId,
          csrf_token: s.csrf,
          created_at: now,
          expires_at: iso(s.expiresAt),
          last_seen_at: now,
        })
        .execute();
    },
    session: (id: string) => db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst(),
    touchSession: async (id: string) => {
      await db.updateTable('sessions').set({ last_seen_at: nowIso() }).where('id', '=', id).execute();
    },
    deleteSession: async (id: string) => {
      await db.deleteFrom('sessions').where('id', '=', id).execute();
    },
    /** Expired sessions and links go when someone signs in: the tables stay small without a timer. */
    deleteExpired: async (now: number, idleMs: number) => {
      await db
        .deleteFrom('sessions')
        .where((eb) => eb.or([eb('expires_at', '<=', iso(now)), eb('last_seen_at', '<=', iso(now - idleMs))]))
        .execute();
      await db.deleteFrom('password_links').where('expires_at', '<=', iso(now)).execute();
    },

    insertLink: async (l: { tokenHash: string; userId: number; expiresAt: number }) => {
      await db
        .insertInto('password_links')
        .values({ token_hash: l.tokenHash, user_id: l.userId, expires_at: iso(l.expiresAt), used_at: null })
        .execute();
    },
    link: (tokenHash: string) =>
      db.selectFrom('password_links').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst(),
    /** true when this call used the link (a second, concurrent use finds it used). */
    useLink: async (tokenHash: string) =>
      Number(
        (
          await db
            .updateTable('password_links')
            .set({ used_at: nowIso() })
            .where('token_hash', '=', tokenHash)
            .where('used_at', 'is', null)
            .executeTakeFirst()
        ).numUpdatedRows,
      ) === 1,

    /**
     * Counts one attempt for `key` in one statement (an upsert, atomic on both engines, so parallel attempts
     * each get their own count) and returns the state after it. A window that has passed, or a lock that ran
     * out, starts a new count of 1.
     */
    reserveAttempt: async (key: string, now: number, limits: ThrottleLimits): Promise<FailureState> => {
      const at = iso(now);
      const fresh = sql<boolean>`(sign_in_failures.window_start < ${iso(now - limits.windowMs)} or (sign_in_failures.locked_until is not null and sign_in_failures.locked_until <= ${at}))`;
      const row = await db
        .insertInto('sign_in_failures')
        .values({ key, count: 1, window_start: at, locked_until: null })
        .onConflict((oc) =>
          oc.column('key').doUpdateSet({
            count: sql`case when ${fresh} then 1 else sign_in_failures.count + 1 end`,
            window_start: sql`case when ${fresh} then ${at} else sign_in_failures.window_start end`,
            locked_until: sql`case when ${fresh} then null else sign_in_failures.locked_until end`,
          }),
        )
        .returning(['count', 'window_start', 'locked_until'])
        .executeTakeFirstOrThrow();
      return {
        count: Number(row.count),
        windowStart: ms(row.window_start),
        lockedUntil: row.locked_until === null ? null : ms(row.locked_until),
      };
    },
    /** A failed attempt: locks the key for `lockMs` once its count reached the limit (and it is not locked yet). */
    lockIfReached: async (key: string, now: number, limits: ThrottleLimits) => {
      await db
        .updateTable('sign_in_failures')
        .set({ locked_until: iso(now + limits.lockMs) })
        .where('key', '=', key)
        .where('count', '>=', limits.maxFailures)
        .where('locked_until', 'is', null)
        .execute();
    },
    /** A successful attempt gives its count back (an office behind one address is not locked by sign-ins). */
    releaseAttempt: async (key: string) => {
      await db
        .updateTable('sign_in_failures')
        .set({ count: sql`case when count > 0 then count - 1 else 0 end` })
        .where('key', '=', key)
        .execute();
    },
    clearFailures: async (key: string) => {
      await db.deleteFrom('sign_in_failures').where('key', '=', key).execute();
    },
  };
}
export type UserRepo = ReturnType<typeof createUserRepo>;
export type UserRow = NonNullable<Awaited<ReturnType<UserRepo['userById']>>>;
