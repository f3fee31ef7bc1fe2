import crypto from 'node:crypto';
import { MailintakeError } from '../../kernel/errors.js';
import { nowIso, type Store } from '../../store/db.js';
import type { ApiKeyView } from './views.js';

const hash = (key: string) => crypto.createHash('sha256').update(key).digest('hex');

/**
 * API keys: 32 random bytes, shown once. Only a sha256 is stored — a key is high-entropy, so a plain hash is
 * enough (no password-hashing KDF needed) and lets us look the key up by its hash.
 */
export class ApiKeys {
  constructor(private readonly store: Store) {}

  async create(name: string): Promise<{ key: string; view: ApiKeyView }> {
    const trimmed = name.trim();
    if (!trimmed || trimmed.length > 100) {
      throw new MailintakeError('INVALID_SETTINGS', 'an API key needs a name (1 to 100 characters)', {
        details: { fields: [{ field: 'name', message: '1 to 100 characters' }] },
      });
    }
    const key = `mik_${crypto.randomBytes(32).toString('base64url')}`;
    const row = await this.store.db
      .insertInto('api_keys')
      .values({ name: trimmed, prefix: key.slice(0, 10), key_hash: hash(key), created_at: nowIso() })
      .returningAll()
      .executeTakeFirstOrThrow();
    return {
      key,
      view: { id: row.id, name: row.name, prefix: row.prefix, createdAt: row.created_at, lastUsedAt: null },
    };
  }

  async list(): Promise<ApiKeyView[]> {
    const rows = await this.store.db.selectFrom('api_keys').selectAll().orderBy('id').execute();
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      prefix: r.prefix,
      createdAt: r.created_at,
      lastUsedAt: r.last_used_at,
    }));
  }

  async revoke(id: number): Promise<void> {
    const res = await this.store.db.deleteFrom('api_keys').where('id', '=', id).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new MailintakeError('NOT_FOUND', `no API key #${id}`);
  }

  /** The key's name when the presented key is valid (it names the actor in the system log), else null. */
  async verify(presented: string): Promise<string | null> {
    if (!presented.startsWith('mik_') || presented.length > 200) return null;
    const h = hash(presented);
    const row = await this.store.db
      .selectFrom('api_keys')
      .select(['id', 'key_hash', 'name'])
      .where('key_hash', '=', h)
      .executeTakeFirst();
    // The lookup is by hash, so timing reveals nothing about the key; the compare is constant-time anyway.
    if (!row || !crypto.timingSafeEqual(Buffer.from(row.key_hash), Buffer.from(h))) return null;
    await this.store.db
      .updateTable('api_keys')
      .set({ last_used_at: nowIso() })
      .where('id', '=', row.id)
      .execute();
    return row.name;
  }
}
