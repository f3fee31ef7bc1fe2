import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseMail } from '../../src/mail/parse.js';
import { splitReply } from '../../src/mail/reply-split.js';
import { FileBlobStore } from '../../src/store/blobs/blob-store.js';
import { corpusMails, corpusRoot } from './corpus.js';

/*
 * The new part of a reply, measured (issue 13 §7): our splitter and the two maintained libraries on two
 * labelled sets.
 *
 *  - library set: the libraries' own test cases (test/fixtures/reply-split/library-fixtures.json), with the
 *    expectation each library's test asserts;
 *  - corpus set: 30 mails of ../shared/corpus whose new part was written down by hand, reading each
 *    (test/fixtures/reply-split/labels.json).
 *
 * Precision, defined two ways:
 *  - per mail: the new part equals the label after whitespace normalisation (runs of white space become one
 *    space, ends trimmed). Exact matches / mails.
 *  - per line: the non-empty lines (normalised) shown as new, compared with the label's as multisets. Precision:
 *    shown lines that are in the label / shown lines (what we show is what they wrote). Recall: label lines
 *    shown / label lines (nothing they wrote is folded away). Summed over all mails of the set (micro average).
 */

const fixtures = resolve(fileURLToPath(new URL('../fixtures/reply-split', import.meta.url)));

export interface LabelledCase {
  id: string;
  text: string;
  expected: string;
}

export type Splitter = (text: string) => string;

export interface Score {
  mails: number;
  exact: number;
  linesShown: number;
  linesShownRight: number;
  linesExpected: number;
  /** Ids of the mails whose new part is not exactly the label. */
  misses: string[];
}

const normalise = (s: string) => s.replace(/\s+/g, ' ').trim();
const linesOf = (s: string) =>
  s
    .split(/\r?\n/)
    .map(normalise)
    .filter((l) => l !== '');

export function score(cases: LabelledCase[], split: Splitter): Score {
  const s: Score = { mails: 0, exact: 0, linesShown: 0, linesShownRight: 0, linesExpected: 0, misses: [] };
  for (const c of cases) {
    s.mails++;
    let got: string;
    try {
      got = split(c.text);
    } catch {
      got = '';
    }
    if (normalise(got) === normalise(c.expected)) s.exact++;
    else s.misses.push(c.id);
    const want = new Map<string, number>();
    for (const l of linesOf(c.expected)) want.set(l, (want.get(l) ?? 0) + 1);
    const shown = linesOf(got);
    s.linesShown += shown.length;
    s.linesExpected += linesOf(c.expected).length;
    for (const l of shown) {
      const left = want.get(l) ?? 0;
      if (left > 0) {
        s.linesShownRight++;
        want.set(l, left - 1);
      }
    }
  }
  return s;
}

export function describeScore(s: Score): string {
  const pc = (n: number, of: number) => (of === 0 ? 'n/a' : `${((100 * n) / of).toFixed(1)} %`);
  return (
    `exact ${s.exact}/${s.mails} (${pc(s.exact, s.mails)}), line precision ${pc(s.linesShownRight, s.linesShown)}` +
    ` (${s.linesShownRight}/${s.linesShown}), line recall ${pc(s.linesShownRight, s.linesExpected)}` +
    ` (${s.linesShownRight}/${s.linesExpected})`
  );
}

export function libraryCases(): LabelledCase[] {
  const file = JSON.parse(readFileSync(join(fixtures, 'library-fixtures.json'), 'utf8')) as {
    cases: { id: string; text: string; expected: string }[];
  };
  return file.cases;
}

interface CorpusLabel {
  mail: string;
  expected: string;
  note?: string;
}

/** The hand-labelled corpus mails, with the text the store keeps for each (parse.ts, as intake does). */
export async function corpusCases(root: string = corpusRoot): Promise<LabelledCase[]> {
  const file = JSON.parse(readFileSync(join(fixtures, 'labels.json'), 'utf8')) as { labels: CorpusLabel[] };
  const wanted = new Map(file.labels.map((l) => [l.mail, l]));
  const dir = mkdtempSync(join(tmpdir(), 'mailintake-split-'));
  const out: LabelledCase[] = [];
  try {
    for (const m of corpusMails(root)) {
      const label = wanted.get(m.name);
      if (!label) continue;
      const parsed = await parseMail(Readable.from([m.raw]), { blobs: new FileBlobStore(dir) });
      const text = parsed.text ?? '';
      out.push({ id: m.name, text, expected: label.expected });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const missing = [...wanted.keys()].filter((k) => !out.some((c) => c.id === k));
  if (missing.length > 0) throw new Error(`labelled mails not found in the corpus: ${missing.join(', ')}`);
  return out;
}

/** The splitters compared: ours, and each library when it is installed (they are measured, not shipped). */
export async function splitters(): Promise<Record<string, Splitter | string>> {
  const out: Record<string, Splitter | string> = {
    'reply-split (ours)': (text) => splitReply({ text }).newPart,
  };
  // Loaded by a computed name: they are development tools for these figures, absent from a production install.
  const load = async (name: string): Promise<Record<string, unknown> | string> => {
    try {
      return (await import(name)) as Record<string, unknown>;
    } catch {
      return `not installed (npm install --no-save ${name})`;
    }
  };
  const erp = await load('email-reply-parser');
  if (typeof erp === 'string') out['email-reply-parser 2.3.7'] = erp;
  else {
    const Parser = erp.default as new () => { parseReply(text: string): string };
    out['email-reply-parser 2.3.7'] = (text) => new Parser().parseReply(text);
  }
  const planer = await load('planer');
  if (typeof planer === 'string') out['planer 1.2.0'] = planer;
  else {
    const lib = (planer.default ?? planer) as { extractFromPlain(text: string): string };
    out['planer 1.2.0'] = (text) => lib.extractFromPlain(text);
  }
  return out;
}
