/** The classic uuencode (what `uuencode name` writes), to build inputs whose decoding is known. */
export function uuencode(data: Buffer, name: string, lineEnd = '\n'): string {
  const ch = (v: number) => (v === 0 ? '`' : String.fromCharCode(v + 0x20));
  const lines = [`begin 644 ${name}`];
  for (let at = 0; at < data.length; at += 45) {
    const chunk = data.subarray(at, at + 45);
    let line = ch(chunk.length);
    for (let i = 0; i < chunk.length; i += 3) {
      const [a = 0, b = 0, c = 0] = [chunk[i], chunk[i + 1], chunk[i + 2]];
      line += ch(a >> 2) + ch(((a & 3) << 4) | (b >> 4)) + ch(((b & 15) << 2) | (c >> 6)) + ch(c & 63);
    }
    lines.push(line);
  }
  lines.push('`', 'end', '');
  return lines.join(lineEnd);
}
