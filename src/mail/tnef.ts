import iconv from 'iconv-lite';
import { decodeUnlabelled } from './charset.js';

/**
 * winmail.dat (application/ms-tnef): Outlook and Exchange wrap a mail's attachments, and sometimes its body, in
 * their own container (MS-OXTNEF) when they believe the recipient runs Outlook. Anyone else sees one file
 * nobody can open. This reads the container and gives back the files in it.
 *
 * Written here rather than taken from npm: `node-tnef` (the one TNEF reader there) turns the file into an
 * array of numbers (eight bytes per byte) and copies the rest of the file for every attribute it reads
 * (quadratic: a 10 MB winmail.dat with a thousand attributes is gigabytes of copying), trusts every length
 * it reads, logs to stdout with bunyan, and replaces String.prototype.replaceAll for the whole process when
 * loaded; `@kenjiuno/msgreader` reads .msg files (a different container) and no TNEF. The format is small:
 * a signature, then attributes (level, id, length, data, checksum); attachments' names and MIME types are in
 * a MAPI property list of their own.
 *
 * Every read is bounds-checked against the buffer, so a lying length or count ends the reading with a
 * TnefError instead of reading past the end, allocating what the count claims, or looping; data are views
 * into the buffer, never copies, until the caller stores them.
 */

/** The reasons a winmail.dat is left as it is, as the trace names them. */
export type TnefProblem = 'TNEF_NOT_TNEF' | 'TNEF_TRUNCATED' | 'TNEF_TOO_MANY_FILES';

export class TnefError extends Error {
  constructor(
    readonly problem: TnefProblem,
    message: string,
  ) {
    super(message);
  }
}

export interface TnefFile {
  name: string | null;
  mimeType: string | null;
  data: Buffer;
}

export interface TnefContent {
  files: TnefFile[];
  /** The plain-text body, when the container carries one (attBody or PR_BODY). */
  text: string | null;
  /** The HTML body, when the container carries one (PR_BODY_HTML). */
  html: string | null;
  /** true when the body is there only as compressed RTF, which is not unpacked. */
  rtfOnly: boolean;
}

const SIGNATURE = 0x223e9f78;
const LVL_ATTACHMENT = 0x02;

// Attribute ids (the low 16 bits of the attribute's id)
const ATT_BODY = 0x800c;
const ATT_ATTACH_DATA = 0x800f;
const ATT_ATTACH_TITLE = 0x8010;
const ATT_ATTACH_REND_DATA = 0x9002;
const ATT_MAPI_PROPS = 0x9003;
const ATT_ATTACHMENT = 0x9005;
const ATT_OEM_CODEPAGE = 0x9007;

// MAPI property ids and types
const PR_BODY = 0x1000;
const PR_RTF_COMPRESSED = 0x1009;
const PR_BODY_HTML = 0x1013;
const PR_ATTACH_DATA_BIN = 0x3701;
const PR_ATTACH_FILENAME = 0x3704;
const PR_ATTACH_LONG_FILENAME = 0x3707;
const PR_ATTACH_MIME_TAG = 0x370e;

const PT_STRING8 = 0x001e;
const PT_UNICODE = 0x001f;
const PT_BINARY = 0x0102;
const PT_OBJECT = 0x000d;
const MV_FLAG = 0x1000;

/** Bytes of one value of each fixed-size MAPI type (MS-OXTNEF 2.1.3.4: each padded to 4 bytes). */
const FIXED_SIZE: Record<number, number> = {
  1: 4, // PT_NULL
  2: 4, // PT_SHORT, padded
  3: 4, // PT_LONG
  4: 4, // PT_FLOAT
  5: 8, // PT_DOUBLE
  6: 8, // PT_CURRENCY
  7: 8, // PT_APPTIME
  10: 4, // PT_ERROR
  11: 4, // PT_BOOLEAN, padded
  20: 8, // PT_I8
  64: 8, // PT_SYSTIME
  72: 16, // PT_CLSID
};

/** A bounds-checked little-endian reader over one buffer. */
class Cursor {
  at = 0;
  constructor(readonly buf: Buffer) {}

  get left(): number {
    return this.buf.length - this.at;
  }

