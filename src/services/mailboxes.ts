import fs from 'node:fs';
import type { Selectable } from 'kysely';
import { type MailboxSettings, parseMailboxInput } from '../config/mailbox-settings.js';
import { MailintakeError } from '../errors.js';
import type { SecretBox } from '../security/secret-box.js';
import { nowIso, type Store } from '../store/db.js';
import type { MailboxTable } from '../store/schema.js';
import type { MailboxView } from './views.js';

type MailboxRow = Selectable<MailboxTable> & {
  portal_name: string;
  header_threading: number;
  attachment_policy: string;
};

/** Mailbox rows ⇄ settings: the password lives sealed in `secrets`, everything else in `settings`. */
export class MailboxRepo {
  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
  ) {}

  private select() {
    return this.store.db
      .selectFrom('mailboxes')
      .innerJoin('portals', 'portals.id', 'mailboxes.portal_id')
      .selectAll('mailboxes')
      .select(['portals.name as portal_name', 'portals.header_threading', 'portals.attachment_policy']);
  }

  async rows(): Promise<MailboxRow[]> {
    return this.select().orderBy('mailboxes.name').execute();
  }

  async row(name: string): Promise<MailboxRow> {
    const row = await this.select().where('mailboxes.name', '=', name).executeTakeFirst();
    if (!row) throw new MailintakeError('NOT_FOUND', `no mailbox named "${name}"`);
    return row;
  }

  settingsOf(row: MailboxRow): MailboxSettings {
    const secrets = JSON.parse(this.box.open(row.secrets)) as { password: string; accessToken?: string };
    return {
      ...(JSON.parse(row.settings) as Omit<MailboxSettings, 'password'>),
      password: secrets.password,
      ...(secrets.accessToken !== undefined ? { accessToken: secrets.accessToken } : {}),
    };
  }

  view(row: MailboxRow, fetching = false): MailboxView {
    const s = JSON.parse(row.settings) as Omit<MailboxSettings, 'password'>;
    return {
      id: row.id,
      name: row.name,
      portal: row.portal_name,
      protocol: row.protocol,
      // Graph has no host to show: the endpoint URL is its "server"
      server: s.protocol === 'graph' && s.graphEndpoint ? s.graphEndpoint : s.server,
      port: s.port,
      username: s.username,
      passwordSet: true,
      emailAddress: s.emailAddress,
      starttls: s.starttls,
      caFile: s.caFile ?? null,
      folder: s.folder,
      afterFetch: s.afterFetch,
      moveToFolder: s.moveToFolder ?? null,
      intervalSeconds: s.intervalSeconds,
      // mailboxes stored before the setting existed have none: push is the default
      idle: s.idle ?? true,
      enabled: row.enabled === 1,
      state: {
        lastFetchAt: row.last_fetch_at,
        lastErrorCode: row.last_error_code,
        lastErrorMessage: row.last_error_message,
        consecutiveFailures: row.consecutive_failures,
        fetching: fetching || (row.lease_until !== null && row.lease_until > nowIso()),
      },
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /** Validates everything a person can get wrong, naming each field, before anything is stored. */
  async validate(input: unknown): Promise<{ settings: MailboxSettings; portalId: number }> {
    const settings = parseMailboxInput(input);
    const fields: { field: string; message: string }[] = [];
    const portal = await this.store.db
      .selectFrom('portals')
      .select('id')
      .where('name', '=', settings.portal)
      .executeTakeFirst();
    if (!portal) fields.push({ field: 'portal', message: `no portal named "${settings.portal}"` });
    if (settings.caFile) {
      try {
        fs.accessSync(settings.caFile, fs.constants.R_OK);
      } catch {
        fields.push({ field: 'caFile', message: `cannot read ${settings.caFile}` });
      }
    }
    if (fields.length > 0 || !portal) {
      throw new MailintakeError(
        'INVALID_SETTINGS',
        `Invalid mailbox settings: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`,
        { details: { fields } },
      );
    }
    return { settings, portalId: portal.id };
  }

  async insert(input: unknown): Promise<MailboxRow> {
    const { settings, portalId } = await this.validate(input);
    await this.assertNameFree(settings.name);
    const now = nowIso();
    await this.store.db
      .insertInto('mailboxes')
      .values({
        ...this.columns(settings, portalId),
        created_at: now,
        updated_at: now,
        consecutive_failures: 0,
      })
      .execute();
    return this.row(settings.name);
  }

  async replace(name: string, input: unknown): Promise<MailboxRow> {
    const current = await this.row(name);
    const body = (typeof input === 'object' && input !== null ? { ...input } : input) as Record<
      string,
      unknown
    >;
    if (typeof body === 'object' && body !== null) {
      // The password is never shown, so an edit form cannot send it back: a missing password keeps the stored one.
      // Likewise a Graph mailbox's access token.
      const stored = this.settingsOf(current);
      const graph = (body.protocol ?? current.protocol) === 'graph';
      if (graph && body.accessToken === undefined && stored.accessToken !== undefined) {
        body.accessToken = stored.accessToken;
      }
      if (!graph && body.password === undefined && stored.password) body.password = stored.password;
      if (body.name === undefined) body.name = name;
    }
    const { settings, portalId } = await this.validate(body);
    if (settings.name !== name) await this.assertNameFree(settings.name);
    await this.store.db
      .updateTable('mailboxes')
      .set({ ...this.columns(settings, portalId), updated_at: nowIso() })
      .where('id', '=', current.id)
      .execute();
    return this.row(settings.name);
  }

  private async assertNameFree(name: string): Promise<void> {
    const taken = await this.store.db
      .selectFrom('mailboxes')
      .select('id')
      .where('name', '=', name)
      .executeTakeFirst();
    if (taken) throw new MailintakeError('CONFLICT', `a mailbox named "${name}" exists already`);
  }

  /** The stored form of validated settings: the password sealed apart from the rest. */
  private columns(settings: MailboxSettings, portalId: number) {
    const { password, accessToken, enabled, ...rest } = settings;
    return {
      name: settings.name,
      portal_id: portalId,
      protocol: settings.protocol,
      enabled: enabled ? 1 : 0,
      settings: JSON.stringify(rest),
      secrets: this.box.seal(
        JSON.stringify(accessToken !== undefined ? { password, accessToken } : { password }),
      ),
    };
  }

  async setEnabled(name: string, enabled: boolean): Promise<MailboxRow> {
    const row = await this.row(name);
    await this.store.db
      .updateTable('mailboxes')
      .set({ enabled: enabled ? 1 : 0, updated_at: nowIso() })
      .where('id', '=', row.id)
      .execute();
    return this.row(name);
  }

  async remove(name: string): Promise<void> {
    const row = await this.row(name);
    const used = await this.store.db
      .selectFrom('intake_log')
      .select('id')
      .where('mailbox_id', '=', row.id)
      .limit(1)
      .executeTakeFirst();
    if (used) {
      // Its intake log is the proof of what was taken in; deleting the mailbox would orphan it. Disable instead.
      throw new MailintakeError(
        'CONFLICT',
        `mailbox "${name}" has taken in mail; disable it instead (its intake log is kept)`,
      );
    }
    await this.store.db.deleteFrom('mailboxes').where('id', '=', row.id).execute();
  }
}
