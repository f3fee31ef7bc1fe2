import { isMailintakeError, MailintakeError } from '../../kernel/errors.js';

/**
 * What the file system's refusals mean to an admin. Node's own messages do not always name the file
 * ("ENOSPC: no space left on device, write"), and an uncoded error ended the round as INTERNAL; an admin must
 * learn that the disk is full and where, so these become STORE_FAILED naming the directory.
 */
const MEANING: Record<string, string> = {
  ENOSPC: 'is full',
  EDQUOT: 'is over its disk quota',
  EFBIG: 'refuses a file this large',
  EROFS: 'is read-only',
  EIO: 'reported an I/O error',
  EACCES: 'cannot be written by this process (permission denied)',
  EPERM: 'cannot be written by this process (operation not permitted)',
  ENOTDIR: 'is not a directory where one is needed',
  EMFILE: 'cannot be used: this process has too many open files',
  ENFILE: 'cannot be used: the system has too many open files',
};

/** The errno code of a file-system error, if it is one. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A coded STORE_FAILED for a failed write under `dir` (e.g. "attachments and raw mails could not be written:
 * the file system of /var/lib/mailintake/blobs is full (ENOSPC: …)"). A coded error is kept as it is; an error
 * that is not the file system's is wrapped without a claim about the disk.
 */
export function diskError(err: unknown, dir: string, what: string): MailintakeError {
  if (isMailintakeError(err)) return err;
  const errno = errnoOf(err);
  const text = err instanceof Error ? err.message : String(err);
  const meaning = errno ? MEANING[errno] : undefined;
  const message = meaning
    ? `${what} could not be written: the file system of ${dir} ${meaning} (${text})`
    : `${what} could not be written under ${dir}: ${text}`;
  return new MailintakeError('STORE_FAILED', message, {
    cause: err,
    details: { path: dir, ...(errno ? { errno } : {}) },
  });
}
