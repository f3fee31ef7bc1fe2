/**
 * A throwaway Dovecot 2.3 for tests: its own directory, its own self-contained config, free loopback ports,
 * started and stopped by the test run. Translated from shared/reference/dovecot-rig/dovecot-harness.sh; every
 * config line below was found necessary there (see the comments for what breaks without it).
 *
 * Several test files may each start their own instance in parallel vitest forks: nothing is shared between
 * instances (ports are picked by the kernel, base_dir/state_dir live in the instance's directory).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeCertificate } from './certificate.js';

const run = promisify(execFile);

export interface DovecotUser {
  name: string;
  password: string;
}

export interface StartDovecotOptions {
  /** Mail accounts (passwd-file, PLAIN scheme). Default alice/alice-pw and bob/bob-pw. */
  users?: DovecotUser[];
  /**
   * The one name the self-signed certificate is issued for (CN and SAN). Default: localhost, with SAN
   * localhost, 127.0.0.1 and ::1. Give another name (e.g. 'wrong.example') to test certificate mismatches.
   */
  certName?: string;
  /** Instance directory; default a fresh temp dir, removed by stop(). */
  dir?: string;
  /** As root: the unprivileged account that owns the mail files. Default 'mailtest'. */
  mailUser?: string;
  /**
   * OAuth 2.0 logins (SASL XOAUTH2 / OAUTHBEARER): an oauth2 passdb that checks every token at an RFC 7662
   * introspection endpoint (POST, HTTP Basic from the URL's userinfo; see oauth-server.ts `dovecot`). The
   * token's `sub` must equal the login name. Passwords then work only with PLAIN and LOGIN.
   */
  oauth?: DovecotOAuthOptions;
}

export interface DovecotOAuthOptions {
  /** e.g. http://dovecot:SECRET@127.0.0.1:PORT/token/introspection (the credentials as userinfo). */
  introspectionUrl: string;
  /** SASL mechanisms advertised for tokens. Default both. imapflow prefers OAUTHBEARER when offered. */
  mechanisms?: ('xoauth2' | 'oauthbearer')[];
}

export interface DovecotPorts {
  imap: number;
  imaps: number;
  pop3: number;
  pop3s: number;
  lmtp: number;
}

export interface DovecotServer {
  dir: string;
  host: '127.0.0.1';
  ports: DovecotPorts;
  /** PEM of the self-signed server certificate, to trust as a private CA. */
  caFile: string;
  users: DovecotUser[];
  /** uid/gid the mail files must belong to (the mailtest account when root, else ourselves). */
  mailUid: number;
  mailGid: number;
  /** The user's Maildir (with cur/ new/ tmp/). */
  maildir(user: string): string;
  /** SIGTERM, resolves when the master process has exited; removes a temp dir it created. */
  stop(): Promise<void>;
  /** Stops (keeping the directory and its mail) and starts again on the same ports. */
  restart(): Promise<void>;
  /** SIGKILL to the whole process group (crash simulation); the directory and its mail are kept. */
  kill(): Promise<void>;
}

export const DOVECOT_PACKAGES = ['dovecot-imapd', 'dovecot-pop3d', 'dovecot-lmtpd'] as const;
const DEFAULT_USERS: DovecotUser[] = [
  { name: 'alice', password: 'alice-pw' },
  { name: 'bob', password: 'bob-pw' },
];
const DEFAULT_MAIL_USER = 'mailtest';
const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

