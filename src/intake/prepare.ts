import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import type { Connector, RemoteMail } from '../connectors/connector.js';
import { isMailintakeError, roundRuleOf, toMailintakeError } from '../kernel/errors.js';
import type { Logger } from '../kernel/logger.js';
import { type AttachmentPolicy, checkAttachments, type Sniff } from '../mail/attachment-checks.js';
import { type ParseLimits, parseMail } from '../mail/parse.js';
import { type DeferredSyncBlobs, DiscardingBlobs } from '../store/blobs/blob-store.js';
import type { RawLocation, RawPackWriter } from '../store/blobs/raw-packs.js';
import type { BatchItem } from './commit-mail.js';
import { forwardedHead } from './forwarded-head.js';

/** Where one batch's mails are prepared: its blob writer and raw pack, the checks and the parser's limits. */
export interface PrepareScope {
  connector: Connector;
  blobs: DeferredSyncBlobs;
  pack: RawPackWriter;
  checks: { policy: AttachmentPolicy; sniff: Sniff; limits?: Partial<ParseLimits> | undefined };
  logger: Logger;
}

/** The raw source of one mail on its way in, and how its raw copy is being kept. */
interface Download {
  raw: Readable;
  rawKept: Promise<{ sha256: string }>;
  rawPacked: RawLocation | null;
  /** Set when the server connection failed mid-stream (the round's problem, not the mail's). */
  connectionFailure: () => unknown;
}

/**
 * The stages fetch → parse → check for one mail, without committing anything: downloads (or takes from the
 * batch), parses and keeps the raw copy, then checks the attachments. A failure of the server connection ends
 * the round (thrown); a failure of the mail itself is returned as a coded error for the batch to record.
 * `retry`: an earlier attempt left an `error` row for this identity.
 */
export async function prepare(
  scope: PrepareScope,
  mail: RemoteMail,
  buffered: Buffer | undefined,
  retry: boolean,
): Promise<BatchItem> {
  const download = await fetchSource(scope, mail, buffered);
  const [parsedResult, rawResult] = await Promise.allSettled([
    parseMail(download.raw, parseOptions(scope, scope.blobs)),
    download.rawKept,
  ]);
  const item: BatchItem = {
    serverIdentity: mail.identity,
    retry,
    rawSha256: rawResult.status === 'fulfilled' ? rawResult.value.sha256 : null,
    rawPacked: download.rawPacked,
    size: mail.size,
    parsed: null,
    error: null,
  };
  const connectionFailure = download.connectionFailure();
  if (connectionFailure) {
    const coded = toMailintakeError(connectionFailure, 'TIMEOUT', 'the connection failed while downloading');
    // A source that failed with a code of its own that is not the connection's (a kept POP3 error mail whose
    // sealed copy does not open: STORE_FAILED) fails this mail only, and is retried next round.
    if (!isMailintakeError(connectionFailure) || roundRuleOf(coded) === 'stop-round') throw coded;
    item.error = coded;
    item.rawSha256 = null;
  } else if (parsedResult.status === 'rejected') {
    await parseFailed(scope, item, parsedResult.reason, buffered);
  } else if (rawResult.status === 'rejected') {
    item.error = toMailintakeError(rawResult.reason, 'STORE_FAILED', 'the raw mail could not be kept');
    item.parsed = parsedResult.value;
  } else {
    item.parsed = parsedResult.value;
    await check(scope, item);
  }
  return item;
}

/**
 * The raw source is kept as fetched, beside the parsed mail: what a parser could not make sense of (a broken
 * MIME boundary drops the body in any parser) is never lost, whatever the after-fetch action does. A batched
 * (small) mail is in memory already: it goes into the batch's raw pack. A large one streams into the blob
 * store while it is parsed.
 */
async function fetchSource(
  scope: PrepareScope,
  mail: RemoteMail,
  buffered: Buffer | undefined,
): Promise<Download> {
  if (buffered) {
    return {
      raw: new PassThrough().end(buffered),
      rawPacked: scope.pack.add(buffered),
      rawKept: Promise.resolve({ sha256: createHash('sha256').update(buffered).digest('hex') }),
      connectionFailure: () => null,
    };
  }
  // A failure of the server connection mid-stream is not the mail's fault: it must end the round (the mail
  // stays unacknowledged, and is taken in next time), not be logged as a broken mail.
  let failure: unknown = null;
  const source = await scope.connector.stream(mail);
  const forParser = new PassThrough();
  const forBlob = new PassThrough();
  source.once('error', (err) => {
    failure = err;
    forParser.destroy(err);
    forBlob.destroy(err);
  });
  // pipe() waits for the slower of the two, so memory stays bounded; if the parser gives up early
  // (MAIL_TOO_LARGE), its side unpipes on close and the raw copy still completes.
  source.pipe(forParser);
  source.pipe(forBlob);
  return {
    raw: forParser,
    rawKept: scope.blobs.put(forBlob),
    rawPacked: null,
    connectionFailure: () => failure,
  };
}

function parseOptions(scope: PrepareScope, blobs: DeferredSyncBlobs | DiscardingBlobs) {
  return { blobs, ...(scope.checks.limits ? { limits: scope.checks.limits } : {}) };
}

/** The parser refused the mail (its code says why), or the store refused an attachment while parsing. */
async function parseFailed(
  scope: PrepareScope,
  item: BatchItem,
  reason: unknown,
  buffered: Buffer | undefined,
): Promise<void> {
  const coded = toMailintakeError(reason, 'PARSE_FAILED');
  if (roundRuleOf(coded) === 'stop-round') throw coded;
  item.error = coded;
  if (coded.code === 'STORE_FAILED' && buffered) {
    // The store refused an attachment (a full disk), not the mail: parsed again without keeping anything, the
    // mail gives its sender and subject for the error row, so an admin sees whose mail waits.
    item.parsed = await parseMail(
      new PassThrough().end(buffered),
      parseOptions(scope, new DiscardingBlobs()),
    ).catch((err: unknown) => {
      scope.logger.debug('no sender and subject for a STORE_FAILED mail', { error: String(err) });
      return null;
    });
  }
}

/**
 * The attachment checks run here, before the commit: the sniffing reads blobs (I/O), which must not happen
 * inside the batch's transaction. A failing read is the store's fault, not the mail's: the mail is recorded as
 * STORE_FAILED and retried next round, never taken in with unchecked attachments.
 */
async function check(scope: PrepareScope, item: BatchItem): Promise<void> {
  try {
    item.checked = await checkAttachments(item.parsed!.attachments, scope.checks.policy, scope.checks.sniff);
    // a forward as attachment names its original sender in the part's header (read here: no I/O in the commit)
    item.forwardedHead = await forwardedHead(scope.blobs, item.parsed!);
  } catch (err) {
    item.error = toMailintakeError(err, 'STORE_FAILED', 'the attachments could not be checked');
  }
}
