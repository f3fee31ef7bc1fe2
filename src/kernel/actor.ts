import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Who is acting: `api-key:<name>` for an API call, `cli:<os user>` for a CLI command, `system` for the fetch
 * loop and anything else. Carried through async calls (AsyncLocalStorage) instead of a parameter on every
 * service method, so the system log can record "who changed what" wherever a change is written.
 */
const current = new AsyncLocalStorage<string>();

export function withActor<T>(actor: string, fn: () => T): T {
  return current.run(actor, fn);
}

export function currentActor(): string {
  return current.getStore() ?? 'system';
}
