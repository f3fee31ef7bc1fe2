import { FORWARDED_HEAD_BYTES } from '../kernel/limits.js';
import type { ParsedMail } from '../mail/types.js';
import type { BlobStore } from '../store/blobs/blob-store.js';

/**
 * The header block of a mail's first attached message/rfc822 part: a forward "as attachment" carries the
 * original sender there (mail/requester.ts reads its From). The part is in the blob store already (streamed
 * there while parsing); its first bytes are read back here, before the batch's transaction, since the
 * transaction must do no file I/O. Delivery reports are left out: their returned mail is ours, not a forward.
 * Best effort: a part that cannot be read gives null, and the requester falls back with a reason.
 */
export async function forwardedHead(
  blobs: BlobStore & { head?: (sha256: string) => Buffer | undefined },
  mail: ParsedMail,
): Promise<string | null> {
  if (/^\s*multipart\/report\b/i.test(mail.headers['content-type'] ?? '')) return null;
  const part = mail.attachments.find((a) => a.contentType.toLowerCase() === 'message/rfc822');
  if (!part) return null;
  // the parser's writer kept the part's first 16 KB as it passed: enough for a header, without a read
  const kept = blobs.head?.(part.sha256);
  if (kept && /\r?\n\r?\n/.test(kept.toString('latin1'))) return headerBlock(kept);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    const stream = blobs.get(part.sha256);
    try {
      for await (const chunk of stream) {
        chunks.push(chunk as Buffer);
        size += (chunk as Buffer).length;
        if (size >= FORWARDED_HEAD_BYTES) break;
      }
    } finally {
      stream.destroy();
    }
  } catch {
    return null;
  }
  return headerBlock(Buffer.concat(chunks).subarray(0, FORWARDED_HEAD_BYTES));
}

function headerBlock(bytes: Buffer): string {
  return bytes.toString('utf8').split(/\r?\n\r?\n/)[0] ?? '';
}
