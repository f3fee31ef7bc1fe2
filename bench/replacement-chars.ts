/**
 * How many mails of the corpus come out of the parser with U+FFFD (a byte no charset was found for) in the
 * fields people read: the subject, a sender's or recipient's display name, an attachment's file name, and the
 * text body. A corpus mail whose raw bytes already hold U+FFFD (EF BF BD) in a field is counted all the same;
 * the figure is meant to be compared before and after a change of the parser.
 *
 *   npm run build && tsc -p tsconfig.bench.json && node .bench/bench/replacement-chars.js
 *
 * PARSE_MODULE=/path/to/dist/mail/parse.js measures another build of the parser (an older commit's), so
 * before and after run the same count. MAILINTAKE_CORPUS names the corpus (default ../shared/corpus).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type { parseMail as ParseMail } from '../src/mail/parse.js';
import { FileBlobStore } from '../src/store/blobs/blob-store.js';
import { corpusMails, corpusRoot, hasCorpus } from '../test/kit/corpus.js';

const FIELDS = ['subject', 'from name', 'to/cc name', 'file name', 'text body'] as const;
type Field = (typeof FIELDS)[number];

async function main(): Promise<void> {
  if (!hasCorpus) {
    console.log(`no corpus at ${corpusRoot}: nothing measured (set MAILINTAKE_CORPUS)`);
    process.exitCode = 1;
    return;
  }
  const modulePath = process.env.PARSE_MODULE;
  const { parseMail } = (await import(
    modulePath ? pathToFileURL(modulePath).href : '../src/mail/parse.js'
  )) as { parseMail: typeof ParseMail };
  const dir = mkdtempSync(join(tmpdir(), 'mailintake-fffd-'));
  const blobs = new FileBlobStore(dir);
  const counts = Object.fromEntries(FIELDS.map((f) => [f, 0])) as Record<Field, number>;
  const examples: string[] = [];
  let mails = 0;
  let failed = 0;
  let anyField = 0;
  let noted = 0;
  try {
    for (const m of corpusMails()) {
      mails++;
      let mail: Awaited<ReturnType<typeof ParseMail>>;
      try {
        mail = await parseMail(Readable.from([m.raw]), { blobs });
      } catch {
        failed++;
        continue;
      }
      const has = (s: string | null | undefined) => (s ?? '').includes('\ufffd');
      const hit: Record<Field, boolean> = {
        subject: has(mail.subject),
        'from name': has(mail.from?.name),
        'to/cc name': [...mail.to, ...mail.cc].some((a) => has(a.name)),
        'file name': mail.attachments.some((a) => has(a.filename)),
        'text body': has(mail.text),
      };
      let any = false;
      for (const f of FIELDS) {
        if (hit[f]) {
          counts[f]++;
          if (f !== 'text body') any = true;
        }
      }
      if (any) {
        anyField++;
        if (examples.length < 15) examples.push(m.name);
      }
      if (((mail as { parseNotes?: string[] }).parseNotes ?? []).length > 0) noted++;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`parser: ${modulePath ?? 'this tree'}`);
  console.log(`mails: ${mails} (${failed} refused with a coded error)`);
  for (const f of FIELDS) console.log(`  with U+FFFD in the ${f}: ${counts[f]}`);
  console.log(`  with U+FFFD in a subject, name or file name: ${anyField}`);
  console.log(`  with parse notes: ${noted}`);
  if (examples.length > 0) console.log(`  e.g. ${examples.join(', ')}`);
}

await main();
