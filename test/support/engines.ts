import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type AppConfig, loadConfig } from '../../src/kernel/env.js';
import { freshDatabase } from './postgres.js';

export const ENGINES = ['sqlite', 'postgres'] as const;
export type EngineName = (typeof ENGINES)[number];

/**
 * A fresh configuration on the named engine: a temp data dir (blobs, key, SQLite file) and, for PostgreSQL,
 * a new database. `cleanup()` removes both.
 */
export async function freshConfig(
  engine: EngineName,
  extra: Record<string, string> = {},
): Promise<{ config: AppConfig; env: Record<string, string>; cleanup(): Promise<void> }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `mailintake-${engine}-`));
  const env: Record<string, string> = {
    MAILINTAKE_DATA_DIR: dataDir,
    MAILINTAKE_LOG_LEVEL: 'silent',
    ...extra,
  };
  let drop = async () => {};
  if (engine === 'postgres') {
    const db = await freshDatabase();
    env.DATABASE_URL = db.url;
    drop = db.drop;
  }
  return {
    config: loadConfig(env),
    env,
    cleanup: async () => {
      await drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
