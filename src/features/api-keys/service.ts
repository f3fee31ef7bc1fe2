import crypto from 'node:crypto';
import { MailintakeError } from '../../kernel/errors.js';
import type { Store } from '../../store/db.js';
import { createApiKeyRepo } from './repo.js';
import type { ApiKeyView } from './views.js';

export interface ApiKeysService {
  /** Returns the key once; only its hash is stored. */
  create(name: string): Promise<{ key: string; view: ApiKeyView }>;
  list(): Promise<ApiKeyView[]>;
  revoke(id: number): Promise<void>;
  /** The key's name when the presented key is valid (constant-time compare of hashes), else null; records last use. */
  verify(presented: string): Promise<string | null>;
}

const hash = (key: string) => crypto.createHash('sha256').update(key).digest('hex');

/**
 * API keys: 32 random bytes, shown once. Only a sha256 is stored — a key is high-entropy, so a plain hash is
 * enough (no password-hashing KDF needed) and lets us look the key up by its hash.
 */
export function createApiKeysService(deps: { store: Store }): ApiKeysService {
  const repo = createApiKeyRepo(deps.store);
  return {
    create: async (name) => {
      const trimmed = name.trim();
      if (!trimmed || trimmed.length > 100) {
        throw new MailintakeError('INVALID_SETTINGS', 'an API key needs a name (1 to 100 characters)', {
          details: { fields: [{ field: 'name', message: '1 to 100 characters' }] },
        });
      }
      const key = `mik_${crypto.randomBytes(32).toString('base64url')}`;
      const row = await repo.insert({ name: trimmed, prefix: key.slice(0, 10), keyHash: hash(key) });
      return {
        key,
        view: { id: row.id, name: row.name, prefix: row.prefix, createdAt: row.created_at, lastUsedAt: null },
      };
    },
    list: async () =>
      (await repo.list()).map((r) => ({
        id: r.id,
        name: r.name,
        prefix: r.prefix,
        createdAt: r.created_at,
        lastUsedAt: r.last_used_at,
      })),
    revoke: async (id) => {
      if (!(await repo.delete(id))) throw new MailintakeError('NOT_FOUND', `no API key #${id}`);
    },
    /** The key's name when the presented key is valid (it names the actor in the system log), else null. */
    verify: async (presented) => {
      if (!presented.startsWith('mik_') || presented.length > 200) return null;
      const h = hash(presented);
      const row = await repo.byHash(h);
      // The lookup is by hash, so timing reveals nothing about the key; the compare is constant-time anyway.
      if (!row || !crypto.timingSafeEqual(Buffer.from(row.key_hash), Buffer.from(h))) return null;
      await repo.markUsed(row.id);
      return row.name;
    },
  };
}
