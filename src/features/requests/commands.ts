import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { MailintakeError } from '../../kernel/errors.js';
import {
  allOption,
  type CliKit,
  type Columns,
  clean,
  fields,
  idArg,
  pageOptions,
  table,
  truncate,
} from '../shared/cli-kit.js';
import type { RequestsService } from './service.js';
import { REQUEST_STATUSES } from './statuses.js';
import type {
  AttachmentView,
  ConversationView,
  DeliveryView,
  DroppedAttachmentView,
  RequestDetail,
  RequestHistoryEntry,
  RequestSummary,
  SentReplyView,
} from './views.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ requests: RequestsService }>;

/** `requests list | show`. */
export function addRequestCommands(program: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const requests = program.command('requests').description('requests (tickets) created from mail');
  pageOptions(
    leaf(requests, 'list', 'list requests, newest first')
      .option('--portal <portal>', 'only this portal')
      .option('--mailbox <mailbox>', 'only requests that came in through this mailbox')
      .option('--status <status>', `only this status (${REQUEST_STATUSES.join(', ')})`)
      .option('--requester <address>', "only this requester's address (exact, any case)")
      .option(
        '--search <words>',
        'only requests with all these words in subject, requester, body or conversations (counts up to 1000+)',
      ),
    'requests',
  )
    .addOption(allOption())
    .action(
      k.listAction(
        (services, opts: ListFilterOptions, page) =>
          services.requests.list({
            portal: opts.portal,
            mailbox: opts.mailbox,
            status: opts.status,
            requester: opts.requester,
            q: opts.search,
            ...page,
          }),
        REQUEST_COLUMNS,
        (page) => (page.total === 0 ? 'No requests.' : 'No requests on this page.'),
      ),
    );
  leaf(requests, 'show', 'show a request (by request id) with its conversations and attachment metadata')
    .argument('<id>', 'request id: the number of #12 in "requests list"', idArg)
    .action(
      answer(
        (services, id: number) => services.requests.show(id),
        (detail) => printRequest(line, detail),
      ),
    );
  addRequestWorkCommands(requests, k);
  addReplyCommands(requests, k);
}

interface ReplyOptions {
  to?: string[];
  /** false: --no-cc (nobody, not even the participants). */
  cc?: string[] | false;
  bcc?: string[];
  text?: string;
  textFile?: string;
  attach?: string[];
  include?: string[];
}

/** A few common types by extension; anything else goes as application/octet-stream (the receiver sniffs). */
const ATTACH_TYPES: Record<string, string> = {
  '.txt': 'text/plain',
  '.pdf': 'application/pdf',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.csv': 'text/csv',
  '.zip': 'application/zip',
};

