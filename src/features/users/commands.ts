import type { Command } from 'commander';
import { MailintakeError } from '../../kernel/errors.js';
import { type CliKit, clean, table } from '../shared/cli-kit.js';
import type { UsersService } from './service.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ users: UsersService }>;

/**
 * Reads the password piped in (`printf %s "$PW" | mailintake user create …`): never an argument, so never in `ps`.
 * Typed at a terminal, it is asked for twice without being shown (a raw-mode read: node's readline echoes).
 */
async function readPassword(stdin: NodeJS.ReadableStream): Promise<string> {
  const tty = stdin as NodeJS.ReadStream;
  if (tty.isTTY && typeof tty.setRawMode === 'function') {
    const first = await askHidden(tty, 'Password (not shown): ');
    const again = await askHidden(tty, 'The same password again: ');
    if (first !== again) {
      throw new MailintakeError('INVALID_SETTINGS', 'The two passwords differ. Type the same one twice.', {
        details: { fields: [{ field: 'password', message: 'the two passwords differ' }] },
      });
    }
    return first;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  // one trailing line end is the `echo`'s, not the password's
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** One line typed at the terminal, not echoed; Ctrl-C or Ctrl-D before Enter gives up. */
function askHidden(tty: NodeJS.ReadStream, prompt: string): Promise<string> {
  // raw mode first: a key typed as soon as the prompt shows must not be echoed
  tty.setRawMode(true);
  tty.resume();
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let typed = '';
    const done = (err: Error | null) => {
      tty.off('data', onData);
      tty.setRawMode(false);
      tty.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\u0003' || ch === '\u0004') {
          return done(
            new MailintakeError('INVALID_SETTINGS', 'No password typed: the user was not created.'),
          );
        }
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else typed += ch;
      }
    };
    tty.on('data', onData);
  });
}

/** `user create | list | disable`: the people who sign in to the web console. */
export function addUserCommands(program: Command, k: Kit, stdin: () => NodeJS.ReadableStream): void {
  const { leaf, answer, line } = k;
  const user = program.command('user').description('people who sign in to the web console');
  leaf(user, 'create', 'create an admin or a technician; the password is read from stdin, or use --link')
    .requiredOption('--email <email>', 'their email address (the sign-in name)')
    .requiredOption('--role <role>', 'admin or technician')
    .option('--portal <portal>', "a technician's portal")
    .option('--link', 'print a one-time link (valid 24 hours) to set the password instead of reading it')
    .action(
      answer(
        async (services, opts: { email: string; role: string; portal?: string; link?: boolean }) =>
          services.users.create({
            email: opts.email,
            role: opts.role,
            ...(opts.portal ? { portal: opts.portal } : {}),
            ...(opts.link ? { link: true } : { password: await readPassword(stdin()) }),
          }),
        (created) => {
          line(
            `User ${created.user.email} created (${created.user.role}${created.user.portal ? `, portal ${clean(created.user.portal)}` : ''}).`,
          );
          if (created.link) {
            line('Send them this link to set their password (valid 24 hours, once):');
            line(created.link);
          }
        },
      ),
    );
  leaf(user, 'list', 'list the users').action(
    answer(
      (services) => services.users.list(),
      (list) => {
        if (list.length === 0) {
          return line(
            'No users. Create one with: mailintake user create --email E --role admin (password on stdin)',
          );
        }
        line(
          table(
            ['ID', 'EMAIL', 'ROLE', 'PORTAL', 'PASSWORD', 'CREATED', 'DISABLED'],
            list.map((u) => [
              String(u.id),
              clean(u.email),
              u.role,
              clean(u.portal ?? '-'),
              u.passwordSet ? 'set' : 'link pending',
              u.createdAt,
              u.disabledAt ?? '-',
            ]),
          ),
        );
      },
    ),
  );
  leaf(user, 'disable', 'disable a user and end their sessions')
    .argument('<email>')
    .action(
      answer(
        (services, email: string) => services.users.disable(email),
        (disabled) => line(`User ${disabled.email} disabled.`),
      ),
    );
}
