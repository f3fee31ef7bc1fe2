/**
 * How often the charset chain (src/mail/charset.ts) finds the right text when the label is taken away, on the
 * labelled text of the corpus: every RFC 2047 encoded word and every text body part whose declared charset is
 * not UTF-8 and fits its bytes, with 8-bit bytes in it. The label's own decoding is the truth; the chain gets
 * the bytes alone (nothing declared), as it does for a raw 8-bit header. Right means the same text (so
 * ISO-8859-1 read as windows-1252 counts as right when the text is the same). Identical samples (the corpus
 * has copies of one mail in several folders) count once.
 *
 *   tsc -p tsconfig.bench.json && node .bench/bench/charset-detection.js
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import iconv from 'iconv-lite';
import { MailParser } from 'mailparser';
import { decodeUnlabelled, hasEightBit, labelFits, strictUtf8 } from '../src/mail/charset.js';
import { corpusMails, corpusRoot, hasCorpus } from '../test/kit/corpus.js';

interface Sample {
  label: string;
  bytes: Buffer;
}

/** Each encoded word of the raw mail: its charset and its bytes. */
function encodedWords(raw: Buffer): Sample[] {
  const out: Sample[] = [];
  const text = raw.toString('latin1');
  for (const m of text.matchAll(/=\?([^?*\s]+)(?:\*[^?]*)?\?([bBqQ])\?([^?\s]*)\?=/g)) {
    const [, label = '', enc = '', data = ''] = m;
    const bytes =
      enc.toUpperCase() === 'B'
        ? Buffer.from(data, 'base64')
        : Buffer.from(
            data
              .replace(/_/g, ' ')
              .replace(/=([0-9A-Fa-f]{2})/g, (_s, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
            'latin1',
          );
    out.push({ label, bytes });
  }
  return out;
}

/** A MailParser that hands every text body's bytes (before charset decoding) to `seen`. */
class CapturingParser extends MailParser {
  constructor(readonly seen: Sample[]) {
    super({ skipTextToHtml: true, skipTextLinks: true });
  }

  getDecoder(): { decodeStream(charset: string): NodeJS.ReadWriteStream } {
    const original = (
      MailParser.prototype as unknown as {
        getDecoder(this: unknown): { decodeStream(charset: string): NodeJS.ReadWriteStream };
      }
    ).getDecoder.call(this);
    return {
      decodeStream: (charset: string) => {
        const chunks: Buffer[] = [];
        const seen = this.seen;
        const decode = original.decodeStream(charset);
        const write = decode.write.bind(decode) as (chunk: Buffer) => boolean;
        const end = decode.end.bind(decode) as () => void;
        // the parser writes into `decode` and reads what it gives; the bytes are noted on their way in
        return Object.assign(decode, {
          write: (chunk: Buffer) => {
            chunks.push(chunk);
            return write(chunk);
          },
          end: () => {
            seen.push({ label: charset, bytes: Buffer.concat(chunks) });
            end();
          },
        }) as NodeJS.ReadWriteStream;
      },
    };
  }
}

async function bodies(raw: Buffer): Promise<Sample[]> {
  const seen: Sample[] = [];
  const parser = new CapturingParser(seen);
  parser.on('data', (item: { type: string; release?: () => void; content?: Readable }) => {
    if (item.type === 'attachment') {
      item.content?.resume();
      item.release?.();
    }
  });
  await new Promise<void>((resolve) => {
    parser.once('end', () => resolve());
    parser.once('error', () => resolve());
    Readable.from([raw]).pipe(parser);
  });
  return seen;
}

function usable(s: Sample): boolean {
  const squashed = s.label.toLowerCase().replace(/[^a-z0-9]/g, '');
  return (
    hasEightBit(s.bytes) &&
    !['utf8', 'usascii', 'ascii'].includes(squashed) &&
    iconv.encodingExists(s.label) &&
    labelFits(s.bytes, s.label)
  );
}

interface Tally {
  total: number;
  right: number;
  wrong: Map<string, number>;
}

function tally(samples: Sample[], seenKeys: Set<string>, t: Tally): void {
  for (const s of samples) {
    if (!usable(s)) continue;
    const key = createHash('sha256').update(s.label.toLowerCase()).update(s.bytes).digest('hex');
    if (seenKeys.has(key)) continue;
    seenKeys.add(key);
    const truth = iconv.decode(s.bytes, s.label);
    // bytes that are valid UTF-8 under another label are taken as UTF-8 by the chain, rightly or not: counted
    const got = decodeUnlabelled(s.bytes, []);
    t.total++;
    if (got.text === truth) t.right++;
    else {
      const k = `${s.label.toLowerCase()} → ${got.charset}${strictUtf8(s.bytes) !== null ? ' (valid UTF-8)' : ''}`;
      t.wrong.set(k, (t.wrong.get(k) ?? 0) + 1);
      if (process.env.SHOW_WRONG)
        console.log(
          JSON.stringify({
            k,
            truth: truth.slice(0, 80),
            got: got.text.slice(0, 80),
            t8: [...truth]
              .filter((c) => c > '\x7f')
              .join('')
              .slice(0, 40),
            g8: [...got.text]
              .filter((c) => c > '\x7f')
              .join('')
              .slice(0, 40),
          }),
        );
    }
  }
}

async function main(): Promise<void> {
  if (!hasCorpus) {
    console.log(`no corpus at ${corpusRoot}: nothing measured (set MAILINTAKE_CORPUS)`);
    process.exitCode = 1;
    return;
  }
  const words: Tally = { total: 0, right: 0, wrong: new Map() };
  const texts: Tally = { total: 0, right: 0, wrong: new Map() };
  const wordKeys = new Set<string>();
  const textKeys = new Set<string>();
  for (const m of corpusMails()) {
    // the few huge mails (mailparser's large-text fixtures) hold no labelled 8-bit text, and this parser has no cut
    if (m.raw.length > 2 * 1024 * 1024) continue;
    tally(encodedWords(m.raw), wordKeys, words);
    tally(await bodies(m.raw), textKeys, texts);
  }
  const show = (name: string, t: Tally) => {
    const pct = t.total === 0 ? 'n/a' : `${((100 * t.right) / t.total).toFixed(1)} %`;
    console.log(`${name}: ${t.right} of ${t.total} read right without their label (${pct})`);
    for (const [k, n] of [...t.wrong].sort((a, b) => b[1] - a[1])) console.log(`  wrong: ${k} ×${n}`);
  };
  show('encoded words (header-sized text)', words);
  show('text bodies', texts);
}

await main();
