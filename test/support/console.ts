import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { StrictPage } from './browser.js';

/**
 * The console's test harness: the real CLI and a real `mailintake serve` in their own processes, a free port,
 * and signing in through the login form. Every console test (people, mailboxes, requests, operations) uses it.
 */
// test/support/ in the checkout, or .bench/test/support/ when compiled for the scripts: the package root is the
// nearest folder above that has bin/mailintake.js
const root = packageRoot(import.meta.dirname);
const bin = path.join(root, 'bin', 'mailintake.js');

export async function freePort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => probe.once('listening', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  return port;
}

/** The real CLI in its own process, `stdin` piped in (how an admin passes a password). */
export function cli(
  env: NodeJS.ProcessEnv,
  args: string[],
  stdin = '',
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: root,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
    child.stdin.end(stdin);
  });
}

/**
 * `mailintake serve`, resolved when it has printed its last start-up line (what to do next: open the console, or
 * create the first admin), which comes after "listening on".
 */
export async function serve(
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string; nextStep: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [bin, 'serve'], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const [url, nextStep] = await new Promise<[string, string]>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)[\s\S]*\n((?:Open |No admin yet)[^\n]*)\n/.exec(out);
      if (m?.[1] && m[2]) resolve([m[1], m[2]]);
    });
    void closed.then(() => reject(new Error(`serve ended early:\n${out}\n${err}`)));
  });
  return {
    child,
    url,
    nextStep,
    stop: async () => {
      child.kill('SIGTERM');
      await closed;
    },
  };
}

/** Signs in through the login form (any page: a StrictPage of the tests, or a plain one of the scripts). */
export async function signIn(p: Pick<StrictPage, 'page'>, url: string, email: string, password: string) {
  await p.page.goto(`${url}/login`);
  await p.page.getByLabel('Email').fill(email);
  await p.page.getByLabel('Password').fill(password);
  return Promise.all([
    p.page.waitForNavigation(),
    p.page.getByRole('button', { name: 'Sign in' }).click(),
  ]).then(([response]) => response);
}

function packageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'bin', 'mailintake.js'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no bin/mailintake.js above ${from}`);
  }
}
