import type { Command } from 'commander';
import { type CliKit, clean, table } from '../shared/cli-kit.js';
import type { UsersService } from './service.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ users: UsersService }>;

/** Reads the password piped in (`printf %s "$PW" | mailintake user create …`): never an argument, so never in `ps`. */
async function readPassword(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  // one trailing line end is the `echo`'s, not the password's
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
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
