import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { buffer, text } from 'node:stream/consumers';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRuntime } from '../src/app/compose.js';
import type { Runtime } from '../src/app/runtime.js';
import { createApi } from '../src/http/app.js';
import { imapsMailbox } from './kit/mailboxes.js';
import { cliRunner } from './support/cli.js';
import { deliverMaildir } from './support/deliver.js';
import { type DovecotServer, startDovecot } from './support/dovecot.js';
import { ENGINES, freshConfig } from './support/engines.js';
import { checkResponses } from './support/openapi-check.js';

/**
 * International and hostile attachment names end to end (issue 10): real Dovecot, real store on both engines,
 * names encoded the ways mail clients encode them (raw UTF-8, RFC 2231 with and without continuations, RFC 2047
 * B and Q in another charset). Each kept name must be stored exactly, listed by the API and the CLI, and served
 * with an RFC 6266/8187 Content-Disposition that gives the same name back; the bytes must be the sent bytes.
 */

/** RFC 6266: the quoted ASCII fallback (no `"`, `\`, `/`, `%`), then RFC 8187's ext-value. */
const DISPOSITION =
  /^attachment; filename="([\x20\x21\x23-\x24\x26-\x2e\x30-\x5b\x5d-\x7e]+)"; filename\*=UTF-8''((?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})+)$/;

interface Part {
  /** The part's Content-Type and Content-Disposition lines, as a mail client writes them. */
  headers: string[];
  /** The name the sender meant, as it must be stored and given back. */
  name: string;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const pct = (s: string) =>
  encodeURIComponent(s).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);

/** The ordinary names of the issue, each in one of the encodings mail clients use. */
const ORDINARY: Part[] = [
  {
    name: '会议纪要（最终版）.docx',
    headers: [
      'Content-Type: application/octet-stream',
      'Content-Disposition: attachment; filename="会议纪要（最终版）.docx"',
    ],
  },
  {
    name: 'Отчёт №5.pdf',
    headers: [
      'Content-Type: application/pdf',
      `Content-Disposition: attachment; filename*=UTF-8''${pct('Отчёт №5.pdf')}`,
    ],
  },
  {
    // RFC 2231 continuations, as long names are folded
    name: 'Capture d’écran 2024-03-01 à 10.00.00.png',
    headers: [
      'Content-Type: image/png',
      `Content-Disposition: attachment;\r\n filename*0*=UTF-8''${pct('Capture d’écran 2024-03-01 ')};\r\n filename*1*=${pct('à 10.00.00.png')}`,
    ],
  },
  {
    name: 'スクリーンショット 2024-03-01 10.00.00.png',
    headers: [
      `Content-Type: image/png; name="=?UTF-8?B?${b64('スクリーンショット 2024-03-01 10.00.00.png')}?="`,
      `Content-Disposition: attachment; filename="=?UTF-8?B?${b64('スクリーンショット 2024-03-01 10.00.00.png')}?="`,
    ],
  },
  {
    name: 'Résumé (final).pdf',
    headers: [
      'Content-Type: application/pdf',
      'Content-Disposition: attachment; filename="=?ISO-8859-1?Q?R=E9sum=E9_(final).pdf?="',
    ],
  },
  {
    name: 'poster (8).jpg',
    headers: ['Content-Type: image/jpeg', 'Content-Disposition: attachment; filename="poster (8).jpg"'],
  },
  {
    // decomposed, as macOS writes names: stored as sent, not normalised
    name: 'Capture d’e\u0301cran.png',
    headers: [
      'Content-Type: image/png',
      `Content-Disposition: attachment; filename*=UTF-8''${pct('Capture d’e\u0301cran.png')}`,
    ],
  },
  {
    // Persian: the zero-width non-joiner belongs to the word
    name: 'می\u200Cخواهم.pdf',
    headers: [
      'Content-Type: application/pdf',
      `Content-Disposition: attachment; filename*=UTF-8''${pct('می\u200Cخواهم.pdf')}`,
    ],
  },
];

