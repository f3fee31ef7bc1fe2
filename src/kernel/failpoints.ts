import { writeSync } from 'node:fs';
import { MailintakeError } from './errors.js';

/**
 * Failpoints: named crash points compiled into the product and armed only by the environment variable
 * MAILINTAKE_FAILPOINTS, for tests (the idea of FreeBSD's fail(9), TiKV's fail-rs and etcd's gofail).
 *
 * Why: a test that SIGKILLs a process "at a random moment" only lands in a narrow window (committed but not
 * acknowledged, STORE \Deleted but not EXPUNGE…) by luck, so it is flaky on a loaded machine and proves nothing
 * when unlucky. A failpoint crashes the process exactly there, every time (DESIGN.md, guarantee 8).
 *
 * MAILINTAKE_FAILPOINTS="after-commit=kill,after-parse=kill@3"
 *   name=kill     SIGKILL our own process at the first hit: a real crash (no finally blocks, no flush, no
 *                 QUIT/LOGOUT, an open transaction left to the database to roll back).
 *   name=throw    throw an Error at the first hit (the code's own error handling takes over).
 *   …@n           at the n-th hit instead (earlier hits pass); `throw` fires on that hit only.
 * Before it acts, a failpoint writes `mailintake failpoint <name>: <action> (hit n)` to stderr, so a test
 * knows that the process died at that point and not elsewhere (a failpoint never reached must fail the test).
 *
 * The variable is read once, when this module loads; a name not in FAILPOINT_NAMES, an unknown action or a
 * bad count stops the process at start, so a typo never silently disarms a test. Unarmed, `failpoint()` is one
 * comparison with null.
 *
 * Where they are (one line each):
 *   after-parse        round.ts: a mail downloaded and parsed, its blobs written but not flushed
 *   after-blob-write   round.ts: the batch's blobs and raw copies flushed (durable), nothing committed
 *   before-commit      commit-mail.ts: inside the batch's transaction, every row written, before COMMIT
 *   after-commit       round.ts: the batch committed, not yet acknowledged on the server
 *   between-store-deleted-and-expunge   imap/connector.ts: STORE +FLAGS \Deleted done, UID EXPUNGE not sent
 *   between-dele-and-quit               pop3-connector.ts: DELEs sent, no QUIT (the server forgets them)
 *   after-error-record error-folder.ts: the error-mail row committed, the mail not yet moved aside
 *   after-smtp-accept  outbox.ts: the SMTP server accepted an outbox mail (a notification or a reply), the row not marked sent
 * Graph and Exchange Web Services have no such gap in their acknowledgement: a delete, a move or a read flag
 * is one request (DELETE / PATCH / move; DeleteItem / UpdateItem / MoveItem), which either happened or not.
 */
export const FAILPOINT_NAMES = [
  'after-parse',
  'after-blob-write',
  'before-commit',
  'after-commit',
  'between-store-deleted-and-expunge',
  'between-dele-and-quit',
  'after-error-record',
  'after-smtp-accept',
] as const;
export type FailpointName = (typeof FAILPOINT_NAMES)[number];
export type FailpointAction = 'kill' | 'throw';

export interface ArmedFailpoint {
  action: FailpointAction;
  /** The hit that acts (1 = the first). */
  at: number;
  /** Hits so far. */
  hits: number;
}

export type Failpoints = Map<FailpointName, ArmedFailpoint>;

const ENTRY = /^([a-z-]+)=(kill|throw)(?:@([1-9][0-9]{0,8}))?$/;

/** Parses a MAILINTAKE_FAILPOINTS value; null when nothing is armed. Throws on anything it does not know. */
export function parseFailpoints(spec: string | undefined): Failpoints | null {
  if (spec === undefined || spec.trim() === '') return null;
  // A setting the operator typed: coded like every other, naming the variable.
  const refuse = (message: string) =>
    new MailintakeError('INVALID_SETTINGS', message, {
      details: { fields: [{ field: 'MAILINTAKE_FAILPOINTS', message }] },
    });
  const armed: Failpoints = new Map();
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    const m = ENTRY.exec(entry);
    if (!m) {
      throw refuse(
        `MAILINTAKE_FAILPOINTS: "${entry}" is not name=kill, name=throw, name=kill@n or name=throw@n`,
      );
    }
    const name = m[1] as FailpointName;
    if (!FAILPOINT_NAMES.includes(name)) {
      throw refuse(
        `MAILINTAKE_FAILPOINTS: unknown failpoint "${m[1]}" (known: ${FAILPOINT_NAMES.join(', ')})`,
      );
    }
    if (armed.has(name)) throw refuse(`MAILINTAKE_FAILPOINTS: "${name}" is armed twice`);
    armed.set(name, { action: m[2] as FailpointAction, at: m[3] ? Number(m[3]) : 1, hits: 0 });
  }
  return armed;
}

/** Counts a hit on `armed`; acts when it is the armed one. Exported for the module's own tests. */
export function hitFailpoint(armed: Failpoints, name: FailpointName): void {
  const point = armed.get(name);
  if (!point) return;
  point.hits++;
  if (point.hits !== point.at) return;
  const marker = `mailintake failpoint ${name}: ${point.action} (hit ${point.hits})\n`;
  writeMarker(marker);
  if (point.action === 'kill') process.kill(process.pid, 'SIGKILL');
  throw new Error(marker.trim());
}

/** Written synchronously before the kill: nothing buffered in a stream would survive SIGKILL. */
function writeMarker(text: string): void {
  const bytes = Buffer.from(text);
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(2, bytes, off);
    } catch (err) {
      // stderr may be a non-blocking pipe the reader has not drained yet
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
    }
  }
}

const armed = parseFailpoints(process.env.MAILINTAKE_FAILPOINTS);
if (armed) writeMarker(`mailintake failpoints armed (for tests): ${process.env.MAILINTAKE_FAILPOINTS}\n`);

/** A named crash point: nothing unless MAILINTAKE_FAILPOINTS arms it (see above). */
export function failpoint(name: FailpointName): void {
  if (armed === null) return;
  hitFailpoint(armed, name);
}
