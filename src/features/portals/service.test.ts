import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../store/db.js';
import { createPortalRepo } from './repo.js';
import { createPortalsService } from './service.js';

describe('portals service (SQLite in a temporary folder)', () => {
  let dataDir: string;
  let store: Store;
  beforeEach(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'mailintake-portals-'));
    store = await openStore({ dataDir });
    await createPortalRepo(store).ensureDefault();
  });
  afterEach(async () => {
    await store.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('adds a portal once, refusing a bad or taken name', async () => {
    const portals = createPortalsService({ store });
    expect((await portals.add('sales')).headerThreading).toBe(true);
    await expect(portals.add('sales')).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(portals.add('-bad name')).rejects.toMatchObject({ code: 'INVALID_SETTINGS' });
    expect((await portals.list()).map((p) => p.name)).toEqual(['default', 'sales']);
  });

  it('merges attachment policy changes field by field; null restores a default; a bad field saves nothing', async () => {
    const portals = createPortalsService({ store });
    const set = await portals.update('default', { attachmentPolicy: { maxSizeMb: 5 } });
    expect(set.attachmentPolicy.maxSizeMb).toBe(5);
    const both = await portals.update('default', { attachmentPolicy: { notifyOnDrop: false } });
    expect(both.attachmentPolicy).toMatchObject({ maxSizeMb: 5, notifyOnDrop: false });
    await expect(portals.update('default', { attachmentPolicy: { maxSizeMb: 'big' } })).rejects.toMatchObject(
      {
        code: 'INVALID_SETTINGS',
      },
    );
    const restored = await portals.update('default', { attachmentPolicy: { maxSizeMb: null } });
    expect(restored.attachmentPolicy).toMatchObject({ maxSizeMb: 25, notifyOnDrop: false });
    expect((await portals.update('default', { headerThreading: false })).headerThreading).toBe(false);
    await expect(portals.update('nope', {})).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('reports a damaged stored policy as a coded error naming the row, not a crash', async () => {
    await store.db
      .updateTable('portals')
      .set({ attachment_policy: '[1,2]' })
      .where('name', '=', 'default')
      .execute();
    const id = (
      await store.db
        .selectFrom('portals')
        .select('id')
        .where('name', '=', 'default')
        .executeTakeFirstOrThrow()
    ).id;
    await expect(createPortalsService({ store }).list()).rejects.toMatchObject({
      code: 'INTERNAL',
      details: { table: 'portals', column: 'attachment_policy', id },
    });
  });
});
