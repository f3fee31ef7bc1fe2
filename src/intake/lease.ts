import crypto from 'node:crypto';
import os from 'node:os';
import type { Store } from '../store/db.js';

/** One held lease: renewed between batches, released when the round (or the error-folder move) ends. */
export interface LeaseHold {
  /** `host:pid:token`, unique per round: what the mailbox row's lease_owner says while this round holds it. */
  readonly owner: string;
  /** Extends the lease; false when it was lost (expired and taken by another round): stop fetching then. */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

/**
 * Owners of the rounds this process holds right now. A row naming this process with an owner not in here is a
 * round of ours that ended without its release reaching the database (a storage error at the end): taken over
 * at once, like a dead process's.
 */
const liveOwners = new Set<string>();

/**
 * One round per mailbox at a time, across processes and machines, through a row lease on the mailbox in the
 * database both already share (no second coordinator). The lease is held per ROUND, not per process: each
 * `acquire` makes a new owner, and an owner never matches another round's, so the API's "fetch now", the
 * scheduler and "move mails to inbox" of one process exclude each other too (a per-process owner let them
 * run side by side). A lease expires when not renewed, so a dead worker's mailbox is free again after
 * `leaseSeconds`. On the same host we can do better: a lease whose process is gone (SIGKILL, power cut of
 * that process) is taken over at once, so a restart does not wait for the expiry.
 */
export class MailboxLease {
  private readonly prefix = `${os.hostname()}:${process.pid}`;

  constructor(
    private readonly store: Store,
    private readonly leaseSeconds: number,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  private until(): string {
    return new Date(this.clock().getTime() + this.leaseSeconds * 1000).toISOString();
  }

  /** The lease for one round, or null while another round (here or elsewhere) holds it. */
  async acquire(mailboxId: number): Promise<LeaseHold | null> {
    const owner = `${this.prefix}:${crypto.randomBytes(8).toString('hex')}`;
    const now = this.clock().toISOString();
    const res = await this.store.db
      .updateTable('mailboxes')
      .set({ lease_owner: owner, lease_until: this.until() })
      .where('id', '=', mailboxId)
      .where((eb) => eb.or([eb('lease_owner', 'is', null), eb('lease_until', '<', now)]))
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1) return this.hold(mailboxId, owner);
    const row = await this.store.db
      .selectFrom('mailboxes')
      .select('lease_owner')
      .where('id', '=', mailboxId)
      .executeTakeFirst();
    if (!row?.lease_owner || !isDeadLocalOwner(row.lease_owner)) return null;
    // Compare-and-set on the dead owner's name: if two restarts race, exactly one wins.
    const taken = await this.store.db
      .updateTable('mailboxes')
      .set({ lease_owner: owner, lease_until: this.until() })
      .where('id', '=', mailboxId)
      .where('lease_owner', '=', row.lease_owner)
      .executeTakeFirst();
    return Number(taken.numUpdatedRows) === 1 ? this.hold(mailboxId, owner) : null;
  }

  private hold(mailboxId: number, owner: string): LeaseHold {
    liveOwners.add(owner);
    return {
      owner,
      renew: async () => {
        const res = await this.store.db
          .updateTable('mailboxes')
          .set({ lease_until: this.until() })
          .where('id', '=', mailboxId)
          .where('lease_owner', '=', owner)
          .executeTakeFirst();
        return Number(res.numUpdatedRows) === 1;
      },
      release: async () => {
        try {
          await this.store.db
            .updateTable('mailboxes')
            .set({ lease_owner: null, lease_until: null })
            .where('id', '=', mailboxId)
            .where('lease_owner', '=', owner)
            .execute();
        } finally {
          liveOwners.delete(owner);
        }
      },
    };
  }
}

function isDeadLocalOwner(owner: string): boolean {
  const [host, pidText] = owner.split(':');
  if (host !== os.hostname()) return false;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  // our own process: dead only when no round of ours holds that owner any more
  if (pid === process.pid) return !liveOwners.has(owner);
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