async function commandExists(cmd: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${cmd}`], {
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    });
    return true;
  } catch {
    return false;
  }
}

async function accountIds(name: string): Promise<{ uid: number; gid: number } | null> {
  try {
    const uid = Number((await run('id', ['-u', name])).stdout.trim());
    const gid = Number((await run('id', ['-g', name])).stdout.trim());
    return { uid, gid };
  } catch {
    return null;
  }
}

/**
 * Makes sure the Dovecot packages and (as root) the unprivileged mail account exist, installing them when
 * missing. CI machines are clean; developer machines usually have them already, then this costs two lookups.
 */
export async function ensureDovecotInstalled(log: (line: string) => void = console.log): Promise<void> {
  if (!(await commandExists('dovecot')) || !(await commandExists('doveconf'))) {
    if (!isRoot()) {
      throw new Error(
        `dovecot is not installed and we are not root: install it with ` +
          `"apt-get install -y --no-install-recommends ${DOVECOT_PACKAGES.join(' ')}"`,
      );
    }
    log(`[dovecot] not installed; installing ${DOVECOT_PACKAGES.join(' ')} with apt-get (about a minute)`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update'], { env, maxBuffer: 64 * 1024 * 1024 });
    await run('apt-get', ['install', '-y', '--no-install-recommends', ...DOVECOT_PACKAGES], {
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
    log('[dovecot] installed');
  }
  // Dovecot refuses mail uid 0 ("User has invalid GID '0'"), so as root the mail files need a real account.
  if (isRoot() && !(await accountIds(DEFAULT_MAIL_USER))) {
    log(`[dovecot] creating the unprivileged account "${DEFAULT_MAIL_USER}" that owns test mail files`);
    await run('useradd', ['-m', '-s', '/bin/bash', DEFAULT_MAIL_USER]);
  }
}

/** Asks the kernel for `count` distinct free ports on 127.0.0.1 (all held open together, then released). */
async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** Everything the config depends on (with `oauth`, the oauth2 passdb and its mechanisms are added). */
export interface DovecotConfigContext {
  dir: string;
  ports: DovecotPorts;
  mailUid: number;
  mailGid: number;
  internalUser: string;
  internalGroup: string;
  loginUser: string;
  /** SASL mechanisms advertised, e.g. ['plain', 'login'] (+ 'xoauth2', 'oauthbearer' with `oauth`). */
  authMechanisms: string[];
  /** passdb blocks in order; the first that knows the mechanism answers. */
  passdbs: string[];
}

export function passwdFilePassdb(dir: string, mechanisms?: string[]): string {
  return [
    'passdb {',
    '  driver = passwd-file',
    `  args = scheme=PLAIN ${path.join(dir, 'passwd')}`,
    ...(mechanisms ? [`  mechanisms = ${mechanisms.join(' ')}`] : []),
    '}',
  ].join('\n');
}

/**
 * The oauth2 passdb's settings file (Dovecot reads them from a separate file named in `args`). Kept without
 * `debug = yes`: Dovecot's debug log prints the introspection URL with the client secret.
 */
export function oauth2PassdbSettings(o: DovecotOAuthOptions): string {
  return [
    // the login name must equal the token's sub (oidc-provider: the account id)
    'username_attribute = sub',
    'username_format = %Lu',
    // RFC 7662: POST token=..., client authentication from the URL's userinfo
    'introspection_mode = post',
    `introspection_url = ${o.introspectionUrl}`,
    // ask the server for every login (else a token that was revoked or expired could pass)
    'force_introspection = yes',
    'active_attribute = active',
    'active_value = true',
    'timeout_msecs = 5000',
    '',
  ].join('\n');
}

export function oauth2Passdb(settingsFile: string, mechanisms: string[]): string {
  return [
    'passdb {',
    '  driver = oauth2',
    `  mechanisms = ${mechanisms.join(' ')}`,
    `  args = ${settingsFile}`,
    '}',
  ].join('\n');
}

export function buildDovecotConf(c: DovecotConfigContext): string {
  const d = c.dir;
  return `# generated by test/support/dovecot.ts -- self-contained, nothing from /etc/dovecot is included
instance_name = dovecot-test-${c.ports.imap}
protocols = imap pop3 lmtp
# loopback IPv4 only: the ports were checked free there, not on ::1
listen = 127.0.0.1
# else Dovecot writes sockets and state into system paths (and instances would share them)
base_dir = ${d}/run
state_dir = ${d}/state
log_path = ${d}/dovecot.log

default_internal_user = ${c.internalUser}
default_internal_group = ${c.internalGroup}
default_login_user = ${c.loginUser}
# as root, a real non-root account (uid/gid 0 are refused: "User has invalid GID '0'")
mail_uid = ${c.mailUid}
mail_gid = ${c.mailGid}
first_valid_uid = 1
last_valid_uid = 0

ssl = yes
ssl_cert = <${d}/cert.pem
ssl_key = <${d}/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
ssl_min_protocol = TLSv1.2

disable_plaintext_auth = no
auth_mechanisms = ${c.authMechanisms.join(' ')}
auth_cache_size = 0
# else failed logins are delayed 2..15 s and tests of wrong passwords crawl
auth_failure_delay = 0

${c.passdbs.join('\n')}
userdb {
  driver = passwd-file
  args = ${d}/passwd
}

mail_location = maildir:~/Maildir
mail_fsync = never
# tests drop files into new/ while Dovecot runs: it must look at the directory on every sync
maildir_very_dirty_syncs = no
namespace inbox {
  inbox = yes
  separator = /
}
pop3_uidl_format = %08Xu%08Xv
lmtp_save_to_detail_mailbox = no
postmaster_address = postmaster@localhost

service imap-login {
  # "chroot =" everywhere: else chroot(.../run/empty) fails when not root
  chroot =
  inet_listener imap {
    port = ${c.ports.imap}
  }
  inet_listener imaps {
    port = ${c.ports.imaps}
    ssl = yes
  }
}
service pop3-login {
  chroot =
  inet_listener pop3 {
    port = ${c.ports.pop3}
  }
  inet_listener pop3s {
    port = ${c.ports.pop3s}
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    port = ${c.ports.lmtp}
  }
}
service anvil {
  chroot =
  # no per-IP auth failure penalty: tests do many failed logins from 127.0.0.1
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service imap {
  process_limit = 256
}
service pop3 {
  process_limit = 256
}
`;
}

/** Every group we started, so a crashing test process does not leave daemons holding ports. */
const running = new Set<number>();
process.once('exit', () => {
  for (const pid of running) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Polls the port with connection attempts (bounded): Dovecot listens only once it is ready for logins. */
async function waitForPort(port: number, proc: ChildProcess, dir: string): Promise<void> {
  const attempts = 200;
  for (let i = 0; i < attempts; i++) {
    if (proc.exitCode !== null || proc.signalCode !== null) break;
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const out = await readFile(path.join(dir, 'dovecot.stdout'), 'utf8').catch(() => '');
  const log = await readFile(path.join(dir, 'dovecot.log'), 'utf8').catch(() => '');
  throw new Error(`dovecot did not start listening on 127.0.0.1:${port} (dir ${dir}):\n${out}\n${log}`);
}

export async function startDovecot(opts: StartDovecotOptions = {}): Promise<DovecotServer> {
  const users = opts.users ?? DEFAULT_USERS;
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'mailintake-dovecot-')));
  await mkdir(path.join(dir, 'home'), { recursive: true });
  await mkdir(path.join(dir, 'state'), { recursive: true });
  // mkdtemp gives 0700; Dovecot's internal users must traverse it when the master runs as root
  await chmod(dir, 0o755);

  let mailUid: number;
  let mailGid: number;
  let internalUser: string;
  let internalGroup: string;
  let loginUser: string;
  if (isRoot()) {
    const mailUser = opts.mailUser ?? DEFAULT_MAIL_USER;
    const ids = await accountIds(mailUser);
    if (!ids || ids.uid === 0) {
      throw new Error(
        `as root the mail files need an unprivileged account "${mailUser}": run ensureDovecotInstalled()`,
      );
    }
    ({ uid: mailUid, gid: mailGid } = ids);
    // keep Dovecot's privilege separation: users from the Debian package
    internalUser = 'dovecot';
    internalGroup = 'dovecot';
    loginUser = 'dovenull';
  } else {
    mailUid = process.getuid?.() ?? 0;
    mailGid = process.getgid?.() ?? 0;
    const me = os.userInfo().username;
    internalUser = me;
    loginUser = me;
    internalGroup = (await run('id', ['-gn'])).stdout.trim();
  }

  const [imap, imaps, pop3, pop3s, lmtp] = (await freePorts(5)) as [number, number, number, number, number];
  const ports: DovecotPorts = { imap, imaps, pop3, pop3s, lmtp };

  await makeCertificate(dir, opts.certName ? [opts.certName] : ['localhost', '127.0.0.1', '::1']);
  await writeFile(
    path.join(dir, 'passwd'),
    users
      .map((u) => `${u.name}:{PLAIN}${u.password}:${mailUid}:${mailGid}::${path.join(dir, 'home', u.name)}\n`)
      .join(''),
  );
  const maildir = (user: string) => path.join(dir, 'home', user, 'Maildir');
  for (const u of users) {
    for (const sub of ['cur', 'new', 'tmp'])
      await mkdir(path.join(maildir(u.name), sub), { recursive: true });
  }
  await chmod(path.join(dir, 'passwd'), 0o644);
  await chmod(path.join(dir, 'cert.pem'), 0o644);
  await chmod(path.join(dir, 'key.pem'), 0o640); // read by the master (root or ourselves) only
  if (isRoot()) await chownTree(path.join(dir, 'home'), mailUid, mailGid);

  const authMechanisms = ['plain', 'login'];
  let passdbs = [passwdFilePassdb(dir)];
  if (opts.oauth) {
    const mechanisms = opts.oauth.mechanisms ?? ['xoauth2', 'oauthbearer'];
    const settingsFile = path.join(dir, 'dovecot-oauth2.conf.ext');
    await writeFile(settingsFile, oauth2PassdbSettings(opts.oauth));
    // read by the auth process (an internal user when root); holds the introspection client's secret
    await chmod(settingsFile, 0o644);
    authMechanisms.push(...mechanisms);
    // before passwd-file: the first passdb that knows the mechanism answers
    passdbs = [oauth2Passdb(settingsFile, mechanisms), passwdFilePassdb(dir, ['plain', 'login'])];
  }

  const confPath = path.join(dir, 'dovecot.conf');
  await writeFile(
    confPath,
    buildDovecotConf({
      dir,
      ports,
      mailUid,
      mailGid,
      internalUser,
      internalGroup,
      loginUser,
      authMechanisms,
      passdbs,
    }),
  );
  await chmod(confPath, 0o644);
  // fails loudly (with the line) on a config error, where the daemon would only log it
  const checked = await run('doveconf', ['-c', confPath, '-n']).catch((err: { stderr?: string }) => {
    throw new Error(`doveconf rejected ${confPath}: ${err.stderr ?? String(err)}`);
  });
  await writeFile(path.join(dir, 'doveconf-n.txt'), checked.stdout);

  let proc: ChildProcess | undefined;
  let exited: Promise<unknown> = Promise.resolve();

  const start = async () => {
    // a stale socket (e.g. anvil-auth-penalty) from a killed instance breaks the new one
    await rm(path.join(dir, 'run'), { recursive: true, force: true });
    await mkdir(path.join(dir, 'run'));
    const out = await open(path.join(dir, 'dovecot.stdout'), 'w');
    // -F keeps the master in the foreground, so its pid is ours; detached = own process group for kill()
    const child = spawn('dovecot', ['-F', '-c', confPath], {
      detached: true,
      stdio: ['ignore', out.fd, out.fd],
    });
    await out.close();
    proc = child;
    exited = once(child, 'exit');
    if (child.pid !== undefined) running.add(child.pid);
    child.once('exit', () => {
      if (child.pid !== undefined) running.delete(child.pid);
    });
    child.unref();
    await waitForPort(ports.imap, child, dir);
    await waitForPort(ports.imaps, child, dir);
  };

  const stopProcess = async (signal: NodeJS.Signals) => {
    const child = proc;
    if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    if (signal === 'SIGKILL') {
      // the whole group: login and mail processes must not outlive a "crashed" master holding the ports
      process.kill(-child.pid, 'SIGKILL');
    } else {
      // the master tells its children to exit and exits itself
      child.kill(signal);
    }
    await exited;
  };

  await start();

  return {
    dir,
    host: '127.0.0.1',
    ports,
    caFile: path.join(dir, 'cert.pem'),
    users,
    mailUid,
    mailGid,
    maildir,
    async stop() {
      await stopProcess('SIGTERM');
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
    async restart() {
      await stopProcess('SIGTERM');
      await start();
    },
    async kill() {
      await stopProcess('SIGKILL');
    },
  };
}

async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await run('chown', ['-R', `${uid}:${gid}`, dir]);
  await chown(dir, uid, gid);
}
