import type { Connector, RemoteMail } from '../connectors/connector.js';
import { BATCH_MAIL_MAX_BYTES, BATCH_MAX_BYTES, BATCH_MAX_COUNT } from '../kernel/limits.js';

/**
 * The mails to take in, cut into batches: consecutive small mails up to the batch limits (fetched in one
 * round trip, committed in one transaction), a large one alone (streamed). The order is the server's (UID)
 * order, so a reply is still committed after the mail it answers.
 */
export function splitIntoBatches(todo: RemoteMail[], connector: Connector): RemoteMail[][] {
  const batches: RemoteMail[][] = [];
  for (let i = 0; i < todo.length; i += batches[batches.length - 1]!.length) {
    batches.push(nextBatch(todo, i, Boolean(connector.fetchMany)));
  }
  return batches;
}

/** Consecutive small mails up to the batch limits, or a single large one. */
function nextBatch(todo: RemoteMail[], from: number, canBatch: boolean): RemoteMail[] {
  const first = todo[from]!;
  if (!canBatch || (first.size ?? Number.POSITIVE_INFINITY) > BATCH_MAIL_MAX_BYTES) return [first];
  const batch: RemoteMail[] = [];
  let bytes = 0;
  for (let j = from; j < todo.length && batch.length < BATCH_MAX_COUNT; j++) {
    const m = todo[j]!;
    const size = m.size ?? Number.POSITIVE_INFINITY;
    if (size > BATCH_MAIL_MAX_BYTES || bytes + size > BATCH_MAX_BYTES) break;
    batch.push(m);
    bytes += size;
  }
  return batch;
}

function isBuffered(connector: Connector, batch: RemoteMail[]): boolean {
  return (
    Boolean(connector.fetchMany) &&
    (batch.length > 1 || (batch[0]?.size ?? Number.POSITIVE_INFINITY) <= BATCH_MAIL_MAX_BYTES)
  );
}

/**
 * The fetch stage of the batches: while one batch is parsed and committed, the next one's sources are already
 * on their way (I/O overlapped with CPU); memory stays bounded by two batches. `next(b)` gives batch b's
 * sources (null: each mail of it is streamed) and starts fetching batch b+1's.
 */
export function prefetcher(connector: Connector, batches: RemoteMail[][]) {
  const fetchSources = (batch: RemoteMail[] | undefined) =>
    batch && isBuffered(connector, batch) ? connector.fetchMany!(batch) : Promise.resolve(null);
  let prefetched = fetchSources(batches[0]);
  return {
    async next(b: number): Promise<Map<string, Buffer> | null> {
      const sources = await prefetched;
      // A streamed (large) batch is not overlapped: its download and a prefetch would share the connection.
      prefetched = sources ? fetchSources(batches[b + 1]) : Promise.resolve(null);
      prefetched.catch(() => undefined); // awaited (and thrown) on the next turn; the round may end first
      return sources;
    },
  };
}

/** Like Promise.all over `items.map(fn)`, with at most `width` calls running at once. */
export async function mapInOrder<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}
