import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { imapsMailbox } from '../kit/mailboxes.js';
import { cli } from './console.js';
import { deliverMaildir } from './deliver.js';
import type { DovecotServer } from './dovecot.js';

/**
 * Requests made the way production makes them, for the console's browser journeys: a mailbox added with the
 * real CLI, mails delivered into a real Dovecot, and `mailintake fetch --once` taking them in. The CLI's own
 * JSON tells the test the ids it then looks for on the pages.
 */

/**
 * Adds the portal (when not `default`) and an IMAPS mailbox of Dovecot user `user` in it, disabled: `serve`
 * leaves it alone and only the test's `fetch --once` takes mail in, so each test knows when it has.
 */
export async function addMailbox(
  env: NodeJS.ProcessEnv,
  dovecot: DovecotServer,
  o: { name: string; user: string; portal: string },
): Promise<void> {
  if (o.portal !== 'default') {
    const portal = await cli(env, ['portal', 'add', o.portal]);
    if (portal.code !== 0) throw new Error(`portal add ${o.portal}: ${portal.err}`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mailintake-mailbox-'));
  try {
    const file = path.join(dir, 'mailbox.json');
    writeFileSync(
      file,
      JSON.stringify(imapsMailbox(dovecot, o.name, o.user, { portal: o.portal, enabled: false })),
    );
    const added = await cli(env, ['mailbox', 'add', '--file', file]);
    if (added.code !== 0) throw new Error(`mailbox add ${o.name}: ${added.err}${added.out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Delivers the mails into the user's inbox and takes them in with one `fetch --once` of that mailbox. */
export async function takeIn(
  env: NodeJS.ProcessEnv,
  dovecot: DovecotServer,
  o: { mailbox: string; user: string; mails: Buffer[] },
): Promise<void> {
  await deliverMaildir(dovecot, o.user, o.mails);
  const fetched = await cli(env, ['fetch', '--once', '--mailbox', o.mailbox, '--json']);
  if (fetched.code !== 0) throw new Error(`fetch --once: ${fetched.err}${fetched.out}`);
}

/** `requests list --json`: the ids of requests by subject (the CLI is what an admin would use too). */
export async function requestIds(env: NodeJS.ProcessEnv): Promise<Map<string, number>> {
  const listed = await cli(env, ['requests', 'list', '--all', '--json']);
  if (listed.code !== 0) throw new Error(`requests list: ${listed.err}`);
  const parsed = JSON.parse(listed.out) as
    | { id: number; subject: string }[]
    | { items: { id: number; subject: string }[] };
  const items = Array.isArray(parsed) ? parsed : parsed.items;
  return new Map(items.map((r) => [r.subject, r.id]));
}

/** `requests show ID --json`: the request as the API describes it (RequestDetail). */
export async function requestDetail(env: NodeJS.ProcessEnv, id: number) {
  const shown = await cli(env, ['requests', 'show', String(id), '--json']);
  if (shown.code !== 0) throw new Error(`requests show ${id}: ${shown.err}`);
  return JSON.parse(shown.out) as {
    id: number;
    status: string;
    assignee: string | null;
    logId: number | null;
    attachments: { id: number; filename: string; contentId: string | null }[];
    droppedAttachments: { filename: string; code: string }[];
    conversations: { id: number; logId: number | null }[];
  };
}