/** Names a sender uses to attack: each dropped by default with the rule named in the detail. */
const HOSTILE: (Part & { detail: RegExp })[] = [
  {
    name: 'invoice\u202Egpj.exe',
    detail: /bidirectional control U\+202E/,
    headers: [
      'Content-Type: image/jpeg',
      `Content-Disposition: attachment; filename*=UTF-8''invoice%E2%80%AEgpj.exe`,
    ],
  },
  {
    name: 'a\r\nX-Evil: 1".pdf',
    detail: /control character U\+000D/,
    headers: [
      'Content-Type: application/pdf',
      `Content-Disposition: attachment; filename*=UTF-8''a%0D%0AX-Evil%3A%201%22.pdf`,
    ],
  },
  {
    name: '../../etc/passwd',
    detail: /"\.\." path segment/,
    headers: [
      'Content-Type: text/plain',
      `Content-Disposition: attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd`,
    ],
  },
  {
    name: 'CON.txt',
    detail: /Windows device name/,
    headers: ['Content-Type: text/plain', 'Content-Disposition: attachment; filename="CON.txt"'],
  },
  {
    // UTF-16 lets a sender encode half a surrogate pair: the decoded name is not valid Unicode
    name: '\uD800a.pdf',
    detail: /unpaired surrogate U\+D800/,
    headers: [
      'Content-Type: application/pdf',
      `Content-Disposition: attachment; filename="=?UTF-16BE?B?${Buffer.from([0xd8, 0x00, 0x00, 0x61, 0, 0x2e, 0, 0x70, 0, 0x64, 0, 0x66]).toString('base64')}?="`,
    ],
  },
];

/** Distinct content per file with every byte value: any re-encoding on the way would show. */
const contentOf = (i: number) =>
  Buffer.concat([Buffer.from(`file ${i} `), Buffer.from(Array.from({ length: 256 }, (_, b) => b))]);

