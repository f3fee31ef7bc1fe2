import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadSecretBox } from '../../kernel/secret-box.js';
import { SmtpServers } from '../../notify/smtp-settings.js';
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
  const service = () =>
    createPortalsService({
      store,
      smtp: new SmtpServers(store, loadSecretBox({ secretKey: undefined, dataDir })),
      kickOutbox: () => {},
    });
  afterEach(async () => {
    await store.close();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('adds a portal once, refusing a bad or taken name', async () => {
    const portals = service();
    expect((await portals.add('sales')).headerThreading).toBe(true);
    await expect(portals.add('sales')).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(portals.add('-bad name')).rejects.toMatchObject({ code: 'INVALID_SETTINGS' });
    expect((await portals.list()).map((p) => p.name)).toEqual(['default', 'sales']);
  });

  it('merges attachment policy changes field by field; null restores a default; a bad field saves nothing', async () => {
    const portals = service();
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
    await expect(service().list()).rejects.toMatchObject({
      code: 'INTERNAL',
      details: { table: 'portals', column: 'attachment_policy', id },
    });
  });

  it('keeps a portal’s own outgoing server apart from the instance’s; clearing it falls back', async () => {
    const portals = service();
    await portals.add('sales');
    expect(await portals.smtp.get('sales')).toEqual({ portal: 'sales', inEffect: 'none', own: null });
    const set = await portals.smtp.set('sales', {
      host: 'smtp.sales.example',
      username: 'sales',
      password: 'pw-of-sales',
      from: 'Sales <sales@example.test>',
    });
    expect(set).toMatchObject({ inEffect: 'portal', own: { host: 'smtp.sales.example', passwordSet: true } });
    expect(JSON.stringify(set)).not.toContain('pw-of-sales');
    // stored sealed, under the portal's own key
    const rows = await store.db.selectFrom('instance_settings').selectAll().execute();
    expect(rows.map((r) => r.key)).toEqual([expect.stringMatching(/^smtp\.portal\.\d+$/)]);
    expect(rows[0]!.value).not.toContain('pw-of-sales');
    // the other portal is untouched
    expect((await portals.smtp.get('default')).own).toBeNull();
    // a bad field is named with its reason; nothing saved
    await expect(
      portals.smtp.set('sales', { host: 'smtp.sales.example', from: 'not an address' }),
    ).rejects.toMatchObject({
      code: 'INVALID_SETTINGS',
      details: { fields: [expect.objectContaining({ field: 'from' })] },
    });
    expect((await portals.smtp.get('sales')).own?.from).toBe('Sales <sales@example.test>');
    expect((await portals.smtp.clear('sales')).inEffect).toBe('none');
    await expect(portals.smtp.get('nowhere')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
