import type { AppConfig } from '../../kernel/env.js';
import type { Store } from '../../store/db.js';
import { readSetting, writeSetting } from '../../store/instance-settings.js';

/**
 * The one answer to "where do browsers and OAuth providers reach this installation", for the service and for
 * every CLI command (the OAuth redirect URL is this + /oauth/callback, and it must be the URL registered at the
 * provider). The CLI printed http://localhost:8025 while `serve --port 9000` answered on 9000: each process
 * derived it from its own MAILINTAKE_PORT, and the CLI cannot know the service's --port.
 *
 *   1. MAILINTAKE_PUBLIC_URL, when set (behind a proxy only the admin knows the address);
 *   2. the service: http://localhost:<the port it listens on>, recorded in the store for the CLI;
 *   3. a CLI command: the URL the service recorded (the service receives the callback, so its URL is the one);
 *   4. nothing recorded yet (the service never ran): http://localhost:MAILINTAKE_PORT.
 */
export const PUBLIC_URL_SETTING = 'public-url';

export async function resolvePublicUrl(store: Store, config: AppConfig): Promise<string> {
  if (config.listeningPort !== undefined) {
    const url = config.publicUrl ?? `http://localhost:${config.listeningPort}`;
    await writeSetting(store.db, PUBLIC_URL_SETTING, url);
    return url;
  }
  return config.publicUrl ?? (await recorded(store)) ?? `http://localhost:${config.port}`;
}

async function recorded(store: Store): Promise<string | undefined> {
  const value = await readSetting(store.db, PUBLIC_URL_SETTING);
  return typeof value === 'string' && /^https?:\/\//.test(value) ? value : undefined;
}
