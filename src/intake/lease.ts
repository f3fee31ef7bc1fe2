import crypto from 'node:crypto';
import os from 'node:os';
import type { Store } from '../store/db.js';

/**
 * One fetch per mailbox at a time, across processes and machines, through a row lease on the mailbox in the
 * database both already share (no second coordinator). A lease expires when not renewed, so a dead worker's
 * mailbox is free again after `leaseSeconds`. On the same host we can do better: a lease whose process is
 * gone (SIGKILL, power cut of that process) is taken over at once, so a restart does not wait for the expiry.
 */
export class MailboxLease {
  readonly owner: string;

  constructor(
    private readonly store: Store,
    private readonly leaseSeconds: number,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.owner = `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
  }

  private until(): string {
    return new Date(this.clock().getTime() + this.leaseSeconds * 1000).toISOString();
  }

  async acquire(mailboxId: number): Promise<boolean> {
    const now = this.clock().toISOString();
    const res = await this.store.db
      .updateTable('mailboxes')
      .set({ lease_owner: this.owner, lease_until: this.until() })
      .where('id', '=', mailboxId)
      .where((eb) =>
        eb.or([
          eb('lease_owner', 'is', null),
          eb('lease_until', '<', now),
          eb('lease_owner', '=', this.owner),
        ]),
      )
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1) return true;
    const row = await this.store.db
      .selectFrom('mailboxes')
      .select('lease_owner')
      .where('id', '=', mailboxId)
      .executeTakeFirst();
    if (!row?.lease_owner || !isDeadLocalOwner(row.lease_owner)) return false;
    // Compare-and-set on the dead owner's name: if two restarts race, exactly one wins.
    const taken = await this.store.db
      .updateTable('mailboxes')
      .set({ lease_owner: this.owner, lease_until: this.until() })
      .where('id', '=', mailboxId)
      .where('lease_owner', '=', row.lease_owner)
      .executeTakeFirst();
    return Number(taken.numUpdatedRows) === 1;
  }

  /** Extends the lease; false when it was lost (expired and taken by another worker): stop fetching then. */
  async renew(mailboxId: number): Promise<boolean> {
    const res = await this.store.db
      .updateTable('mailboxes')
      .set({ lease_until: this.until() })
      .where('id', '=', mailboxId)
      .where('lease_owner', '=', this.owner)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async release(mailboxId: number): Promise<void> {
    await this.store.db
      .updateTable('mailboxes')
      .set({ lease_owner: null, lease_until: null })
      .where('id', '=', mailboxId)
      .where('lease_owner', '=', this.owner)
      .execute();
  }
}

function isDeadLocalOwner(owner: string): boolean {
  const [host, pidText] = owner.split(':');
  if (host !== os.hostname()) return false;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false; // our own process: another fetch in it holds the lease
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
