import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { CUT_MARKER_TEXT, DEFAULT_PARSE_LIMITS } from '../src/mail/parse.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { buildMail } from './kit/mails.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * A body far over the display limit, end to end (real Dovecot, both engines): the request opens with the
 * first part of the body and a visible marker, the intake log says what was cut, and the raw copy keeps the
 * whole mail byte for byte.
 */
describe.each(ENGINES)('a huge body is cut for display, %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'long', password: 'long-pw' }] });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
  });

  it('keeps the first part with a marker, logs the reason, and the raw copy is whole', async () => {
    const limit = DEFAULT_PARSE_LIMITS.maxTextBytes;
    const line = 'Zeile mit Umlauten: äöü, 漢字 and a ticket number 12345.\r\n';
    const body = line.repeat(Math.ceil((limit * 3) / Buffer.byteLength(line)));
    const sent = buildMail({ subject: 'very long', messageId: 'very-long@example.test', body });
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'long', 'long'));
    await deliverMaildir(dovecot, 'long', [sent]);
    const [s] = await rt.services.fetch.once({ mailbox: 'long' });
    expect(s).toMatchObject({ fetched: 1, created: 1, errored: 0 });

    const list = await rt.services.requests.list({});
    const req = await rt.services.requests.show(list.items[0]!.id);
    const marker = `\n\n${CUT_MARKER_TEXT}\n`;
    expect(req.text!.endsWith(marker)).toBe(true);
    const kept = req.text!.slice(0, -marker.length);
    expect(Buffer.byteLength(kept)).toBeLessThanOrEqual(limit);
    // the limit counts the body as sent (CRLF line ends), less the last line or so
    expect(Buffer.byteLength(kept.replace(/\n/g, '\r\n'))).toBeGreaterThan(limit - 1000);
    expect(body.replace(/\r\n/g, '\n').startsWith(kept)).toBe(true);

    const [entry] = (await rt.services.log.list({ mailbox: 'long' })).items;
    expect(
      entry!.reasons.some((r) =>
        /^body cut at the display limit of \d+ bytes \(text kept \d+ bytes, \d+ more bytes not read\)/.test(
          r,
        ),
      ),
    ).toBe(true);
    const { open } = await rt.services.log.raw(entry!.id);
    expect((await buffer(open())).equals(sent)).toBe(true);
  });
});
