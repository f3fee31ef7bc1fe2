/**
 * Small RFC 5322 mails for tests, built by hand so each test states exactly what it sends (CRLF line ends).
 */
export interface TestMail {
  from?: string;
  to?: string;
  cc?: string;
  subject?: string;
  messageId?: string | null;
  inReplyTo?: string;
  references?: string;
  date?: string;
  body?: string;
  /** Extra header lines, e.g. 'Auto-Submitted: auto-replied'. */
  headers?: string[];
  attachments?: { filename: string; contentType: string; content: Buffer; inlineCid?: string }[];
  html?: string;
}

let counter = 0;

export function buildMail(m: TestMail = {}): Buffer {
  counter++;
  const head: string[] = [
    `From: ${m.from ?? 'Customer <customer@example.test>'}`,
    `To: ${m.to ?? 'support@example.test'}`,
  ];
  if (m.cc) head.push(`Cc: ${m.cc}`);
  head.push(`Subject: ${m.subject ?? `Printer on fire ${counter}`}`);
  head.push(`Date: ${m.date ?? 'Mon, 01 Jan 2024 10:00:00 +0000'}`);
  if (m.messageId !== null)
    head.push(`Message-ID: <${m.messageId ?? `test-${counter}-${process.pid}@example.test`}>`);
  if (m.inReplyTo) head.push(`In-Reply-To: <${m.inReplyTo}>`);
  if (m.references) head.push(`References: ${m.references}`);
  head.push(...(m.headers ?? []), 'MIME-Version: 1.0');
  const body = m.body ?? `Hello, this is mail ${counter}.\r\nThe printer is on fire.\r\n`;
  if (!m.attachments?.length && !m.html) {
    return Buffer.from(
      [...head, 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', body].join(
        '\r\n',
      ),
    );
  }
  // The usual shape of a mail client's output: mixed { alternative { plain, related { html, inline images } },
  // attachments }, each level only when needed.
  const n = counter;
  const part = (headers: string[], content: string) => [...headers, '', content].join('\r\n');
  const multipart = (kind: string, tag: string, parts: string[]) => {
    const b = `=_${tag}${n}`;
    return part(
      [`Content-Type: multipart/${kind}; boundary="${b}"`],
      [...parts.map((p) => `--${b}\r\n${p}`), `--${b}--`, ''].join('\r\n'),
    );
  };
  const base64 = (buf: Buffer) => (buf.toString('base64').match(/.{1,76}/g) ?? ['']).join('\r\n');
  const plain = part(['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit'], body);
  const inline = (m.attachments ?? []).filter((a) => a.inlineCid);
  const attached = (m.attachments ?? []).filter((a) => !a.inlineCid);
  let content = plain;
  if (m.html) {
    const html = part(['Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: 8bit'], m.html);
    const images = inline.map((a) =>
      part(
        [
          `Content-Type: ${a.contentType}; name="${a.filename}"`,
          'Content-Transfer-Encoding: base64',
          `Content-Disposition: inline; filename="${a.filename}"`,
          `Content-ID: <${a.inlineCid}>`,
        ],
        base64(a.content),
      ),
    );
    const rich = images.length > 0 ? multipart('related', 'r', [html, ...images]) : html;
    content = multipart('alternative', 'a', [plain, rich]);
  }
  if (attached.length > 0) {
    content = multipart('mixed', 'm', [
      content,
      ...attached.map((a) =>
        part(
          [
            `Content-Type: ${a.contentType}; name="${a.filename}"`,
            'Content-Transfer-Encoding: base64',
            `Content-Disposition: attachment; filename="${a.filename}"`,
          ],
          base64(a.content),
        ),
      ),
    ]);
  }
  return Buffer.from([...head, content].join('\r\n'));
}