  need(n: number, what: string): void {
    if (n < 0 || n > this.left) {
      throw new TnefError(
        'TNEF_TRUNCATED',
        `${what} needs ${n} bytes at offset ${this.at}, ${this.left} left`,
      );
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf.readUInt8(this.at++);
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.at += n;
  }
}

/** Whether the bytes start like a TNEF container. */
export function looksLikeTnef(buf: Buffer): boolean {
  return buf.length >= 6 && buf.readUInt32LE(0) === SIGNATURE;
}

/**
 * Reads a winmail.dat. Throws TnefError when it is no TNEF, or when a length or count runs past its end;
 * at most `maxFiles` files (TNEF_TOO_MANY_FILES beyond, rather than a partial list that looks whole).
 */
export function readTnef(buf: Buffer, maxFiles: number): TnefContent {
  if (!looksLikeTnef(buf)) throw new TnefError('TNEF_NOT_TNEF', 'no TNEF signature');
  const c = new Cursor(buf);
  c.skip(6, 'signature and key');
  let codepage = 1252;
  const files: (TnefFile & { title: string | null })[] = [];
  let current: (TnefFile & { title: string | null }) | null = null;
  let text: string | null = null;
  let html: string | null = null;
  let rtf = false;

  while (c.left > 0) {
    const level = c.u8('attribute level');
    const id = c.u32('attribute id') & 0xffff;
    const length = c.u32('attribute length');
    const data = c.bytes(length, 'attribute data');
    c.skip(2, 'attribute checksum');

    if (id === ATT_OEM_CODEPAGE && data.length >= 4) {
      codepage = data.readUInt32LE(0);
    } else if (id === ATT_ATTACH_REND_DATA) {
      if (files.length >= maxFiles) {
        throw new TnefError('TNEF_TOO_MANY_FILES', `more than ${maxFiles} files`);
      }
      current = { name: null, title: null, mimeType: null, data: Buffer.alloc(0) };
      files.push(current);
    } else if (level === LVL_ATTACHMENT && current !== null) {
      if (id === ATT_ATTACH_TITLE) current.title = string8(data, codepage);
      else if (id === ATT_ATTACH_DATA) current.data = data;
      else if (id === ATT_ATTACHMENT) {
        for (const p of mapiProps(data)) {
          if (p.id === PR_ATTACH_LONG_FILENAME || (p.id === PR_ATTACH_FILENAME && current.name === null)) {
            current.name = propString(p, codepage) ?? current.name;
          } else if (p.id === PR_ATTACH_MIME_TAG) {
            current.mimeType = propString(p, codepage);
          } else if (p.id === PR_ATTACH_DATA_BIN && p.type === PT_BINARY && current.data.length === 0) {
            current.data = p.value;
          }
        }
      }
    } else if (id === ATT_BODY) {
      text = string8(data, codepage);
    } else if (id === ATT_MAPI_PROPS) {
      for (const p of mapiProps(data)) {
        if (p.id === PR_BODY) text = propString(p, codepage) ?? text;
        else if (p.id === PR_BODY_HTML) html = propString(p, codepage) ?? html;
        else if (p.id === PR_RTF_COMPRESSED) rtf = true;
      }
    }
  }
  return {
    files: files
      .filter((f) => f.data.length > 0)
      .map((f) => ({ name: f.name ?? f.title, mimeType: f.mimeType, data: f.data })),
    text,
    html,
    rtfOnly: rtf && text === null && html === null,
  };
}

interface MapiProp {
  type: number;
  id: number;
  /** The first (or only) value's bytes. */
  value: Buffer;
}

/** A MAPI property list (MS-OXTNEF 2.1.3.4), with the first value of each property. */
function mapiProps(buf: Buffer): MapiProp[] {
  const c = new Cursor(buf);
  const count = c.u32('property count');
  const out: MapiProp[] = [];
  // Each property takes at least 8 bytes: a count beyond what the buffer can hold is a lie, read until it runs out.
  for (let i = 0; i < count; i++) {
    const type = c.u16('property type');
    const id = c.u16('property id');
    if (id >= 0x8000) {
      // a named property: GUID, kind, then a number or a UTF-16 name
      c.skip(16, 'property GUID');
      const kind = c.u32('property name kind');
      if (kind === 0) c.skip(4, 'property name id');
      else c.skip(padded(c.u32('property name length')), 'property name');
    }
    const base = type & ~MV_FLAG;
    const variable = base === PT_STRING8 || base === PT_UNICODE || base === PT_BINARY || base === PT_OBJECT;
    const values = type & MV_FLAG || variable ? c.u32('value count') : 1;
    let first: Buffer | null = null;
    for (let v = 0; v < values; v++) {
      let value: Buffer;
      if (variable) {
        const length = c.u32('value length');
        value = c.bytes(length, 'value');
        c.skip(padded(length) - length, 'value padding');
      } else {
        const size = FIXED_SIZE[base];
        if (size === undefined)
          throw new TnefError('TNEF_TRUNCATED', `unknown property type 0x${base.toString(16)}`);
        value = c.bytes(size, 'value');
      }
      first ??= value;
    }
    out.push({ type: base, id, value: first ?? Buffer.alloc(0) });
  }
  return out;
}

function padded(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

function propString(p: MapiProp, codepage: number): string | null {
  if (p.type === PT_UNICODE) {
    // trailing NULs cut by a loop: /\0+$/ backtracks over every run of NULs not at the end (quadratic)
    const text = p.value.toString('utf16le');
    let end = text.length;
    while (end > 0 && text.charCodeAt(end - 1) === 0) end--;
    return text.slice(0, end);
  }
  if (p.type === PT_STRING8 || p.type === PT_BINARY) return string8(p.value, codepage);
  return null;
}

/** An 8-bit string in the container's code page, without its terminating NULs. */
function string8(data: Buffer, codepage: number): string {
  let end = data.length;
  while (end > 0 && data[end - 1] === 0) end--;
  const bytes = data.subarray(0, end);
  const label = codepage === 65001 ? 'utf-8' : `cp${codepage}`;
  if (iconv.encodingExists(label)) {
    const text = iconv.decode(bytes, label);
    if (!text.includes('\ufffd')) return text;
  }
  return decodeUnlabelled(bytes, []).text;
}
