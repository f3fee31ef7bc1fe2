/**
 * Every category a system-log entry can have. A closed list, so that `system-log --category` can tell a
 * mistyped category from one with no entries (both used to answer "the log is empty"); a new category goes here.
 * Its own module without imports: the CLI checks `--category` without loading the database drivers.
 */
export const SYSTEM_LOG_CATEGORIES = [
  'attachment-dropped',
  'connection-failure',
  'connection-recovered',
  'error-folder',
  'notification-settings',
  'oauth',
  'secret-key',
  'settings-changed',
  'store-failure',
  'store-recovered',
  'sweep',
] as const;
export type SystemLogCategory = (typeof SYSTEM_LOG_CATEGORIES)[number];

export function isSystemLogCategory(value: string): value is SystemLogCategory {
  return (SYSTEM_LOG_CATEGORIES as readonly string[]).includes(value);
}
