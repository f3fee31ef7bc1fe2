import { z } from 'zod';
import { ALERT_THRESHOLD_MAX } from '../kernel/limits.js';
import type { Store } from '../store/db.js';
import { readSetting, writeSetting } from '../store/instance-settings.js';
import { systemLog } from '../store/system-log.js';
import { type Tx, withTransaction } from '../store/tx.js';
import { validated } from './validate.js';

/**
 * The reference's "Configure Notifications for Connectivity Issues": an instance setting of two values, the
 * threshold of consecutive failed connections (default 5) and whether notifications are on (default on).
 */
export interface AlertSettings {
  /** Consecutive rounds that could not connect before admins and technicians are notified. */
  threshold: number;
  enabled: boolean;
}

export const DEFAULT_ALERT_SETTINGS: Readonly<AlertSettings> = Object.freeze({ threshold: 5, enabled: true });

const KEY = 'connection-alerts';

/**
 * At least 1 (every failed round notifies); `0` is refused, not read as "off": the switch is `enabled`.
 * At most ALERT_THRESHOLD_MAX rounds (kernel/limits.ts says why).
 */
export const alertPatchSchema = z
  .strictObject({
    threshold: z
      .number('must be a number')
      .int('must be a whole number')
      .min(1, 'at least 1 (turn notifications off with "enabled": false)')
      .max(ALERT_THRESHOLD_MAX),
    enabled: z.boolean('must be true or false'),
  })
  .partial()
  .refine((p) => p.threshold !== undefined || p.enabled !== undefined, 'give threshold and/or enabled');

/** The settings in force, in the caller's transaction (defaults when never set). */
export async function readAlertSettings(tx: Tx): Promise<AlertSettings> {
  const stored = (await readSetting(tx, KEY)) as Partial<AlertSettings> | undefined;
  return { ...DEFAULT_ALERT_SETTINGS, ...stored };
}

export async function updateAlertSettings(store: Store, patch: unknown): Promise<AlertSettings> {
  const p = validated(alertPatchSchema, patch, 'connection-alert settings');
  return withTransaction(store, async (tx) => {
    const before = await readAlertSettings(tx);
    const after: AlertSettings = { ...before, ...p };
    await writeSetting(tx, KEY, after);
    await systemLog(tx, {
      level: 'info',
      category: 'notification-settings',
      message: `connection-failure notifications ${after.enabled ? 'on' : 'off'}, threshold ${after.threshold} consecutive failed rounds`,
      details: { connectionAlerts: after, previous: before },
    });
    return after;
  });
}
