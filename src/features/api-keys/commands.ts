import type { Command } from 'commander';
import { type CliKit, clean, idArg, table } from '../cli-kit.js';

/** `apikey create | list | revoke`: the keys of the REST API (a key is shown once, at its creation). */
export function addApiKeyCommands(program: Command, k: CliKit): void {
  const { leaf, withServices, line, printJson } = k;
  const apikey = program.command('apikey').description('API keys for the REST API');
  leaf(apikey, 'create', 'create an API key (shown once)')
    .argument('<name>')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        const { key, view } = await services.apiKeys.create(name);
        if (opts.json) return printJson({ ...view, key });
        line(`API key ${view.id} (${clean(view.name)}):`);
        line(key);
        line('Store it now: it will not be shown again. Send it as "Authorization: Bearer <key>".');
      });
    });
  leaf(apikey, 'list', 'list API keys (never the keys themselves)').action(
    async (opts: { json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        const list = await services.apiKeys.list();
        if (opts.json) return printJson(list);
        if (list.length === 0) return line('No API keys. Create one with: mailintake apikey create NAME');
        line(
          table(
            ['ID', 'NAME', 'PREFIX', 'CREATED', 'LAST USED'],
            list.map((k) => [String(k.id), k.name, k.prefix, k.createdAt, k.lastUsedAt ?? 'never']),
          ),
        );
      });
    },
  );
  leaf(apikey, 'revoke', 'revoke an API key')
    .argument('<id>', 'key id', idArg)
    .action(async (id: number, opts: { json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        await services.apiKeys.revoke(id);
        if (opts.json) return printJson({ revoked: id });
        line(`API key ${id} revoked.`);
      });
    });
}
