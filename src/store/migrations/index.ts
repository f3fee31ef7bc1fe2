import { type Kysely, type Migration, type MigrationProvider, Migrator } from 'kysely';
import type { Engine } from '../engine.js';
import * as m0001 from './0001-foundation.js';
import * as m0002 from './0002-attachment-checks.js';
import * as m0003 from './0003-operations.js';
import * as m0004 from './0004-oauth.js';
import * as m0005 from './0005-sweep.js';
import * as m0006 from './0006-mailbox-removal.js';
import * as m0007 from './0007-store-keys.js';
import * as m0008 from './0008-people.js';
import * as m0009 from './0009-request-work.js';
import * as m0010 from './0010-request-search.js';
import * as m0011 from './0011-request-search-documents.js';
import * as m0012 from './0012-failing-since.js';
import * as m0013 from './0013-automatic-conversations.js';
import * as m0014 from './0014-replies.js';
import * as m0015 from './0015-requesters.js';
import type { MigrationStep } from './shared.js';

/**
 * One migration set for both engines, in order; a new migration is a new file here and a line below. Each
 * file's `name` is what kysely_migration records: existing databases compare by it, so it never changes.
 */
export const MIGRATIONS: readonly MigrationStep[] = [
  m0001,
  m0002,
  m0003,
  m0004,
  m0005,
  m0006,
  m0007,
  m0008,
  m0009,
  m0010,
  m0011,
  m0012,
  m0013,
  m0014,
  m0015,
];

class StepProvider implements MigrationProvider {
  constructor(private readonly engine: Engine) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    const engine = this.engine;
    return Object.fromEntries(MIGRATIONS.map((step) => [step.name, { up: (db) => step.up(db, engine) }]));
  }
}

/** Runs pending migrations; throws with the failing migration's name. Safe to call from several processes. */
export async function migrate(db: Kysely<unknown>, engine: Engine): Promise<void> {
  const migrator = new Migrator({ db, provider: new StepProvider(engine) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(
      `database migration ${failed} failed: ${error instanceof Error ? error.message : error}`,
      {
        cause: error,
      },
    );
  }
}

/** Runs the migrations up to and including `name` (tests of a migration's backfill start from the one before). */
export async function migrateTo(db: Kysely<unknown>, engine: Engine, name: string): Promise<void> {
  const { error } = await new Migrator({ db, provider: new StepProvider(engine) }).migrateTo(name);
  if (error) throw error;
}
