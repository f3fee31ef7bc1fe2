/**
 * Measurements (d), (e) and (f), in its own Node process so that the benchmark's own memory does not count: open the
 * runtime, add the mailbox holding the one big mail, report maxRSS (baseline), ingest it end to end with
 * `fetch.once`, report maxRSS again (the peak of the whole process). One JSON line on stdout.
 * Started by run.ts with BENCH_CHILD = {"engine","port","caFile","users":[{"user","password"}]}: with several
 * users, one mailbox each, all fetched at the same time (as `serve`'s scheduler runs mailboxes side by side).
 */
import { readFileSync } from 'node:fs';
import { openRuntime } from '../src/app/compose.js';
import { type EngineName, freshConfig } from '../test/support/engines.js';

interface ChildInput {
  engine: EngineName;
  port: number;
  caFile: string;
  users: { user: string; password: string }[];
}

const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;

/** The kernel's high-water mark of this process image (VmHWM), as a cross-check of maxRSS; kB. */
function vmHwmKb(): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const input = JSON.parse(process.env.BENCH_CHILD ?? '') as ChildInput;
  const fresh = await freshConfig(input.engine);
  try {
    const rt = await openRuntime(fresh.config);
    try {
      // (d) measures memory, not the attachment checks: without this the default 25 MB limit drops the attachment
      await rt.services.portals.update('default', { attachmentPolicy: { maxSizeMb: -1 } });
      for (const u of input.users) {
        await rt.services.mailboxes.add({
          name: u.user,
          protocol: 'imaps',
          server: '127.0.0.1',
          port: input.port,
          username: u.user,
          password: u.password,
          emailAddress: `${u.user}@example.test`,
          caFile: input.caFile,
          afterFetch: 'mark-read',
        });
      }
      const baselineKb = process.resourceUsage().maxRSS;
      const baselineHwm = vmHwmKb();
      const started = performance.now();
      const summaries = await Promise.all(
        input.users.map(async (u) => (await rt.services.fetch.once({ mailbox: u.user }))[0]!),
      );
      const seconds = (performance.now() - started) / 1000;
      const peakKb = process.resourceUsage().maxRSS;
      const peakHwm = vmHwmKb();
      const page = await rt.services.requests.list({});
      const shown = await Promise.all(page.items.map((r) => rt.services.requests.show(r.id)));
      const attachments = shown[0]?.attachments.map((a) => a.size) ?? [];
      process.stdout.write(
        `${JSON.stringify({
          engine: input.engine,
          baselineMaxRssMb: mb(baselineKb),
          peakMaxRssMb: mb(peakKb),
          baselineVmHwmMb: baselineHwm === null ? null : mb(baselineHwm),
          peakVmHwmMb: peakHwm === null ? null : mb(peakHwm),
          seconds: Math.round(seconds * 100) / 100,
          summary: summaries[0],
          summaries,
          attachmentSizes: attachments,
          requests: page.items.length,
        })}\n`,
      );
    } finally {
      await rt.close();
    }
  } finally {
    await fresh.cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
