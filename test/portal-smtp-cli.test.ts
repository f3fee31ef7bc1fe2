import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRunner } from './support/cli.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { type SmtpTestServer, startSmtpServer } from './support/smtp.js';

/**
 * `mailintake portal smtp show | set | test | clear`, in-process, on both engines, against two real SMTP servers on
 * loopback (the portal's own and the instance's, each with its own AUTH PLAIN account). The human output says which
 * server is in effect; --json gives the view; a bad file names every field; exit codes are the kit's (0, 1 for a
 * coded error, 2 for a usage error). Every byte printed is checked for both passwords at the end.
 */

const PORTAL_PASSWORD = 'Cli-Portal-Smtp-Secret-64';
const INSTANCE_PASSWORD = 'Cli-Instance-Smtp-Secret-27';

describe.each(ENGINES)('portal smtp commands on %s', (engine) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;
  let portalServer: SmtpTestServer;
  let instanceServer: SmtpTestServer;
  const transcript: string[] = [];
  const run = cliRunner(() => env, transcript);
  const file = (name: string) => path.join(dir, name);

  beforeAll(async () => {
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    env = fresh.env;
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-portal-smtp-cli-'));
    portalServer = await startSmtpServer({
      tls: 'starttls',
      auth: { username: 'portal-mailer', password: PORTAL_PASSWORD },
    });
    instanceServer = await startSmtpServer({
      tls: 'starttls',
      auth: { username: 'mailer', password: INSTANCE_PASSWORD },
    });
    const portalSettings = {
      host: '127.0.0.1',
      port: portalServer.port,
      username: 'portal-mailer',
      password: PORTAL_PASSWORD,
      from: 'Sales <sales-desk@example.test>',
      caFile: portalServer.caFile,
    };
    await writeFile(file('portal-smtp.json'), JSON.stringify(portalSettings));
    const { password: _password, ...noPassword } = portalSettings;
    await writeFile(file('portal-smtp-kept.json'), JSON.stringify(noPassword));
    await writeFile(
      file('instance-smtp.json'),
      JSON.stringify({
        host: '127.0.0.1',
        port: instanceServer.port,
        username: 'mailer',
        password: INSTANCE_PASSWORD,
        from: 'helpdesk@example.test',
        caFile: instanceServer.caFile,
      }),
    );
    await writeFile(
      file('bad-smtp.json'),
      JSON.stringify({ host: 'mail server', port: 0, password: PORTAL_PASSWORD, from: 'x' }),
    );
    expect((await run(['portal', 'add', 'sales'])).code).toBe(0);
  });

  afterAll(async () => {
    await portalServer?.close();
    await instanceServer?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await cleanup?.();
  });

  it('says that no server is in effect, then the instance’s; an unknown portal is a coded error, no name a usage error', async () => {
    const none = await run(['portal', 'smtp', 'show', 'sales']);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain(
      'Portal sales has no outgoing server, and neither has the instance: its replies wait in the outbox.',
    );
    expect(JSON.parse((await run(['portal', 'smtp', 'show', 'sales', '--json'])).stdout)).toEqual({
      portal: 'sales',
      inEffect: 'none',
      own: null,
    });
    const noServer = await run(['portal', 'smtp', 'test', 'sales', '--to', 'admin@example.test']);
    expect(noServer.code).toBe(1);
    expect(noServer.stderr).toMatch(/^error NOT_FOUND: portal sales has no outgoing SMTP server of its own/);

    const unknown = await run(['portal', 'smtp', 'show', 'nowhere']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error NOT_FOUND: no portal named "nowhere"/);
    const unknownJson = await run([
      'portal',
      'smtp',
      'set',
      'nowhere',
      '--file',
      file('portal-smtp.json'),
      '--json',
    ]);
    expect(unknownJson.code).toBe(1);
    expect(JSON.parse(unknownJson.stdout)).toMatchObject({ error: 'NOT_FOUND' });
    expect((await run(['portal', 'smtp', 'show'])).code).toBe(2);
    expect((await run(['portal', 'smtp', 'set', 'sales'])).code).toBe(2);

    expect((await run(['smtp', 'set', '--file', file('instance-smtp.json')])).code).toBe(0);
    const instance = await run(['portal', 'smtp', 'show', 'sales']);
    expect(instance.code).toBe(0);
    expect(instance.stdout).toContain(
      "Portal sales has no outgoing server of its own: its replies go through the instance's (mailintake smtp show).",
    );
    expect(JSON.parse((await run(['portal', 'smtp', 'show', 'sales', '--json'])).stdout)).toMatchObject({
      inEffect: 'instance',
      own: null,
    });
  });

  it('rejects a bad file naming every field, and saves a good one as the server in effect', async () => {
    const bad = await run(['portal', 'smtp', 'set', 'sales', '--file', file('bad-smtp.json')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error INVALID_SETTINGS: /);
    for (const field of ['host', 'port', 'password', 'from'])
      expect(bad.stderr).toMatch(new RegExp(`^ {2}${field}: `, 'm'));
    const missing = await run(['portal', 'smtp', 'set', 'sales', '--file', file('no-such.json')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('no-such.json');
    expect(JSON.parse((await run(['portal', 'smtp', 'show', 'sales', '--json'])).stdout).inEffect).toBe(
      'instance',
    );

    const set = await run(['portal', 'smtp', 'set', 'sales', '--file', file('portal-smtp.json')]);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain(
      'Saved. Send a test mail with: mailintake portal smtp test sales --to ADDRESS',
    );
    expect(set.stdout).toContain(
      'Portal sales sends its replies, forwards and acknowledgements through its own server:',
    );
    expect(set.stdout).toContain(`server:   127.0.0.1:${portalServer.port}`);
    expect(set.stdout).toContain('TLS:      STARTTLS required');
    expect(set.stdout).toContain('username: portal-mailer');
    expect(set.stdout).toContain('password: (set; never shown)');

    // without the password, the same username keeps the stored one
    const kept = await run([
      'portal',
      'smtp',
      'set',
      'sales',
      '--file',
      file('portal-smtp-kept.json'),
      '--json',
    ]);
    expect(kept.code).toBe(0);
    const json = JSON.parse(kept.stdout);
    expect(json).toMatchObject({
      portal: 'sales',
      inEffect: 'portal',
      own: { host: '127.0.0.1', port: portalServer.port, username: 'portal-mailer', passwordSet: true },
    });
    expect(json.own).not.toHaveProperty('password');
    // the instance's server and the other portal are untouched
    expect(JSON.parse((await run(['smtp', 'show', '--json'])).stdout)).toMatchObject({
      port: instanceServer.port,
      username: 'mailer',
    });
    expect(JSON.parse((await run(['portal', 'smtp', 'show', 'default', '--json'])).stdout).inEffect).toBe(
      'instance',
    );
  });

  it('sends the test mail through the portal’s own server and says so; a server that is down is exit 1 naming its port', async () => {
    const r = await run(['portal', 'smtp', 'test', 'sales', '--to', 'admin@example.test']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^Test mail to admin@example\.test accepted by the portal's own server in \d+ ms: 250 /,
    );
    const [mail] = await portalServer.waitFor(1);
    expect(mail).toMatchObject({ user: 'portal-mailer', secure: true, to: ['admin@example.test'] });
    expect(mail!.from).toBe('sales-desk@example.test');
    expect(instanceServer.mails).toEqual([]);

    const json = await run(['portal', 'smtp', 'test', 'sales', '--to', 'admin@example.test', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, through: 'portal', to: 'admin@example.test' });
    await portalServer.waitFor(2);

    await portalServer.stop();
    try {
      const down = await run(['portal', 'smtp', 'test', 'sales', '--to', 'admin@example.test']);
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/^error CONNECT_FAILED: /);
      expect(down.stderr).toContain(`127.0.0.1:${portalServer.port}`);
      // what to check, in the SMTP settings' own field names (not a mailbox's "server" and "protocol")
      expect(down.stderr).toContain(
        '  hint: No connection could be made to the SMTP server. Check "host" and "port"',
      );
      expect(down.stderr).not.toContain('"protocol"');
    } finally {
      await portalServer.start();
    }
    expect(instanceServer.mails).toEqual([]);
  });

  it('clear falls back to the instance’s server, and the test mail then goes there', async () => {
    const cleared = await run(['portal', 'smtp', 'clear', 'sales']);
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain(
      "Portal sales has no outgoing server of its own: its replies go through the instance's (mailintake smtp show).",
    );
    const r = await run(['portal', 'smtp', 'test', 'sales', '--to', 'admin@example.test']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^Test mail to admin@example\.test accepted by the instance's server in \d+ ms: 250 /,
    );
    const [mail] = await instanceServer.waitFor(1);
    expect(mail).toMatchObject({ user: 'mailer', from: 'helpdesk@example.test', to: ['admin@example.test'] });
    expect(portalServer.mails.length).toBe(2);

    // again: nothing to remove, the same answer and exit 0
    const again = await run(['portal', 'smtp', 'clear', 'sales', '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ portal: 'sales', inEffect: 'instance', own: null });
  });

  it('never printed a password', () => {
    const all = transcript.join('\n');
    expect(all.length).toBeGreaterThan(2000);
    expect(all).not.toContain(PORTAL_PASSWORD);
    expect(all).not.toContain(INSTANCE_PASSWORD);
  });
});