/** `requests reply ID --text … | forward ID --to …`: through the outbox, like the API's and the console's. */
function addReplyCommands(requests: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const input = async (opts: ReplyOptions) => {
    if ((opts.text === undefined) === (opts.textFile === undefined)) {
      throw new MailintakeError(
        'INVALID_SETTINGS',
        'give the text with --text or --text-file (one of them)',
        {
          details: { fields: [{ field: '--text', message: 'give --text or --text-file (one of them)' }] },
        },
      );
    }
    const { readFile } = await import('node:fs/promises');
    const read = async (file: string, field: string) => {
      try {
        return await readFile(file === '-' ? '/dev/stdin' : file);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? 'error';
        throw new MailintakeError('INVALID_SETTINGS', `Cannot read ${file}: ${code}`, {
          details: { fields: [{ field, message: `cannot read ${file} (${code})` }] },
        });
      }
    };
    const text = opts.text ?? (await read(opts.textFile!, '--text-file')).toString('utf8');
    const attachments = [];
    for (const file of opts.attach ?? []) {
      attachments.push({
        filename: path.basename(file),
        contentType: ATTACH_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
        content: await read(file, '--attach'),
      });
    }
    const include = (opts.include ?? []).map((v) => idArg(v));
    return {
      text,
      ...(opts.to ? { to: opts.to } : {}),
      ...(opts.cc === false ? { cc: [] } : opts.cc ? { cc: opts.cc } : {}),
      ...(opts.bcc ? { bcc: opts.bcc } : {}),
      attachments,
      ...(include.length > 0 ? { requestAttachments: include } : {}),
    };
  };
  const queued = (c: SentReplyView) => {
    line(
      `${c.subject.startsWith('Fwd:') ? 'Forward' : 'Reply'} queued as conversation ${c.id} (outbox ${c.delivery?.outboxId ?? '-'}) to ${c.to.map(addr).join(', ')}${c.cc.length ? `, cc ${c.cc.map(addr).join(', ')}` : ''}: ${deliveryText(c.delivery)}`,
    );
    if (c.leftOut.length > 0) line(`Left out, the help desk's own: ${c.leftOut.join(', ')}`);
  };
  const common = (cmd: Command) =>
    cmd
      .argument('<id>', 'request id', idArg)
      .option('--text <text>', 'the text to send')
      .option('--text-file <file>', 'the text to send, from a file (- for stdin)')
      .option(
        '--cc <address...>',
        'Cc (repeatable; default for a reply: the request’s participants; the help desk’s own addresses are always dropped)',
      )
      .option('--no-cc', 'no Cc at all, not even the participants')
      .option('--bcc <address...>', 'Bcc (repeatable)')
      .option('--attach <file...>', 'a file to attach (repeatable)')
      .option('--include <attachment-id...>', 'an attachment of the request to send along (repeatable)');
  common(
    leaf(requests, 'reply', 'reply to the requester (To defaults to them), through the outbox').option(
      '--to <address...>',
      'To instead of the requester (repeatable)',
    ),
  ).action(
    answer<[number, ReplyOptions], SentReplyView>(
      async (services, id, opts) => services.requests.reply(id, await input(opts)),
      queued,
    ),
  );
  common(
    leaf(requests, 'forward', 'forward the request (To required), through the outbox').requiredOption(
      '--to <address...>',
      'To (repeatable)',
    ),
  ).action(
    answer<[number, ReplyOptions], SentReplyView>(
      async (services, id, opts) => services.requests.forward(id, await input(opts)),
      queued,
    ),
  );
}

/** An outgoing conversation's delivery as one line: Queued, Sent, Retrying: reason, Failed: status reason. */
function deliveryText(d: DeliveryView | null): string {
  if (!d) return '-';
  const why = [d.status, d.reason].filter((x) => x).join(' ');
  switch (d.state) {
    case 'pending':
      return 'queued';
    case 'sent':
      return `${`sent ${d.sentAt ?? ''}`.trim()}${d.reason ? `, but ${clean(d.reason)}` : ''}`;
    case 'retrying':
      return `retrying: ${clean(why)}`;
    case 'failed':
      return `failed${d.bounced ? ' (bounced)' : ''}: ${clean(why)}`;
  }
}

interface ListFilterOptions {
  portal?: string;
  mailbox?: string;
  status?: string;
  requester?: string;
  search?: string;
}

/** `requests status ID STATUS | assign ID EMAIL|--none | history ID`. */
function addRequestWorkCommands(requests: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  const changed = (r: RequestSummary) =>
    line(`Request #${r.id}: status ${r.status}, assignee ${r.assignee === null ? '-' : clean(r.assignee)}`);
  leaf(requests, 'status', `set a request's status (${REQUEST_STATUSES.join(', ')})`)
    .argument('<id>', 'request id', idArg)
    .argument('<status>', REQUEST_STATUSES.join(' | '))
    .action(
      answer<[number, string], RequestSummary>(
        (services, id: number, status: string) => services.requests.setStatus(id, status),
        changed,
      ),
    );
  leaf(requests, 'assign', 'assign a request to someone (an email address), or to nobody with --none')
    .argument('<id>', 'request id', idArg)
    .argument('[email]', "the assignee's email address")
    .option('--none', 'assign to nobody')
    .action(
      answer<[number, string | undefined, { none?: boolean }], RequestSummary>(
        (services, id, email, opts) => {
          if (opts.none ? email !== undefined : email === undefined) {
            throw new MailintakeError('INVALID_SETTINGS', 'give an email address or --none (not both)', {
              details: {
                fields: [{ field: 'assignee', message: 'give an email address or --none (not both)' }],
              },
            });
          }
          return services.requests.assign(id, opts.none ? null : email!);
        },
        changed,
      ),
    );
  leaf(requests, 'history', "a request's status and assignee changes, oldest first")
    .argument('<id>', 'request id', idArg)
    .action(
      answer<[number], RequestHistoryEntry[]>(
        (services, id) => services.requests.history(id),
        (entries: RequestHistoryEntry[]) => {
          if (entries.length === 0) return line('No changes.');
          line(
            table(
              ['AT', 'ACTOR', 'FIELD', 'OLD', 'NEW'],
              entries.map((h) => [h.at, clean(h.actor), h.field, clean(h.old ?? '-'), clean(h.new ?? '-')]),
            ),
          );
        },
      ),
    );
}

