import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * The disk refuses the raw copies (here: a file sits where the raw-pack directory must be, a real ENOTDIR from
 * the real file system). Nothing may point at bytes that were never made durable, nothing is acknowledged,
 * and once the disk is fixed the same mails go in on the next round.
 */
describe.each(ENGINES)('when the data directory cannot be written, on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let fresh: Awaited<ReturnType<typeof freshConfig>>;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'disk', password: 'disk-pw' }] });
    fresh = await freshConfig(engine);
    rt = await openRuntime(fresh.config);
    await rt.services.mailboxes.add({
      name: 'disk',
      protocol: 'imaps',
      server: 'localhost',
      port: dovecot.ports.imaps,
      username: 'disk',
      password: 'disk-pw',
      emailAddress: 'disk@example.test',
      caFile: dovecot.caFile,
    });
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await fresh?.cleanup();
  });

  it('records STORE_FAILED, acknowledges nothing, and takes the mails in once the disk is fixed', async () => {
    const blocker = path.join(fresh.config.dataDir, 'raw');
    fs.rmSync(blocker, { recursive: true, force: true });
    fs.writeFileSync(blocker, 'not a directory');
    await deliverMaildir(dovecot, 'disk', [buildMail({ subject: 'one' }), buildMail({ subject: 'two' })]);

    const [failed] = await rt.services.fetch.once({ mailbox: 'disk' });
    expect(failed).toMatchObject({ reached: true, fetched: 2, created: 0, errored: 2 });
    const errors = (await rt.services.log.list({ mailbox: 'disk' })).items;
    expect(errors.map((e) => [e.outcome, e.errorCode, e.rawAvailable, e.acknowledged])).toEqual([
      ['error', 'STORE_FAILED', false, false],
      ['error', 'STORE_FAILED', false, false],
    ]);
    expect((await rt.services.requests.list({})).total).toBe(0);
    expect((await listInbox(dovecot, 'disk')).filter((m) => m.flags.includes('\\Seen'))).toEqual([]);

    fs.rmSync(blocker);
    const [fixed] = await rt.services.fetch.once({ mailbox: 'disk' });
    expect(fixed).toMatchObject({ fetched: 2, created: 2, errored: 0 });
    const log = (await rt.services.log.list({ mailbox: 'disk' })).items;
    expect(log.map((e) => [e.outcome, e.attempts, e.rawAvailable, e.acknowledged])).toEqual([
      ['created', 2, true, true],
      ['created', 2, true, true],
    ]);
  });
});
