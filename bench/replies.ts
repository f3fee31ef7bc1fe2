/**
 * (j) replies (issue 13 §1): on each engine, one request, then REPLIES replies queued one after the other
 * through services.requests.reply (each one transaction: the outgoing conversation, its outbox row, its
 * Message-ID), timed per call (p50/p95); and the outbox sending them all through a real SMTP server on loopback
 * (no TLS), timed from the first queued reply to the last one the server took (mails/s). Every reply has a
 * 20 KB attachment, half of them also an HTML part.
 *
 *   BENCH_ONLY=replies npm run bench   (the whole `npm run bench` runs it last)
 */
import { openRuntime } from '../src/app/compose.js';
import { nowIso } from '../src/store/db.js';
import { conditions } from '../test/kit/conditions.js';
import { type EngineName, freshConfig } from '../test/support/engines.js';
import { startSmtpServer } from '../test/support/smtp.js';

const REPLIES = Number(process.env.BENCH_REPLIES ?? 300);

async function replyCase(engine: EngineName) {
  const smtp = await startSmtpServer({ tls: 'none' });
  const fresh = await freshConfig(engine);
  let sent = 0;
  const done = conditions();
  const rt = await openRuntime(fresh.config, {
    onOutboxAttempt: (a) => {
      if (a.ok) sent++;
      done.recheck();
    },
  });
  try {
    await rt.services.smtp.set({ host: smtp.host, port: smtp.port, starttls: false, from: 'a@example.test' });
    await rt.services.mailboxes.add({
      name: 'support',
      protocol: 'imaps',
      server: 'localhost',
      port: 993,
      username: 'support',
      password: 'x',
      emailAddress: 'support@example.test',
      enabled: false,
      replyAddress: true,
    });
    // the request as intake would have made it (no server needed for what is measured)
    const store = (await import('../src/store/db.js')).openStore;
    const db = await store({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    const now = nowIso();
    const portal = await db.db.selectFrom('portals').select('id').executeTakeFirstOrThrow();
    const mailbox = await db.db.selectFrom('mailboxes').select('id').executeTakeFirstOrThrow();
    const { id } = await db.db
      .insertInto('requests')
      .values({
        portal_id: portal.id,
        mailbox_id: mailbox.id,
        subject: 'Printer on fire',
        requester_address: 'customer@example.org',
        requester_name: 'Customer',
        to_addresses: '[]',
        cc_addresses: '[]',
        message_id: 'first@example.org',
        text_body: 'help',
        html_body: null,
        mail_date: now,
        status: 'open',
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db.close();
    const attachment = Buffer.alloc(20 * 1024, 65);
    const times: number[] = [];
    const start = performance.now();
    for (let i = 0; i < REPLIES; i++) {
      const t = performance.now();
      await rt.services.requests.reply(id, {
        text: `Reply ${i}: ${'text '.repeat(200)}`,
        ...(i % 2 === 0 ? { html: `<p>Reply ${i}</p>` } : {}),
        cc: ['colleague@example.org'],
        attachments: [{ filename: `a${i}.txt`, contentType: 'text/plain', content: attachment }],
      });
      times.push(performance.now() - t);
    }
    const queued = performance.now() - start;
    await done.until(() => sent >= REPLIES);
    await smtp.waitFor(REPLIES);
    const all = performance.now() - start;
    times.sort((a, b) => a - b);
    const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!;
    return {
      engine,
      replies: REPLIES,
      queueP50Ms: +pct(50).toFixed(2),
      queueP95Ms: +pct(95).toFixed(2),
      queuedPerSecond: Math.round(REPLIES / (queued / 1000)),
      sentPerSecond: Math.round(REPLIES / (all / 1000)),
      smtpMails: smtp.mails.length,
    };
  } finally {
    await rt.close();
    await smtp.close();
    await fresh.cleanup();
  }
}

const results = [await replyCase('sqlite'), await replyCase('postgres')];
console.log(JSON.stringify(results, null, 2));
