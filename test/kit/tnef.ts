/**
 * Builds winmail.dat (TNEF) containers for tests, the way Outlook writes them (MS-OXTNEF): the signature, the
 * message attributes, then per file attAttachRendData, attAttachTitle, attAttachData and attAttachment (a MAPI
 * property list with the long file name and the MIME type). The corpus has real winmail.dat files, but none
 * with files inside; these are what the unpacking is tested on.
 */

export interface TnefFileSpec {
  /** 8-bit title (attAttachTitle, in windows-1252 here). */
  title?: string;
  /** PR_ATTACH_LONG_FILENAME as PT_UNICODE. */
  longName?: string;
  mimeType?: string;
  data: Buffer;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function checksum(data: Buffer): number {
  let sum = 0;
  for (const byte of data) sum = (sum + byte) & 0xffff;
  return sum;
}

/** One attribute: level, id (type << 16 | name), length, data, checksum. */
export function tnefAttribute(level: number, id: number, type: number, data: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from([level]),
    u32(((type << 16) | id) >>> 0),
    u32(data.length),
    data,
    u16(checksum(data)),
  ]);
}

function pad4(b: Buffer): Buffer {
  const extra = (4 - (b.length % 4)) % 4;
  return extra === 0 ? b : Buffer.concat([b, Buffer.alloc(extra)]);
}

/** A MAPI property list of string properties: [id, type (0x1e or 0x1f), value]. */
export function mapiStrings(props: [number, number, string][]): Buffer {
  const parts: Buffer[] = [u32(props.length)];
  for (const [id, type, value] of props) {
    const bytes = type === 0x1f ? Buffer.from(`${value}\0`, 'utf16le') : Buffer.from(`${value}\0`, 'latin1');
    parts.push(u16(type), u16(id), u32(1), u32(bytes.length), pad4(bytes));
  }
  return Buffer.concat(parts);
}

export const TNEF_SIGNATURE = Buffer.from([0x78, 0x9f, 0x3e, 0x22, 0x01, 0x00]);

/** A winmail.dat with the given files and, optionally, a plain-text body (attBody). */
export function buildTnef(files: TnefFileSpec[], body?: string): Buffer {
  const parts: Buffer[] = [TNEF_SIGNATURE];
  parts.push(tnefAttribute(1, 0x9006, 0x0008, u32(0x00010000))); // attTnefVersion
  parts.push(tnefAttribute(1, 0x9007, 0x0006, Buffer.concat([u32(1252), u32(0)]))); // attOemCodepage
  parts.push(tnefAttribute(1, 0x8008, 0x0007, Buffer.from('IPM.Microsoft Mail.Note\0', 'latin1')));
  if (body !== undefined) parts.push(tnefAttribute(1, 0x800c, 0x0002, Buffer.from(`${body}\0`, 'latin1')));
  for (const f of files) {
    parts.push(tnefAttribute(2, 0x9002, 0x0006, Buffer.alloc(14))); // attAttachRendData
    if (f.title !== undefined) {
      parts.push(tnefAttribute(2, 0x8010, 0x0001, Buffer.from(`${f.title}\0`, 'latin1')));
    }
    parts.push(tnefAttribute(2, 0x800f, 0x0006, f.data));
    const props: [number, number, string][] = [];
    if (f.longName !== undefined) props.push([0x3707, 0x1f, f.longName]);
    if (f.mimeType !== undefined) props.push([0x370e, 0x1e, f.mimeType]);
    if (props.length > 0) parts.push(tnefAttribute(2, 0x9005, 0x0006, mapiStrings(props)));
  }
  return Buffer.concat(parts);
}
