import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseAnswer } from './ews-xml.js';
import { readMimeAnswer } from './mime-stream.js';

const head =
  '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>' +
  '<m:GetItemResponse xmlns:m="m" xmlns:t="t"><m:ResponseMessages><m:GetItemResponseMessage ResponseClass="Success">' +
  '<m:ResponseCode>NoError</m:ResponseCode><m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">';
const tail =
  '</t:MimeContent><t:ItemId Id="AAMk" ChangeKey="CQ"/></t:Message></m:Items></m:GetItemResponseMessage>' +
  '</m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>';

/** An answer delivered `size` bytes at a time. */
function body(text: string, size: number): Readable {
  const bytes = Buffer.from(text, 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return Readable.from(chunks);
}

const options = {
  maxHeadBytes: 64 * 1024,
  check: (skeleton: string) => {
    const answer = parseAnswer(skeleton, 'GetItem');
    if (answer.kind !== 'messages' || answer.messages[0]?.responseClass !== 'Success') {
      throw new Error('not a successful GetItem');
    }
  },
  fail: (err: unknown, what: 'connection' | 'answer') =>
    new Error(`${what}: ${err instanceof Error ? err.message : String(err)}`),
};

async function drain(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

describe('readMimeAnswer: MimeContent decoded as it arrives', () => {
  const mail = Buffer.from(`Subject: héllo\r\n\r\n${'line of text\r\n'.repeat(2000)}`, 'utf8');

  it('gives the exact bytes whatever the chunking (1, 3, 7 bytes, 64 KB), line-wrapped base64 included', async () => {
    const wrapped = (mail.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
    for (const size of [1, 3, 7, 65_536]) {
      for (const b64 of [mail.toString('base64'), wrapped]) {
        const answer = await readMimeAnswer(body(head + b64 + tail, size), options);
        expect(answer.kind).toBe('mime');
        if (answer.kind === 'mime') expect((await drain(answer.stream)).equals(mail)).toBe(true);
      }
    }
  });

  it('an answer without MimeContent (an error message) is handed back whole, to be parsed', async () => {
    const error =
      '<?xml version="1.0"?><s:Envelope xmlns:s="s"><s:Body><m:GetItemResponse xmlns:m="m"><m:ResponseMessages>' +
      '<m:GetItemResponseMessage ResponseClass="Error"><m:MessageText>Not found.</m:MessageText>' +
      '<m:ResponseCode>ErrorItemNotFound</m:ResponseCode></m:GetItemResponseMessage></m:ResponseMessages>' +
      '</m:GetItemResponse></s:Body></s:Envelope>';
    expect(await readMimeAnswer(body(error, 5), options)).toEqual({ kind: 'whole', text: error });
  });

  it('an answer that ends inside MimeContent fails the stream: never a short mail that looks complete', async () => {
    const b64 = mail.toString('base64');
    const answer = await readMimeAnswer(body(head + b64.slice(0, 1000), 100), options);
    expect(answer.kind).toBe('mime');
    if (answer.kind === 'mime')
      await expect(drain(answer.stream)).rejects.toThrow(/^connection: .*inside MimeContent/);
  });

  it('a broken envelope around the mail, padding in the middle, or non-base64 fail the stream', async () => {
    const b64 = mail.toString('base64');
    const cases = [
      head.replace('ResponseClass="Success"', 'ResponseClass="Error"') + b64 + tail,
      head + b64.slice(0, 8).replace(/.$/, '=') + b64.slice(8) + tail,
      `${head}${b64.slice(0, 40)}&amp;${b64.slice(40)}${tail}`,
      `${head}${b64}${tail.replace('</s:Envelope>', '')}`,
    ];
    for (const text of cases) {
      const answer = await readMimeAnswer(body(text, 4096), options);
      expect(answer.kind).toBe('mime');
      if (answer.kind === 'mime') await expect(drain(answer.stream)).rejects.toThrow();
    }
  });

  it('a connection error before the MimeContent rejects; destroying the stream stops reading the answer', async () => {
    const failing = new Readable({
      read() {
        this.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
      },
    });
    await expect(readMimeAnswer(failing, options)).rejects.toThrow('connection: reset');
    const source = body(head + mail.toString('base64').repeat(20) + tail, 1024);
    const answer = await readMimeAnswer(source, options);
    if (answer.kind !== 'mime') throw new Error('expected a stream');
    answer.stream.destroy();
    await new Promise((resolve) => source.once('close', resolve));
    expect(source.destroyed).toBe(true);
  });
});
