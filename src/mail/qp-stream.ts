import { Transform, type TransformCallback } from 'node:stream';
import { decode } from 'libqp';
import { QP_MAX_CARRY_BYTES as MAX_CARRY } from '../kernel/limits.js';

/**
 * Quoted-printable decoding that streams.
 *
 * Why by hand: libqp 3.0.1's `Decoder` (the one mailparser's splitter gives every quoted-printable part) keeps
 * every encoded byte of a part until the part ends and decodes it in one go. So a 64 MB quoted-printable
 * attachment peaked at 394 MB RSS (a base64 one streams), and a text body of soft line breaks only (`=\r\n`,
 * which decodes to nothing, so the display budget never fills) grew with the mail: 96 MB of them, 330 MB RSS.
 * No maintained decoder streams (libqp is the one mailparser, nodemailer and mailsplit share). The decoding
 * itself stays libqp's `decode`; this only feeds it in pieces where a piece boundary cannot change the result:
 * after a line end (an `=XX` escape and a soft line break never span one), or, for a line longer than
 * MAX_CARRY, before a `=` that may start an incomplete escape and before trailing white space (which `decode`
 * strips as if it ended a line). At most MAX_CARRY bytes plus one chunk are held.
 */

export class StreamingQpDecoder extends Transform {
  #carry = '';
  /** A run of white space longer than MAX_CARRY is being kept as it is (see below), to its end. */
  #keepingWhiteSpace = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    // 'binary': one char per byte, as decode reads it (raw 8-bit bytes pass through unchanged)
    let text = this.#carry + chunk.toString('binary');
    if (this.#keepingWhiteSpace) {
      const run = /^[ \t]*/.exec(text)![0].length;
      if (run > 0) this.push(Buffer.from(text.slice(0, run), 'binary'));
      text = text.slice(run);
      if (text.length === 0) {
        done();
        return;
      }
      this.#keepingWhiteSpace = false;
    }
    let cut = text.lastIndexOf('\n') + 1;
    if (cut === 0 && text.length > MAX_CARRY) cut = midLineCut(text);
    if (cut > 0) {
      this.#carry = text.slice(cut);
      this.push(decode(text.slice(0, cut)));
    } else if (text.length > MAX_CARRY) {
      // a line of nothing but white space past MAX_CARRY: kept as it is (decode would strip it only if the
      // line ended right after it), so that memory stays bounded whatever the line holds
      this.#carry = '';
      this.#keepingWhiteSpace = true;
      this.push(Buffer.from(text, 'binary'));
    } else {
      this.#carry = text;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#carry.length > 0) this.push(decode(this.#carry));
    this.#carry = '';
    done();
  }
}

/** Where a long line may be split: not inside an `=XX` escape, not in a run of white space at its end. */
function midLineCut(text: string): number {
  const eq = text.lastIndexOf('=');
  let cut = eq >= text.length - 2 ? eq : text.length;
  while (cut > 0 && (text[cut - 1] === ' ' || text[cut - 1] === '\t')) cut--;
  return cut;
}
