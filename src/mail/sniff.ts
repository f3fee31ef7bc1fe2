import { fileTypeFromBuffer, fileTypeFromStream } from 'file-type';
import type { BlobStore } from '../store/blobs/blob-store.js';
import type { SniffedType } from './attachment-checks.js';

/**
 * The I/O edge of the attachment checks: what a blob's magic bytes say it is (file-type), or undefined when
 * file-type knows no signature for it. file-type reads only as much of the stream as it needs (a few KB for
 * most formats); the rest is never read, and the stream is destroyed so the file handle is released.
 */
export function blobSniffer(blobs: BlobStore): (sha256: string) => Promise<SniffedType | undefined> {
  return async (sha256) => {
    const stream = blobs.get(sha256);
    try {
      const found = await fileTypeFromStream(stream);
      return found ? { ext: found.ext, mime: found.mime } : undefined;
    } finally {
      stream.destroy();
    }
  };
}

/**
 * Sniffs from the first bytes a batch writer kept while the blob was written, and reads the blob only for one
 * it did not see (e.g. stored by an earlier round).
 */
export function headSniffer(
  heads: { head(sha256: string): Buffer | undefined },
  fallback: (sha256: string) => Promise<SniffedType | undefined>,
): (sha256: string) => Promise<SniffedType | undefined> {
  return async (sha256) => {
    const head = heads.head(sha256);
    if (!head) return fallback(sha256);
    const found = await fileTypeFromBuffer(head);
    return found ? { ext: found.ext, mime: found.mime } : undefined;
  };
}
