import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { MailintakeError } from '../src/kernel/errors.js';
import { ENGINES, freshConfig } from './support/engines.js';

/**
 * A mailbox file is checked in one pass: the portal and caFile (checked against the database and the disk)
 * are reported together with the schema's findings, so an admin fixes a file in one round.
 */

const base = {
  name: 'support',
  protocol: 'imap',
  server: 'mail.example.test',
  username: 'helpdesk',
  password: 'Correct-Horse-Battery-9',
  emailAddress: 'help@example.com',
};

async function fieldsOf(rt: Runtime, input: unknown): Promise<Record<string, string>> {
  try {
    await rt.services.mailboxes.add(input);
  } catch (err) {
    if (!(err instanceof MailintakeError) || err.code !== 'INVALID_SETTINGS') throw err;
    return Object.fromEntries((err.details.fields ?? []).map((f) => [f.field, f.message]));
  }
  throw new Error('the mailbox was added');
}

describe.each(ENGINES)('mailbox validation in one pass (%s)', (engine) => {
  let rt: Runtime;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    rt = await openRuntime(fresh.config);
  });
  afterAll(async () => {
    await rt?.close();
    await cleanup?.();
  });

  it('names a missing portal and an unreadable caFile together with every other bad field', async () => {
    const broken: Record<string, unknown>[] = [
      { port: 0 },
      { port: 'x', protocol: 'imap4' },
      { emailAddress: 'not-an-address', intervalSeconds: 1 },
      { server: undefined, surprise: true },
      {},
    ];
    for (const bad of broken) {
      const fields = await fieldsOf(rt, {
        ...base,
        ...bad,
        portal: 'no-such-portal',
        caFile: '/no/such/ca.pem',
      });
      for (const key of Object.keys(bad).filter((k) => k !== 'surprise'))
        expect(fields, key).toHaveProperty(key);
      expect(fields.portal).toBe('no portal named "no-such-portal" (see: mailintake portal list)');
      expect(fields.caFile).toBe('there is no such file: /no/such/ca.pem');
    }
    // a valid file with only those two wrong says just those two
    expect(await fieldsOf(rt, { ...base, portal: 'nope', caFile: '/no/such/ca.pem' })).toEqual({
      portal: 'no portal named "nope" (see: mailintake portal list)',
      caFile: 'there is no such file: /no/such/ca.pem',
    });
    // the console's add page is /mailboxes/new: no mailbox may take that address, whatever the case
    for (const reserved of ['new', 'NEW', ' New '])
      expect((await fieldsOf(rt, { ...base, name: reserved })).name).toContain('"new" is reserved');
    // the default portal exists; nothing is stored by a refused add
    expect(await rt.services.mailboxes.list()).toEqual([]);
    expect((await rt.services.mailboxes.add(base)).portal).toBe('default');
  });
});
