import type { Command } from 'commander';
import { type CliKit, clean, idArg, table } from '../shared/cli-kit.js';
import type { ApiKeysService } from './service.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ apiKeys: ApiKeysService }>;

/** `apikey create | list | revoke`: the keys of the REST API (a key is shown once, at its creation). */
export function addApiKeyCommands(program: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const apikey = program.command('apikey').description('API keys for the REST API');
  leaf(apikey, 'create', 'create an API key (shown once)')
    .argument('<name>')
    .action(
      answer(
        async (services, name: string) => {
          const { key, view } = await services.apiKeys.create(name);
          return { ...view, key };
        },
        (created) => {
          line(`API key ${created.id} (${clean(created.name)}):`);
          line(created.key);
          line('Store it now: it will not be shown again. Send it as "Authorization: Bearer <key>".');
        },
      ),
    );
  leaf(apikey, 'list', 'list API keys (never the keys themselves)').action(
    answer(
      (services) => services.apiKeys.list(),
      (list) => {
        if (list.length === 0) return line('No API keys. Create one with: mailintake apikey create NAME');
        line(
          table(
            ['ID', 'NAME', 'PREFIX', 'CREATED', 'LAST USED'],
            list.map((key) => [
              String(key.id),
              key.name,
              key.prefix,
              key.createdAt,
              key.lastUsedAt ?? 'never',
            ]),
          ),
        );
      },
    ),
  );
  leaf(apikey, 'revoke', 'revoke an API key')
    .argument('<id>', 'key id', idArg)
    .action(
      answer(
        async (services, id: number) => {
          await services.apiKeys.revoke(id);
          return { revoked: id };
        },
        (_revoked, id) => line(`API key ${id} revoked.`),
      ),
    );
}
