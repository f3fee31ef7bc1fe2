import { Readable } from 'node:stream';
import { EWS_MAX_TAIL_BYTES as MAX_TAIL_BYTES } from '../../kernel/limits.js';

/**
 * A GetItem answer for one mail carries the raw MIME as base64 text inside the SOAP envelope
 * (`<t:MimeContent CharacterSet="UTF-8">…</t:MimeContent>`). A 50 MB mail must not be held whole, so the answer
 * is read as it arrives: the envelope up to the MimeContent start tag (small), then the base64 decoded chunk by
 * chunk into the stream the caller reads, then the rest of the envelope (small). The envelope without the
 * base64 — head + tail — is checked as a whole answer at the end (`check`), and the stream ends cleanly only
 * if it passes: an answer cut short, or a MimeContent that is not the one item's, fails the stream instead of
 * handing on a mail that looks complete and is not.
 */

/** The MimeContent start tag, whatever the prefix (Exchange writes `t:`). Searched in latin1 text. */
const START_TAG = /<(?:[A-Za-z_][\w.-]*:)?MimeContent\b[^>]*>/;
const BASE64_CHARS = /^[A-Za-z0-9+/=]*$/;

export type MimeAnswer =
  /** The answer carries MimeContent: its decoded bytes, streamed. */
  | { kind: 'mime'; stream: Readable }
  /** No MimeContent (an error answer, or something unexpected): the whole answer, for the caller to parse. */
  | { kind: 'whole'; text: string };

export interface MimeStreamOptions {
  /** Most bytes read before the MimeContent start tag; an error answer is far smaller. */
  maxHeadBytes: number;
  /** Checks the answer without the base64 (throws what the stream should fail with). */
  check(skeleton: string): void;
  /** Turns a failure (of the connection, or of the answer's form) into what the stream fails with. */
  fail(err: unknown, what: 'connection' | 'answer'): Error;
}

export function readMimeAnswer(body: Readable, o: MimeStreamOptions): Promise<MimeAnswer> {
  return new Promise((resolve, reject) => {
    let phase: 'head' | 'base64' | 'tail' | 'done' = 'head';
    let head = ''; // latin1: one char per byte, so indexes are byte offsets and nothing is mis-decoded
    let headEnd = 0;
    let carry = ''; // base64 characters not yet decoded (fewer than 4)
    let padded = false;
    let tail = '';
    let out: Readable | null = null;
    /**
     * A failure found before anyone listens on the stream (the first chunks can hold a whole small answer) is
     * kept until a reader listens for errors or asks for data: an 'error' emitted with no listener would crash
     * the process.
     */
    let pendingError: Error | null = null;
    const deliverPending = () => {
      if (!pendingError || !out) return;
      const err = pendingError;
      pendingError = null;
      out.destroy(err);
    };

    const utf8 = (latin1: string) => Buffer.from(latin1, 'latin1').toString('utf8');

    const failOut = (err: Error) => {
      phase = 'done';
      body.destroy();
      if (!out) reject(err);
      else if (out.listenerCount('error') > 0) out.destroy(err);
      else pendingError = err;
    };

    const takeBase64 = (s: string) => {
      const end = s.indexOf('<');
      const part = (end < 0 ? s : s.slice(0, end)).replace(/[\r\n\t ]+/g, '');
      if (!BASE64_CHARS.test(part) || (padded && part.length > 0)) {
        failOut(o.fail(new Error('MimeContent is not base64'), 'answer'));
        return;
      }
      carry += part;
      const whole = carry.length - (carry.length % 4);
      if (whole > 0) {
        const quads = carry.slice(0, whole);
        carry = carry.slice(whole);
        const pad = quads.indexOf('=');
        if (pad >= 0 && (pad < quads.length - 2 || carry.length > 0)) {
          failOut(o.fail(new Error('MimeContent has base64 padding in the middle'), 'answer'));
          return;
        }
        if (pad >= 0) padded = true;
        if (!out!.push(Buffer.from(quads, 'base64'))) body.pause();
      }
      if (end >= 0) {
        if (carry.length > 0) {
          failOut(o.fail(new Error('MimeContent ends in the middle of a base64 group'), 'answer'));
          return;
        }
        phase = 'tail';
        takeTail(s.slice(end));
      }
    };

    const takeTail = (s: string) => {
      tail += s;
      if (tail.length > MAX_TAIL_BYTES)
        failOut(o.fail(new Error('the answer goes on after the mail'), 'answer'));
    };

    body.on('data', (chunk: Buffer) => {
      const s = chunk.toString('latin1');
      if (phase === 'head') {
        const from = Math.max(0, head.length - 256); // a start tag split across chunks
        head += s;
        const m = START_TAG.exec(head.slice(from));
        if (!m) {
          if (head.length > o.maxHeadBytes) {
            failOut(o.fail(new Error(`no MimeContent within the first ${o.maxHeadBytes} bytes`), 'answer'));
          }
          return;
        }
        if (m[0].endsWith('/>')) {
          // an empty MimeContent element: nothing to stream; let the caller see the whole answer
          return;
        }
        headEnd = from + m.index + m[0].length;
        const rest = head.slice(headEnd);
        head = head.slice(0, headEnd);
        phase = 'base64';
        out = new Readable({
          read: () => {
            if (pendingError) deliverPending();
            else if (phase !== 'done') body.resume();
          },
          destroy: (err, cb) => {
            if (phase !== 'done') {
              phase = 'done';
              body.destroy();
            }
            cb(err);
          },
        });
        out.on('newListener', (event) => {
          if (event === 'error' && pendingError) process.nextTick(deliverPending);
        });
        resolve({ kind: 'mime', stream: out });
        takeBase64(rest);
      } else if (phase === 'base64') {
        takeBase64(s);
      } else if (phase === 'tail') {
        takeTail(s);
      }
    });

    body.on('end', () => {
      if (phase === 'head') {
        phase = 'done';
        resolve({ kind: 'whole', text: utf8(head) });
      } else if (phase === 'base64') {
        failOut(o.fail(new Error('the answer ended inside MimeContent'), 'connection'));
      } else if (phase === 'tail') {
        try {
          o.check(utf8(head) + utf8(tail));
        } catch (err) {
          failOut(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        phase = 'done';
        out!.push(null);
      }
    });

    body.on('error', (err) => {
      if (phase === 'done') return;
      failOut(o.fail(err, 'connection'));
    });
  });
}
