import type { Selectable } from 'kysely';
import { z } from 'zod';
import { MailintakeError } from '../kernel/errors.js';
import { RULE_MAX_RECIPIENTS as MAX_RECIPIENTS, RULE_PORTAL_NAME_MAX_CHARS } from '../kernel/limits.js';
import { nowIso, type Store } from '../store/db.js';
import type { NotificationRuleTable } from '../store/schema.js';
import { storedStrings } from '../store/stored-json.js';
import { systemLog } from '../store/system-log.js';
import { type Tx, withTransaction } from '../store/tx.js';
import { NOTIFICATION_EVENTS, type NotificationEvent } from './notifier.js';
import { validated } from './validate.js';

/**
 * Notification rules (the reference's Admin > Notification Rules): who gets an email for which event. One rule
 * per event and portal, or per event for every portal (`portal` null); an event's recipients in a portal are
 * the union of both, each address once. Bell notifications do not depend on rules: they go to admins.
 */

export interface NotificationRuleView {
  id: number;
  event: NotificationEvent;
  /** null: every portal */
  portal: string | null;
  recipients: string[];
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export const ruleInputSchema = z.strictObject({
  event: z.enum(NOTIFICATION_EVENTS, {
    error: `must be one of ${NOTIFICATION_EVENTS.map((e) => `"${e}"`).join(', ')}`,
  }),
  /** A portal name; absent or null: every portal. */
  portal: z.string().trim().min(1).max(RULE_PORTAL_NAME_MAX_CHARS).nullable().optional(),
  recipients: z
    .array(z.email('each recipient must be a valid email address').max(254), 'must be a list of addresses')
    .min(1, 'at least one address (disable the rule to notify nobody)')
    .max(MAX_RECIPIENTS),
  enabled: z.boolean('must be true or false').default(true),
});
export type RuleInput = z.input<typeof ruleInputSchema>;

/** Lower-cased and each address once, in the order given. */
export function uniqueAddresses(addresses: Iterable<string>): string[] {
  const seen = new Set<string>();
  for (const a of addresses) seen.add(a.trim().toLowerCase());
  seen.delete('');
  return [...seen];
}

/**
 * The addresses an event in a portal is mailed to: every enabled rule for the event that names the portal or
 * all portals, deduplicated. Read in the caller's transaction (the recipients of record when the event commits).
 */
export async function recipientsFor(
  tx: Tx,
  event: NotificationEvent,
  portalId: number | null,
): Promise<string[]> {
  let q = tx
    .selectFrom('notification_rules')
    .select('recipients')
    .where('event', '=', event)
    .where('enabled', '=', 1);
  q =
    portalId === null
      ? q.where('portal_id', 'is', null)
      : q.where((eb) => eb.or([eb('portal_id', 'is', null), eb('portal_id', '=', portalId)]));
  const rows = await q.orderBy('id').execute();
  return uniqueAddresses(
    rows.flatMap((r) => storedStrings(r.recipients, { table: 'notification_rules', column: 'recipients' })),
  );
}

type RuleRow = Selectable<NotificationRuleTable> & { portal_name: string | null };

export class NotificationRules {
  constructor(private readonly store: Store) {}

  private select(db: Tx) {
    return db
      .selectFrom('notification_rules')
      .leftJoin('portals', 'portals.id', 'notification_rules.portal_id')
      .selectAll('notification_rules')
      .select('portals.name as portal_name');
  }

  async list(): Promise<NotificationRuleView[]> {
    const rows = await this.select(this.store.db)
      .orderBy('notification_rules.event')
      .orderBy('notification_rules.id')
      .execute();
    return rows.map(view);
  }

  /** Creates or replaces the rule for the event and portal. INVALID_SETTINGS names every bad field. */
  async set(input: unknown): Promise<NotificationRuleView> {
    const rule = validated(ruleInputSchema, input, 'notification rule');
    const recipients = uniqueAddresses(rule.recipients);
    return withTransaction(this.store, async (tx) => {
      let portalId: number | null = null;
      if (rule.portal != null) {
        const portal = await tx
          .selectFrom('portals')
          .select('id')
          .where('name', '=', rule.portal)
          .executeTakeFirst();
        if (!portal) {
          throw new MailintakeError('INVALID_SETTINGS', `no portal named "${rule.portal}"`, {
            details: { fields: [{ field: 'portal', message: `no portal named "${rule.portal}"` }] },
          });
        }
        portalId = portal.id;
      }
      const now = nowIso();
      const existing = await tx
        .selectFrom('notification_rules')
        .select('id')
        .where('event', '=', rule.event)
        .where((eb) => (portalId === null ? eb('portal_id', 'is', null) : eb('portal_id', '=', portalId)))
        .executeTakeFirst();
      let id: number;
      if (existing) {
        id = existing.id;
        await tx
          .updateTable('notification_rules')
          .set({ recipients: JSON.stringify(recipients), enabled: rule.enabled ? 1 : 0, updated_at: now })
          .where('id', '=', id)
          .execute();
      } else {
        id = (
          await tx
            .insertInto('notification_rules')
            .values({
              portal_id: portalId,
              event: rule.event,
              recipients: JSON.stringify(recipients),
              enabled: rule.enabled ? 1 : 0,
              created_at: now,
              updated_at: now,
            })
            .returning('id')
            .executeTakeFirstOrThrow()
        ).id;
      }
      await systemLog(tx, {
        level: 'info',
        category: 'notification-settings',
        message: `notification rule for ${rule.event} in ${rule.portal == null ? 'every portal' : `portal ${rule.portal}`} set: ${recipients.length} recipient(s), ${rule.enabled ? 'enabled' : 'disabled'}`,
        details: {
          ruleId: id,
          event: rule.event,
          portal: rule.portal ?? null,
          recipients,
          enabled: rule.enabled,
        },
      });
      return view(await this.select(tx).where('notification_rules.id', '=', id).executeTakeFirstOrThrow());
    });
  }

  async setEnabled(id: number, enabled: boolean): Promise<NotificationRuleView> {
    return withTransaction(this.store, async (tx) => {
      const updated = await tx
        .updateTable('notification_rules')
        .set({ enabled: enabled ? 1 : 0, updated_at: nowIso() })
        .where('id', '=', id)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) {
        throw new MailintakeError('NOT_FOUND', `no notification rule with id ${id}`);
      }
      const row = await this.select(tx).where('notification_rules.id', '=', id).executeTakeFirstOrThrow();
      await systemLog(tx, {
        level: 'info',
        category: 'notification-settings',
        message: `notification rule ${id} (${row.event}) ${enabled ? 'enabled' : 'disabled'}`,
        details: { ruleId: id, event: row.event, portal: row.portal_name, enabled },
      });
      return view(row);
    });
  }
}

function view(r: RuleRow): NotificationRuleView {
  return {
    id: r.id,
    event: r.event as NotificationEvent,
    portal: r.portal_name,
    recipients: storedStrings(r.recipients, { table: 'notification_rules', column: 'recipients', id: r.id }),
    enabled: r.enabled === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
