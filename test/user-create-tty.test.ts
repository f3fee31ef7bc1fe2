import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `mailintake user create` typed at a terminal (a real pseudo-terminal): the password is asked for twice and never
 * shown; two different answers create nobody. Piped input is covered by test/console-people.test.ts.
 */
const root = path.resolve(import.meta.dirname, '..');
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mailintake-tty-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function typed(answers: string[], email: string) {
  const prompts = ['not shown', 'again'];
  const args = answers.flatMap((a, i) => [prompts[i]!, a]);
  const run = spawnSync(
    'python3',
    [
      path.join(root, 'test', 'support', 'pty-run.py'),
      ...args,
      '--',
      process.execPath,
      path.join(root, 'bin', 'mailintake.js'),
      'user',
      'create',
      '--email',
      email,
      '--role',
      'admin',
    ],
    { env: { ...process.env, MAILINTAKE_DATA_DIR: dataDir, DATABASE_URL: '' }, encoding: 'utf8' },
  );
  return { code: run.status, shown: run.stdout };
}

describe('user create at a terminal', () => {
  it('asks twice, shows neither answer, and creates the user', () => {
    const secret = 'a typed passphrase 42';
    const run = typed([secret, secret], 'tty@example.org');
    expect(run.shown).toContain('Password (not shown):');
    expect(run.shown).toContain('User tty@example.org created (admin).');
    expect(run.shown).not.toContain(secret);
    expect(run.code).toBe(0);
  });

  it('two different answers create nobody and say why', () => {
    const run = typed(['first passphrase 123', 'other passphrase 456'], 'differ@example.org');
    expect(run.shown).toContain('INVALID_SETTINGS');
    expect(run.shown).toContain('The two passwords differ');
    expect(run.code).not.toBe(0);
    const list = spawnSync(process.execPath, [path.join(root, 'bin', 'mailintake.js'), 'user', 'list'], {
      env: { ...process.env, MAILINTAKE_DATA_DIR: dataDir, DATABASE_URL: '' },
      encoding: 'utf8',
    });
    expect(list.stdout).not.toContain('differ@example.org');
  });
});