function mimeMail(subject: string, parts: Part[]): Buffer {
  const lines = [
    'From: Client <client@example.test>',
    'To: support@example.test',
    `Subject: ${subject}`,
    'Date: Fri, 01 Mar 2024 10:00:00 +0100',
    `Message-ID: <${subject.replace(/\W/g, '-')}-${Date.now()}@example.test>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="=_names"',
    '',
    '--=_names',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Files attached.',
  ];
  parts.forEach((p, i) => {
    lines.push(
      '--=_names',
      ...p.headers,
      'Content-Transfer-Encoding: base64',
      '',
      contentOf(i).toString('base64'),
    );
  });
  lines.push('--=_names--', '');
  return Buffer.from(lines.join('\r\n'));
}

describe.each(ENGINES)('attachment names end to end, %s', (engine) => {
  let dovecot: DovecotServer;
  let rt: Runtime;
  let api: Hono;
  let key: string;
  let env: Record<string, string>;
  let cleanup: () => Promise<void>;
  let dir: string;
  const transcript: string[] = [];
  const cli = cliRunner(() => env, transcript);

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['names', 'skipped', 'strictnames'].map((n) => ({ name: n, password: `${n}-pw` })),
    });
    const fresh = await freshConfig(engine);
    cleanup = fresh.cleanup;
    env = fresh.env;
    rt = await openRuntime(fresh.config);
    key = (await rt.services.apiKeys.create('names-test')).key;
    api = createApi(rt.services);
    checkResponses(api);
    dir = await mkdtemp(path.join(os.tmpdir(), 'mailintake-names-'));
  });
  afterAll(async () => {
    await rt?.close();
    await dovecot?.stop();
    await cleanup?.();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const get = (url: string) => api.request(url, { headers: { Authorization: `Bearer ${key}` } });

  /** Delivers one mail to `user`, fetches it, and gives the request as the API lists it. */
  async function intake(user: string, subject: string, parts: Part[]) {
    await deliverMaildir(dovecot, user, [mimeMail(subject, parts)]);
    const [summary] = await rt.services.fetch.once({ mailbox: user });
    expect(summary).toMatchObject({ fetched: 1, created: 1, errored: 0 });
    const list = (await (await get('/api/v1/requests?limit=100')).json()) as {
      items: { id: number; subject: string }[];
    };
    const found = list.items.find((r) => r.subject === subject);
    expect(found, subject).toBeDefined();
    const res = await get(`/api/v1/requests/${found?.id}`);
    expect(res.status).toBe(200);
    return res.json() as Promise<{
      id: number;
      attachments: { id: number; filename: string; contentType: string; size: number }[];
      droppedAttachments: { filename: string; code: string; message: string; detail: string }[];
    }>;
  }

  it('stores, lists (API, CLI) and serves every international name exactly, with the sent bytes', async () => {
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'names', 'names'));
    const req = await intake('names', 'International names', ORDINARY);
    expect(req.droppedAttachments).toEqual([]);
    expect(req.attachments.map((a) => a.filename)).toEqual(ORDINARY.map((p) => p.name));

    const shown = await cli(['requests', 'show', String(req.id)]);
    expect(shown.code).toBe(0);
    for (const a of req.attachments) {
      expect(shown.stdout).toContain(`  [${a.id}] ${a.filename} (`);
    }
    const json = JSON.parse((await cli(['requests', 'show', String(req.id), '--json'])).stdout);
    expect(json.attachments.map((a: { filename: string }) => a.filename)).toEqual(
      ORDINARY.map((p) => p.name),
    );

    for (const [i, a] of req.attachments.entries()) {
      const res = await get(`/api/v1/attachments/${a.id}/content`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const header = res.headers.get('content-disposition') ?? '';
      const m = DISPOSITION.exec(header);
      expect(m, header).not.toBeNull();
      expect(decodeURIComponent(m?.[2] ?? ''), header).toBe(ORDINARY[i]?.name);
      expect(Buffer.from(await res.arrayBuffer())).toEqual(contentOf(i));
    }
    const cyrillic = req.attachments[1]!;
    expect((await get(`/api/v1/attachments/${cyrillic.id}/content`)).headers.get('content-disposition')).toBe(
      `attachment; filename="_____ No5.pdf"; filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82%20%E2%84%965.pdf`,
    );

    // the CLI saves the same bytes, 0600, never over an existing file unless --force, or to stdout
    const chinese = req.attachments[0]!;
    const file = path.join(dir, `${engine}-minutes.docx`);
    const saved = await cli(['attachment', 'get', String(chinese.id), '--out', file]);
    expect(saved.code).toBe(0);
    expect(saved.stdout).toBe(
      `Saved attachment #${chinese.id} "会议纪要（最终版）.docx" (${chinese.contentType}, ${contentOf(0).length} bytes) to ${file}\n`,
    );
    expect(await readFile(file)).toEqual(contentOf(0));
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    await writeFile(file, 'the admin’s own notes');
    const again = await cli(['attachment', 'get', String(chinese.id), '--out', file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error CONFLICT: .* exists; give --force to replace it/);
    expect(await readFile(file, 'utf8')).toBe('the admin’s own notes');
    const forced = await cli(['attachment', 'get', String(chinese.id), '--out', file, '--force', '--json']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({
      id: chinese.id,
      file,
      filename: '会议纪要（最终版）.docx',
    });
    expect(await readFile(file)).toEqual(contentOf(0));
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    const piped = await cli(['attachment', 'get', String(cyrillic.id), '--out', '-'], { binaryStdout: sink });
    expect(piped.code).toBe(0);
    expect(piped.stdout).toBe('');
    expect(Buffer.concat(chunks)).toEqual(contentOf(1));
    expect(piped.stderr).toContain(`Wrote attachment #${cyrillic.id} "Отчёт №5.pdf"`);

    // The installed command (dist/, built by `npm run build`) writes the bytes to the process's own stdout.
    const bin = path.resolve(import.meta.dirname, '../bin/mailintake.js');
    const child = spawn(process.execPath, [bin, 'attachment', 'get', String(cyrillic.id), '--out', '-'], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [stdoutBytes, stderrText, exit] = await Promise.all([
      buffer(child.stdout),
      text(child.stderr),
      new Promise<number | null>((resolve) => child.on('close', resolve)),
    ]);
    expect(exit, stderrText).toBe(0);
    expect(stdoutBytes).toEqual(contentOf(1));
    expect(stderrText).toContain(`Wrote attachment #${cyrillic.id} "Отчёт №5.pdf"`);

    expect((await cli(['attachment', 'get', '999999', '--out', path.join(dir, 'none')])).stderr).toMatch(
      /^error NOT_FOUND/,
    );
    expect((await cli(['attachment', 'get', String(chinese.id), '--out', '-', '--json'])).code).toBe(1);
  });

  it('drops hostile names with the rule named; where the checks are skipped, the download still cannot be abused', async () => {
    const parts = [...HOSTILE, ORDINARY[5]!];
    const req = await intake('names', 'Hostile names', parts);
    expect(req.attachments.map((a) => a.filename)).toEqual(['poster (8).jpg']);
    expect(req.droppedAttachments.map((d) => [d.code, d.message])).toEqual(
      HOSTILE.map(() => ['FILE_NAME_INVALID', 'Attachment file name is invalid']),
    );
    HOSTILE.forEach((h, i) => {
      expect(req.droppedAttachments[i]?.detail).toMatch(h.detail);
    });

    await rt.services.portals.add('open');
    await rt.services.portals.update('open', { attachmentPolicy: { skipAttachmentValidation: true } });
    await rt.services.mailboxes.add(imapsMailbox(dovecot, 'skipped', 'skipped', { portal: 'open' }));
    const open = await intake('skipped', 'Hostile names, checks skipped', parts);
    expect(open.droppedAttachments).toEqual([]);
    expect(open.attachments).toHaveLength(parts.length);
    for (const [i, a] of open.attachments.entries()) {
      const res = await get(`/api/v1/attachments/${a.id}/content`);
      expect(res.status, a.filename).toBe(200);
      const header = res.headers.get('content-disposition') ?? '';
      expect(header, JSON.stringify(a.filename)).toMatch(DISPOSITION);
      const saved = decodeURIComponent(DISPOSITION.exec(header)?.[2] ?? '');
      expect(saved).not.toMatch(/[\p{Cc}\p{Cs}\u202A-\u202E/\\]/u);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(Buffer.from(await res.arrayBuffer())).toEqual(contentOf(i));
    }
  });

  it('a strict portal (fileNames: "strict", set from the CLI) drops the punctuated names with the reference’s text', async () => {
    await rt.services.portals.add('strict');
    const policy = path.join(dir, `${engine}-strict.json`);
    await writeFile(policy, JSON.stringify({ fileNames: 'strict' }));
    const set = await cli(['portal', 'set', 'strict', '--attachment-policy', policy]);
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/file names: +strict/);
    await writeFile(policy, JSON.stringify({ fileNames: 'lenient' }));
    const bad = await cli(['portal', 'set', 'strict', '--attachment-policy', policy]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('  fileNames: must be "safe" or "strict"');

    await rt.services.mailboxes.add(
      imapsMailbox(dovecot, 'strictnames', 'strictnames', { portal: 'strict' }),
    );
    const req = await intake('strictnames', 'International names, strict', ORDINARY);
    expect(req.attachments.map((a) => a.filename)).toEqual(['スクリーンショット 2024-03-01 10.00.00.png']);
    expect(req.droppedAttachments.map((d) => [d.filename, d.code, d.message])).toEqual(
      ORDINARY.filter((_, i) => i !== 3).map((p) => [
        p.name,
        'FILE_NAME_INVALID',
        'Attachment file name is invalid',
      ]),
    );
    for (const d of req.droppedAttachments) expect(d.detail).toContain('not allowed by the strict rule');
  });
});
