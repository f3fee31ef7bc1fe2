import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { ERROR_HELP } from '../src/kernel/errors.js';
import { type CorpusMail, corpusMails, corpusRoot, hasCorpus } from './kit/corpus.js';
import { deliverMaildir, listInbox } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

if (!hasCorpus) console.log(`[corpus-intake] SKIPPED: no corpus at ${corpusRoot} (set MAILINTAKE_CORPUS)`);

/**
 * Every real-world mail of the corpus, delivered into a real Dovecot and fetched over IMAPS: each ends as a
 * request, a conversation or a coded error, and the loop never stops. One Dovecot user (and one mailbox) per
 * corpus folder, so the counts come out per folder.
 */
describe.skipIf(!hasCorpus).each(ENGINES)('the whole corpus through a real IMAP mailbox on %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  const byFolder = new Map<string, CorpusMail[]>();
  const user = (folder: string) => folder.replace(/[^a-z0-9]/gi, '').toLowerCase();

  beforeAll(async () => {
    for (const mail of corpusMails()) {
      const list = byFolder.get(mail.folder) ?? [];
      list.push(mail);
      byFolder.set(mail.folder, list);
    }
    dovecot = await startDovecot({
      users: [...byFolder.keys()].map((f) => ({ name: user(f), password: 'pw' })),
    });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
    for (const [folder, mails] of byFolder) {
      await deliverMaildir(
        dovecot,
        user(folder),
        mails.map((m) => m.raw),
      );
      await rt.services.mailboxes.add({
        name: user(folder),
        protocol: 'imaps',
        server: 'localhost',
        port: dovecot.ports.imaps,
        username: user(folder),
        password: 'pw',
        emailAddress: `${user(folder)}@example.test`,
        caFile: dovecot.caFile,
      });
    }
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  it('each mail becomes a request, a conversation or a coded error; nothing is left behind', async () => {
    const summaries = await rt.services.fetch.once({});
    const rows: string[] = [];
    for (const s of summaries) {
      const delivered = byFolder.get([...byFolder.keys()].find((f) => user(f) === s.mailbox)!)!.length;
      expect(s.reached).toBe(true);
      expect(s.error).toBeNull();
      expect(s.fetched).toBe(delivered);
      expect(s.created + s.appended + s.ignored + s.errored).toBe(delivered);
      rows.push(
        `${s.mailbox.padEnd(22)} ${String(delivered).padStart(5)} mails: ${s.created} created, ${s.appended} appended, ${s.ignored} ignored, ${s.errored} errored`,
      );
      const log = await rt.services.log.list({ mailbox: s.mailbox, limit: 500, offset: 0 });
      let total = log.total;
      expect(total).toBe(delivered);
      // Every error is coded with a documented code; every success is acknowledged on the server.
      for (let offset = 0; offset < total; offset += 500) {
        const page = await rt.services.log.list({ mailbox: s.mailbox, limit: 500, offset });
        for (const e of page.items) {
          if (e.outcome === 'error') expect(Object.keys(ERROR_HELP)).toContain(e.errorCode);
          else expect(e.acknowledged).toBe(true);
        }
      }
      total = (await listInbox(dovecot, s.mailbox)).filter((m) => !m.flags.includes('\\Seen')).length;
      expect(total).toBe(s.errored);
    }
    console.log(`[corpus-intake] ${engine}, per corpus folder:\n${rows.join('\n')}`);
    // A second round takes in nothing new and creates nothing twice.
    const again = await rt.services.fetch.once({});
    for (const s of again) expect(s).toMatchObject({ created: 0, appended: 0, ignored: 0, errored: 0 });
  });
});
