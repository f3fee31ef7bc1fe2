import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The real-world corpus (read, never copied into the repo): MAILINTAKE_CORPUS, default ../shared/corpus. */
export const corpusRoot = process.env.MAILINTAKE_CORPUS ?? resolve(repoRoot, '../shared/corpus');
export const hasCorpus = existsSync(corpusRoot);

export interface CorpusMail {
  /** Top-level corpus folder (james-mime4j, sisimai-set-of-emails, …). */
  folder: string;
  /** Path relative to the corpus root; `#n` for the n-th mail of an mbox file. */
  name: string;
  raw: Buffer;
}

/** Every mail in the corpus: `.eml`/`.msg`/`.box` and other files, mbox files split; expected-result files skipped. */
export function* corpusMails(root: string = corpusRoot): Generator<CorpusMail> {
  for (const path of walk(root)) {
    const rel = relative(root, path);
    const name = basename(path);
    const folder = rel.split('/')[0] ?? rel;
    if (folder === rel) continue; // README.md at the top
    if (/^(LICENSE|NOTICE|README|ARTISTIC-LICENSE)/i.test(name)) continue;
    if (/\.(md|json|xml|out)$/i.test(name) || name.includes('_decoded_')) continue;
    const raw = readFileSync(path);
    // An mbox (a file of several mails, each after a `From ` line); single .eml files that merely start with
    // their envelope `From ` line stay one mail.
    const isMbox = !/\.(eml|msg|box)$/i.test(name) && raw.subarray(0, 5).toString('latin1') === 'From ';
    if (!isMbox) {
      yield { folder, name: rel, raw };
      continue;
    }
    const messages = raw.toString('latin1').split(/(?:^|\n)From [^\n]*\n/);
    let i = 0;
    for (const message of messages) {
      if (message.trim() === '') continue;
      yield { folder, name: `${rel}#${++i}`, raw: Buffer.from(message, 'latin1') };
    }
  }
}

function walk(dirPath: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dirPath, { withFileTypes: true })) {
    const p = join(dirPath, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else if (entry.isFile()) out.push(p);
  }
  return out.sort();
}
