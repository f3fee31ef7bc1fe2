import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { MailintakeError } from '../kernel/errors.js';
import type { CliKit } from './notification-commands.js';

export type AttachmentCliKit = Omit<CliKit, 'readSecretFile'> & {
  /** Where `--out -` writes the bytes: stdout as a byte stream (the kit's `line` is for text). */
  binaryStdout(): NodeJS.WritableStream;
  /** Text for the person at the terminal that must not mix with the bytes on stdout. */
  err(text: string): void;
};

/**
 * `attachment get ID --out FILE`: saves a kept attachment (the id `requests show` lists in brackets) byte for
 * byte. The attachment is a customer's file, so the copy is created 0600, and an existing file is never
 * replaced unless `--force` says so: a mistyped --out must not clobber someone's work.
 *
 * The file name the sender chose is shown, never used as a path: the admin names the file with --out.
 */
export function addAttachmentCommands(program: Command, k: AttachmentCliKit): void {
  const { leaf, withRuntime, line, printJson, clean } = k;

  const attachment = program.command('attachment').description('attachments kept with requests');
  leaf(attachment, 'get', 'save an attachment (its id is in brackets in `requests show`) to a file')
    .argument('<id>', 'attachment id', k.intArg(1, Number.MAX_SAFE_INTEGER))
    .requiredOption(
      '--out <file>',
      'file to write (created 0600; never replaced unless --force), or - for stdout',
    )
    .option('--force', 'replace FILE if it exists')
    .action(async (id: number, opts: { out: string; force?: boolean; json?: boolean }) => {
      await withRuntime(!!opts.json, async (rt) => {
        if (opts.out === '-' && opts.json) {
          throw new MailintakeError('INVALID_SETTINGS', '--out - writes the attachment to stdout', {
            details: {
              fields: [{ field: '--json', message: 'cannot be combined with --out - (both use stdout)' }],
            },
          });
        }
        const { meta, open } = await rt.services.requests.attachment(id);
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