/**
 * `attachment get ID --out FILE`: saves a kept attachment (the id `requests show` lists in brackets) byte for
 * byte. The attachment is a customer's file, so the copy is created 0600, and an existing file is never
 * replaced unless `--force` says so: a mistyped --out must not clobber someone's work.
 *
 * The file name the sender chose is shown, never used as a path: the admin names the file with --out.
 */
export function addAttachmentCommands(program: Command, k: Kit): void {
  const { leaf, withServices, line, printJson } = k;

  const attachment = program.command('attachment').description('attachments kept with requests');
  leaf(attachment, 'get', 'save an attachment (its id is in brackets in `requests show`) to a file')
    .argument('<id>', 'attachment id', idArg)
    .requiredOption(
      '--out <file>',
      'file to write (created 0600; never replaced unless --force), or - for stdout',
    )
    .option('--force', 'replace FILE if it exists')
    .action(async (id: number, opts: { out: string; force?: boolean; json?: boolean }) => {
      await withServices(!!opts.json, async (services) => {
        if (opts.out === '-' && opts.json) {
          throw new MailintakeError('INVALID_SETTINGS', '--out - writes the attachment to stdout', {
            details: {
              fields: [{ field: '--json', message: 'cannot be combined with --out - (both use stdout)' }],
            },
          });
        }
        const { meta, open } = await services.requests.attachment(id);
        const what = `attachment #${id} "${clean(meta.filename)}" (${clean(meta.contentType)}, ${meta.size} bytes)`;
        if (opts.out === '-') {
          // The destination is stdout: not ended here, the process may still print (and closes it itself).
          await pipeline(open(), k.binaryStdout(), { end: false });
          k.err(`Wrote ${what} to stdout\n`);
          return;
        }
        await saveTo(opts.out, !!opts.force, () => open());
        const saved = { id, file: opts.out, filename: meta.filename, size: meta.size, sha256: meta.sha256 };
        if (opts.json) return printJson(saved);
        line(`Saved ${what} to ${clean(opts.out)}`);
      });
    });
}

/**
 * Writes the stream to `file`. Without `force`: O_CREAT|O_EXCL ('wx'), which also refuses a symlink planted at
 * that path; a failed copy is removed (we created it). With `force`: a temporary file next to the target,
 * renamed over it once complete, so the old file is replaced whole or not at all and a symlink at `file` is
 * replaced, not followed.
 */
async function saveTo(file: string, force: boolean, open: () => NodeJS.ReadableStream): Promise<void> {
  const target = force
    ? path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.part`)
    : file;
  const out = createWriteStream(target, { flags: 'wx', mode: 0o600 });
  try {
    // Opening is where --out is wrong (exists, no such folder, no permission); later errors are the copy's.
    await once(out, 'open');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'EEXIST') {
      throw new MailintakeError('CONFLICT', `${file} exists; give --force to replace it`, {
        details: { fields: [{ field: '--out', message: `${file} exists (--force replaces it)` }] },
      });
    }
    throw new MailintakeError('INVALID_SETTINGS', `Cannot write ${file}: ${code}`, {
      details: { fields: [{ field: '--out', message: `cannot write ${file} (${code})` }] },
    });
  }
  try {
    await pipeline(open(), out);
    if (force) await rename(target, file);
  } catch (e) {
    // We created `target` (O_EXCL): a half-written copy is ours to remove.
    await unlink(target).catch(() => undefined);
    throw e;
  }
}

const REQUEST_COLUMNS: Columns<RequestSummary> = {
  headers: ['ID', 'PORTAL', 'STATUS', 'CONV', 'FROM', 'SUBJECT', 'CREATED'],
  row: (r) => [
    `#${r.id}`,
    r.portal,
    r.status,
    String(r.conversationCount),
    r.requester?.address ?? '-',
    truncate(r.subject, 60),
    r.createdAt,
  ],
};

