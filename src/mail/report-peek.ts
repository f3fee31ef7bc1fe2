import type { BlobStore } from '../store/blobs/blob-store.js';
import type { StoredPart } from './types.js';

/** Enough of a returned mail to hold its header (the part's headers come first). */
const PEEK_BYTES = 32 * 1024;
const RETURNED_PARTS = new Set([
  'message/rfc822',
  'text/rfc822-headers',
  'message/global',
  'message/global-headers',
]);

/**
 * The Message-ID header value (unparsed) of the mail a delivery report returns, from the header of its returned-mail part (RFC 3464 §2:
 * message/rfc822 or text/rfc822-headers). Those parts are streamed to the blob store like any attachment, so
 * the first bytes are read back from there; only for delivery reports (multipart/report). Best effort: a
 * part that cannot be read names nothing.
 */
export async function returnedMessageIdHeader(
  blobs: BlobStore,
  rootContentType: string,
  parts: StoredPart[],
): Promise<string | undefined> {
  // mailparser reads a message/delivery-status part into the text, so the report's shape is the root's type
  const report =
    /^\s*multipart\/report\b/i.test(rootContentType) ||
    parts.some((p) => /^message\/(global-)?delivery-status$/.test(p.contentType));
  if (!report) return undefined;
  const part = parts.find((p) => RETURNED_PARTS.has(p.contentType));
  if (!part) return undefined;
  try {
    const head = await firstBytes(blobs, part.sha256);
    const header = head.split(/\r?\n\r?\n/)[0] ?? '';
    const line = /^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(header)?.[1];
    return line ?? undefined;
  } catch {
    return undefined;
  }
}

async function firstBytes(blobs: BlobStore, sha256: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const stream = blobs.get(sha256);
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= PEEK_BYTES) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, PEEK_BYTES).toString('latin1');
}
