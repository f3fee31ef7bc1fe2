import { nowIso, type Store } from '../../store/db.js';

/** The api_keys table: a key's name, its first characters (to tell keys apart) and its hash. */
export function createApiKeyRepo(store: Store) {
  const db = store.db;
  return {
    insert: (row: { name: string; prefix: string; keyHash: string }) =>
      db
        .insertInto('api_keys')
        .values({ name: row.name, prefix: row.prefix, key_hash: row.keyHash, created_at: nowIso() })
        .returningAll()
        .executeTakeFirstOrThrow(),
    list: () => db.selectFrom('api_keys').selectAll().orderBy('id').execute(),
    /** true when there was such a key. */
    delete: async (id: number) =>
      Number((await db.deleteFrom('api_keys').where('id', '=', id).executeTakeFirst()).numDeletedRows) > 0,
    byHash: (keyHash: string) =>
      db
        .selectFrom('api_keys')
        .select(['id', 'key_hash', 'name'])
        .where('key_hash', '=', keyHash)
        .executeTakeFirst(),
    markUsed: async (id: number) => {
      await db.updateTable('api_keys').set({ last_used_at: nowIso() }).where('id', '=', id).execute();
    },
  };
}