/** A mail's intake-log id, with the command that saves its raw source (`raw` takes log ids, not request ids). */
function logLine(id: number | null): string {
  return id === null ? '-' : `#${id} (raw mail: mailintake raw ${id} --out FILE)`;
}

function addr(a: { address: string; name: string } | null): string {
  if (!a) return '-';
  return a.name ? `${a.name} <${a.address}>` : a.address;
}

function attachmentLines(list: AttachmentView[]): string[] {
  return list.map(
    (a) =>
      `  [${a.id}] ${clean(a.filename)} (${clean(a.contentType)}, ${a.size} bytes${a.disposition === 'inline' ? ', inline' : ''})`,
  );
}

function droppedLines(list: DroppedAttachmentView[]): string[] {
  return list.map(
    (d) =>
      `  ${clean(d.filename)} (${d.size} bytes${d.disposition === 'inline' ? ', inline' : ''}): ${d.code} ${d.message} — ${clean(d.detail)}`,
  );
}

function printRequest(line: (t: string) => void, r: RequestDetail): void {
  line(`Request #${r.id}: ${clean(r.subject)}`);
  line(
    fields([
      ['portal', r.portal],
      ['status', r.status],
      ['from', addr(r.requester)],
      ['to', r.to.map(addr).join(', ') || '-'],
      ['cc', r.cc.map(addr).join(', ') || '-'],
      [
        'participants',
        r.participants.map((p) => addr({ address: p.address, name: p.name ?? '' })).join(', ') || '-',
      ],
      ['acknowledgement', deliveryText(r.acknowledgement)],
      ['date', r.date ?? '-'],
      ['mailbox', r.mailbox ?? '-'],
      ['intake log', logLine(r.logId)],
      ['message-id', r.messageId ?? '-'],
      ['created', r.createdAt],
    ]),
  );
  printParts(line, r, 'Attachments ([id]: save with `mailintake attachment get ID --out FILE`):');
  r.conversations.forEach((c: ConversationView, i) => {
    line('');
    line(
      `Conversation ${i + 1} (id ${c.id})${c.automatic ? ' (automatic)' : ''}${c.direction === 'out' ? ' (sent by the help desk)' : ''}: ${clean(c.subject)}`,
    );
    line(
      fields([
        ['from', addr(c.from)],
        ...(c.direction === 'out'
          ? ([
              ['to', c.to.map(addr).join(', ') || '-'],
              ['cc', c.cc.map(addr).join(', ') || '-'],
              ['by', clean(c.actor ?? '-')],
              ['delivery', deliveryText(c.delivery)],
            ] as [string, string][])
          : []),
        ['date', c.date ?? '-'],
        ['mailbox', c.mailbox ?? '-'],
        ['intake log', logLine(c.logId)],
      ]),
    );
    printParts(line, c, 'Attachments:');
  });
}

/** A request's or a conversation's body, the attachments kept and those dropped. */
function printParts(
  line: (t: string) => void,
  mail: Pick<ConversationView, 'text' | 'html' | 'attachments' | 'droppedAttachments'>,
  attachmentsTitle: string,
): void {
  printBody(line, mail.text, mail.html);
  if (mail.attachments.length) {
    line(attachmentsTitle);
    for (const l of attachmentLines(mail.attachments)) line(l);
  }
  if (mail.droppedAttachments.length) {
    line('Dropped attachments:');
    for (const l of droppedLines(mail.droppedAttachments)) line(l);
  }
}

function printBody(line: (t: string) => void, text: string | null, html: string | null): void {
  line('');
  if (text) line(clean(text.trimEnd(), true).replace(/^/gm, '    '));
  else if (html) line(`    (HTML only, ${html.length} characters; see the API or --json)`);
  else line('    (no body)');
}
