import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type MachineKind, machineKind } from '../../src/mail/machine.js';
import { parseMail } from '../../src/mail/parse.js';
import { FileBlobStore } from '../../src/store/blobs/blob-store.js';
import { corpusMails, corpusRoot } from './corpus.js';

/*
 * The classifier's figures over the real corpus: bounce recall on sisimai's labelled bounces, auto-reply recall
 * on its labelled auto-replies, and every mail that is not a bounce but is read as one (must be none).
 */

/** sisimai's reasons that are auto-replies, not bounces. */
const AUTO_REPLY_REASONS = new Set(['vacation']);

/**
 * Mails of the non-sisimai corpora that ARE bounces or auto-replies (they are test fixtures of MIME parsers and
 * help desks, a few of them delivery reports), read one by one: the rest of those corpora are ordinary mail.
 */
export const KNOWN_MACHINE_MAILS: Record<string, MachineKind> = {
  'postal-mime/test/fixtures/bounce.eml': 'bounce',
  'mailparser/test/fixtures/delivery-status.eml': 'bounce',
  'postal-mime/test/fixtures/arf.eml': 'bounce', // an abuse feedback report (ARF), as sisimai counts them
  'otobo/scripts/test/sample/PostMaster/PostMaster-Test10.box': 'bounce', // a Postfix DSN
  'otobo/scripts/test/sample/EmailParser/PostMaster-Test10.box': 'bounce', // the same DSN
  // DSN-shaped test mails (a message/delivery-status part) for attachment-name handling
  'otobo/scripts/test/sample/EmailParser/FilenameWithCRLF.box': 'bounce',
  'otobo/scripts/test/sample/EmailParser/FilenameWithNewline.box': 'bounce',
  // "Mail System Error - Returned Mail" from the postmaster, kept for its broken boundary
  'james-mime4j/core/src/test/resources/mimetools-testmsgs/badbound.msg': 'bounce',
};

export type Label = 'bounce' | 'auto-reply' | 'other';

export interface Figures {
  bounces: number;
  bouncesFound: number;
  /** Recognised bounces that name the Message-ID of the mail they report. */
  bouncesNamingMail: number;
  autoReplies: number;
  autoRepliesFound: number;
  /** Labelled non-bounces (maildir/not and the other corpora, known machine mails aside). */
  nonBounces: number;
  /** Non-bounces read as bounces: must be empty. */
  misreadAsBounce: string[];
  /** Non-bounces read as auto-replies (reported, not asserted: those corpora hold some real auto-replies). */
  readAsAutoReply: string[];
  missedBounces: string[];
  missedAutoReplies: string[];
  /** sisimai files without a label (not counted): what the classifier made of them. */
  unlabelled: Map<string, number>;
  /** Mails that failed to parse (not counted). */
  unparsed: number;
}

export function labelOf(name: string, expected: Record<string, { reason: string }[]>): Label | null {
  const known = KNOWN_MACHINE_MAILS[name];
  if (known) return known === 'bounce' ? 'bounce' : 'auto-reply';
  const [folder, ...rest] = name.split('/');
  if (folder !== 'sisimai-set-of-emails') return 'other';
  const rel = rest.join('/');
  if (rel.startsWith('maildir/not/')) return 'other';
  const entries = expected[rel];
  if (!entries || entries.length === 0) return null;
  return entries.every((e) => AUTO_REPLY_REASONS.has(e.reason)) ? 'auto-reply' : 'bounce';
}

export async function corpusFigures(root: string = corpusRoot): Promise<Figures> {
  const expectedPath = join(root, 'sisimai-set-of-emails/_expected/expected-by-file.json');
  const expected = existsSync(expectedPath)
    ? (JSON.parse(readFileSync(expectedPath, 'utf8')) as Record<string, { reason: string }[]>)
    : {};
  const dir = mkdtempSync(join(tmpdir(), 'mailintake-machine-'));
  const blobs = new FileBlobStore(dir);
  const f: Figures = {
    bounces: 0,
    bouncesFound: 0,
    bouncesNamingMail: 0,
    autoReplies: 0,
    autoRepliesFound: 0,
    nonBounces: 0,
    misreadAsBounce: [],
    readAsAutoReply: [],
    missedBounces: [],
    missedAutoReplies: [],
    unlabelled: new Map(),
    unparsed: 0,
  };
  try {
    for (const m of corpusMails(root)) {
      const label = labelOf(m.name, expected);
      let kind: MachineKind | null;
      let names = false;
      try {
        const verdict = machineKind(await parseMail(Readable.from([m.raw]), { blobs }));
        kind = verdict.kind;
        names = verdict.bouncedMessageId !== undefined;
      } catch {
        f.unparsed++;
        continue;
      }
      if (label === null) {
        f.unlabelled.set(kind ?? 'none', (f.unlabelled.get(kind ?? 'none') ?? 0) + 1);
      } else if (label === 'bounce') {
        f.bounces++;
        if (kind === 'bounce') f.bouncesFound++;
        if (kind === 'bounce' && names) f.bouncesNamingMail++;
        else f.missedBounces.push(`${m.name} (${kind ?? 'none'})`);
      } else if (label === 'auto-reply') {
        f.autoReplies++;
        if (kind === 'auto-reply') f.autoRepliesFound++;
        else f.missedAutoReplies.push(`${m.name} (${kind ?? 'none'})`);
      } else {
        f.nonBounces++;
        if (kind === 'bounce') f.misreadAsBounce.push(m.name);
        if (kind === 'auto-reply') f.readAsAutoReply.push(m.name);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return f;
}

export function percent(n: number, of: number): string {
  return of === 0 ? 'n/a' : `${((100 * n) / of).toFixed(1)} %`;
}
