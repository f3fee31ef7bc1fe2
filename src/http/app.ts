import { Readable } from 'node:stream';
import type { Context } from 'hono';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import { authorizedPage, failedPage } from '../features/oauth/pages.js';
import { MAX_PAGE } from '../features/requests/service.js';
import type { Services } from '../features/services.js';
import type { AttachmentView } from '../features/views.js';
import { withActor } from '../kernel/actor.js';
import {
  CONNECTION_CODES,
  type ErrorCode,
  type ErrorDetails,
  isMailintakeError,
  MailintakeError,
} from '../kernel/errors.js';
import { API_MAX_BODY_BYTES as MAX_BODY_BYTES } from '../kernel/limits.js';
import { check, invalidSettings } from '../kernel/plain-issues.js';
import { openApiDocument } from './openapi.js';

/**
 * The REST API: thin routes. Each parses its input with the zod schema written beside it, calls one service and
 * presents the result (the services already return presenter shapes, see services/views.ts). Every failure goes
 * through the one `onError` below, which turns codes into HTTP statuses and bodies `{ error, message, details }`.
 */

export interface ApiLogger {
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface ApiOptions {
  logger?: ApiLogger;
}

const defaultLogger: ApiLogger = {
  error(message, fields) {
    console.error(
      JSON.stringify({ level: 'error', time: new Date().toISOString(), msg: message, ...fields }),
    );
  },
};

/** HTTP status per code. Codes not listed (and anything not coded) answer 500 INTERNAL with a generic message. */
const STATUS: Partial<Record<ErrorCode, 400 | 401 | 404 | 409 | 502 | 503>> = {
  INVALID_SETTINGS: 400,
  INVALID_JSON: 400,
  INVALID_ID: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  CONFLICT: 409,
  MAILBOX_BUSY: 409,
  FETCH_RUNNING: 409,
  // a consent that did not complete: the page or answer says what to fix at the provider or in the settings
  OAUTH_CONSENT_FAILED: 400,
  // the outgoing SMTP server refused a test mail: a problem with another server, like the connection codes
  SEND_FAILED: 502,
  // the database or the disk is unavailable (restart, failover, full): retryable, so a client should come back
  STORE_FAILED: 503,
};
for (const code of CONNECTION_CODES) STATUS[code] = 502;

/**
 * Secrets sent in a request body (a mailbox password), to be cut out of any error answer for that request.
 * The services never put a password in a message, but a driver or a future validator might quote its input;
 * keyed by the request object so that nothing outlives the request.
 */
const requestSecrets = new WeakMap<Request, string[]>();

/** Shorter secrets are not redacted: replacing "ab" everywhere would mangle the answer, not protect anything. */
const MIN_REDACTED_LENGTH = 4;

function redact<T>(value: T, secrets: readonly string[]): T {
  if (secrets.length === 0) return value;
  let text = JSON.stringify(value);
  for (const s of secrets) text = text.split(JSON.stringify(s).slice(1, -1)).join('[redacted]');
  return JSON.parse(text) as T;
}

function invalid(fields: { field: string; message: string }[]): MailintakeError {
  return invalidSettings('request', fields);
}

/** Validates one part of a request (path, query or body); a failure names every bad field, in plain words. */
function parse<S extends z.ZodType>(schema: S, value: unknown, root = '(body)'): z.output<S> {
  const result = check(schema, value, root);
  if (result.ok) return result.data;
  throw invalid(result.fields);
}

/**
 * Reads a JSON body. The parser's own message is not echoed: V8's JSON.parse errors quote a piece of the input,
 * which in a mailbox body is likely to be the password. Only the position is kept.
 */
async function readJson(c: Context, opts: { optional?: boolean } = {}): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') {
    if (opts.optional) return {};
    throw new MailintakeError('INVALID_JSON', 'the request body is empty; a JSON object is expected', {
      details: { fields: [{ field: '(body)', message: 'a JSON body is required' }] },
    });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    const where = jsonErrorPosition(text, e);
    throw new MailintakeError('INVALID_JSON', `the request body is not valid JSON: ${where}`, {
      details: { fields: [{ field: '(body)', message: `not valid JSON (${where})` }] },
    });
  }
}

/** Where JSON.parse stopped, as "line L, column C" (V8 says "position N"; the text around it is not repeated). */
function jsonErrorPosition(text: string, err: unknown): string {
  const pos = /position (\d+)/.exec(err instanceof Error ? err.message : '')?.[1];
  if (pos === undefined) return 'it ends too early';
  const before = text.slice(0, Number(pos));
  const line = before.split('\n').length;
  return `line ${line}, column ${Number(pos) - before.lastIndexOf('\n')}`;
}

/** Remembers a mailbox body's secrets (password, token, client secret) so that onError can cut them out. */
function rememberSecrets(c: Context, body: unknown): void {
  if (!body || typeof body !== 'object') return;
  const b = body as { password?: unknown; accessToken?: unknown; oauth?: { clientSecret?: unknown } };
  const secrets = [b.password, b.accessToken, b.oauth?.clientSecret].filter(
    (v): v is string => typeof v === 'string' && v.length >= MIN_REDACTED_LENGTH,
  );
  if (secrets.length > 0) requestSecrets.set(c.req.raw, secrets);
}

// ---- schemas, one per route input ---------------------------------------------------------------------------

const nameParams = z.object({ name: z.string().min(1).max(200) });
/**
 * A path id. Ids are positive integers; anything else is INVALID_ID naming what the id is of (no "id=1 OR 1=1"
 * ever reaches SQL, and a mistyped id is not answered as if it were a missing item).
 */
function pathId(c: Context, what: string): number {
  const raw = c.req.param('id') ?? '';
  if (/^[1-9][0-9]{0,14}$/.test(raw)) return Number(raw);
  const shown = raw.length > 40 ? `${raw.slice(0, 40)}…` : raw;
  throw new MailintakeError(
    'INVALID_ID',
    `the ${what} id in the path must be a positive whole number, not "${shown}"`,
    {
      details: {
        parameter: 'id',
        fields: [{ field: 'id', message: `the ${what} id: a positive whole number` }],
      },
    },
  );
}
const intQuery = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]{1,9}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .optional();
const pageQuery = { limit: intQuery(1, MAX_PAGE), offset: intQuery(0, 1_000_000_000) };
/** `before`: only entries with a smaller id, to read a whole list page by page while new entries arrive. */
const keysetQuery = { ...pageQuery, before: intQuery(1, 999_999_999) };

const mailboxBody = z.record(z.string(), z.unknown(), 'must be a JSON object'); // fields: services validate
const completeBody = z.strictObject({
  callbackUrl: z.string().min(1).max(8000, 'too long for a redirect URL'),
});
const fetchBody = z.strictObject({ mailbox: z.string().min(1).optional() });
/** `?pauseFetching=true`: save even while the mailbox is fetched, pausing it (the reference's prompt). */
const updateQuery = z.strictObject({ pauseFetching: z.enum(['true', 'false']).optional() });
const portalBody = z.strictObject({ name: z.string().min(1).max(100) });
const portalPatchBody = z
  .strictObject({
    headerThreading: z.boolean('must be true or false').optional(),
    // fields: the service validates (resolveAttachmentPolicy names every bad one)
    attachmentPolicy: z.record(z.string(), z.unknown(), 'must be a JSON object').optional(),
  })
  .refine((b) => b.headerThreading !== undefined || b.attachmentPolicy !== undefined, {
    message: 'give headerThreading or attachmentPolicy',
  });
const systemLogQuery = z.strictObject({
  // the service names the categories when this is none of them
  category: z.string().min(1).max(64).optional(),
  ...keysetQuery,
});
const requestsQuery = z.strictObject({ portal: z.string().min(1).optional(), ...keysetQuery });
const notificationsQuery = z.strictObject({
  unread: z.enum(['true', 'false'], 'must be true or false').optional(),
  ...pageQuery,
});
// fields: the services validate (rules, SMTP, alerts name every bad field)
const settingsBody = z.record(z.string(), z.unknown(), 'must be a JSON object');
const smtpTestBody = z.strictObject({ to: z.string().min(1).max(320) });
const errorMailsQuery = z.strictObject({
  mailbox: z.string().min(1).optional(),
  status: z.enum(['in-error-folder', 'moved-to-inbox']).optional(),
  ...pageQuery,
});
const logQuery = z.strictObject({
  mailbox: z.string().min(1).optional(),
  outcome: z.enum(['created', 'appended', 'ignored', 'error']).optional(),
  ...keysetQuery,
});

// ---- attachment download --------------------------------------------------------------------------------------

/**
 * Types a browser renders as active content (script runs in our origin). An attachment is mail from anyone on
 * the internet: served as text/html it would be stored XSS against whoever downloads it. `attachment` already
 * keeps browsers from rendering, but the type is the second lock.
 */
const ACTIVE_TYPES = new Set([
  'text/html',
  'application/xhtml+xml',
  'image/svg+xml',
  'text/xml',
  'application/xml',
  'text/xsl',
  'multipart/x-mixed-replace',
]);

/** The stored type's essence when it is a plain, safe `type/subtype`; application/octet-stream otherwise. */
export function downloadContentType(stored: string): string {
  const essence = (stored.split(';')[0] ?? '').trim().toLowerCase();
  // A type from the mail that is not a bare token pair (CR/LF, quotes, spaces) never reaches a header.
  if (!/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(essence))
    return 'application/octet-stream';
  if (ACTIVE_TYPES.has(essence) || essence.endsWith('+xml')) return 'application/octet-stream';
  return essence;
}

/**
 * `Content-Disposition: attachment` with the mail's file name encoded per RFC 6266 / RFC 8187.
 * The file name comes from the sender. Copied raw, a `"` ends the quoted string and lets the sender add
 * parameters (`x.pdf"; filename="evil.html`), and CR/LF would split the response into headers of their
 * choosing. So the quoted fallback keeps only printable ASCII minus `"`, `\`, `/` and `%` (some browsers
 * percent-decode it), and the real name travels percent-encoded in `filename*`, where no raw byte can appear.
 *
 * The name is normally one the checks let through (see fileNameProblem), but a portal may skip the checks and
 * older rows were checked by older rules, so the download defends itself: control characters, line separators,
 * bidirectional controls and invisible format characters become `_` (a saved "invoice\u202Egpj.exe" must not
 * display as "invoiceexe.jpg"), and an unpaired surrogate becomes U+FFFD (it has no UTF-8 form, and
 * encodeURIComponent throws on it: the download would fail with a 500).
 */
export function contentDisposition(filename: string): string {
  const cleaned =
    Array.from(filename, (ch) => {
      if (/\p{Cs}/u.test(ch)) return '\uFFFD';
      if (ch === '/' || ch === '\\') return '_';
      // Cc: C0, DEL, C1; Zl/Zp: U+2028/U+2029; Cf: bidi controls, zero-width and tag characters. The joiners
      // ZWNJ/ZWJ are part of Persian and Indic words and emoji, and reorder nothing.
      if (/[\p{Cc}\p{Zl}\p{Zp}]/u.test(ch)) return '_';
      if (/\p{Cf}/u.test(ch) && ch !== '\u200C' && ch !== '\u200D') return '_';
      return ch;
    })
      .join('')
      .trim() || 'attachment';
  // For clients that ignore filename*: "Capture d’écran à 10.00.png" → "Capture d_ecran a 10.00.png" (NFKD
  // splits "é" into "e" + a mark, and fullwidth forms into ASCII) rather than a row of underscores. NFKD can
  // make "/" or '"' out of fullwidth forms, so the replacement runs after it.
  const fallback =
    cleaned
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .replace(/[^\x20-\x7e]|["%/\\]/g, '_')
      .trim() || 'attachment';
  // encodeURIComponent leaves ! ' ( ) * unencoded; RFC 8187 attr-char does not allow ' ( ) *.
  const encoded = encodeURIComponent(cleaned).replace(
    /['()*]/g,
    (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}

function attachmentResponse(meta: AttachmentView, body: Readable): Response {
  return new Response(Readable.toWeb(body) as unknown as ReadableStream<Uint8Array>, {
    status: 200,
    headers: {
      'Content-Type': downloadContentType(meta.contentType),
      'Content-Disposition': contentDisposition(meta.filename),
      'Content-Length': String(meta.size),
    },
  });
}

// ---- the app ---------------------------------------------------------------------------------------------------

export function createApi(services: Services, opts: ApiOptions = {}): Hono {
  const logger = opts.logger ?? defaultLogger;
  const app = new Hono();

  // On every answer, errors and downloads included: API answers hold tickets and personal data (no caches),
  // and a browser must never second-guess a declared type.
  app.use('*', async (c, next) => {
    await next();
    c.res.headers.set('X-Content-Type-Options', 'nosniff');
    c.res.headers.set('Cache-Control', 'no-store');
  });

  // Authentication comes before routing: an unknown path under /api/v1 answers 401 too, so that the API does not
  // tell an anonymous caller which routes exist.
  const requireKey = async (c: Context, next: () => Promise<void>) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header);
    const keyName = match?.[1] ? await services.apiKeys.verify(match[1]) : null;
    if (keyName === null) {
      throw new MailintakeError('UNAUTHORIZED', 'A valid API key is required (Authorization: Bearer <key>).');
    }
    // the system log names the key as the actor of every change made through this request
    await withActor(`api-key:${keyName}`, next);
  };
  // Hono's `/api/v1/*` also matches `/api/v1` itself.
  app.use('/api/v1/*', requireKey);
  // Bodies here are small JSON documents; reading an unbounded one into memory would let one caller exhaust it.
  app.use(
    '/api/v1/*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw invalid([{ field: '(body)', message: `larger than ${MAX_BODY_BYTES} bytes` }]);
      },
    }),
  );

  app.get('/api/openapi.json', (c) => c.json(openApiDocument));

  // Mailboxes
  app.get('/api/v1/mailboxes', async (c) => c.json(await services.mailboxes.list()));
  app.post('/api/v1/mailboxes', async (c) => {
    const body = await readJson(c);
    rememberSecrets(c, body);
    return c.json(await services.mailboxes.add(parse(mailboxBody, body)), 201);
  });
  app.get('/api/v1/mailboxes/:name', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    return c.json(await services.mailboxes.get(name));
  });
  app.put('/api/v1/mailboxes/:name', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    const body = await readJson(c);
    rememberSecrets(c, body);
    const { pauseFetching } = parse(updateQuery, c.req.query(), '(query)');
    return c.json(
      await services.mailboxes.update(name, parse(mailboxBody, body), {
        pauseFetching: pauseFetching === 'true',
      }),
    );
  });
  app.delete('/api/v1/mailboxes/:name', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    await services.mailboxes.remove(name);
    return c.body(null, 204);
  });
  app.post('/api/v1/mailboxes/:name/test', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    return c.json(await services.mailboxes.test(name));
  });
  app.post('/api/v1/mailboxes/:name/enable', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    return c.json(await services.mailboxes.setEnabled(name, true));
  });
  app.post('/api/v1/mailboxes/:name/disable', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    return c.json(await services.mailboxes.setEnabled(name, false));
  });

  // OAuth 2.0: consent and token state (never a token)
  app.post('/api/v1/mailboxes/:name/oauth/authorize', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    return c.json(await services.oauth.authorize(name));
  });
  app.get('/api/v1/mailboxes/:name/oauth', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    return c.json(await services.oauth.status(name));
  });
  app.delete('/api/v1/mailboxes/:name/oauth', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    await services.oauth.revoke(name);
    return c.body(null, 204);
  });
  app.post('/api/v1/settings/smtp/oauth/authorize', async (c) =>
    c.json(await services.oauth.authorizeSmtp()),
  );
  app.get('/api/v1/settings/smtp/oauth', async (c) => c.json(await services.oauth.smtpStatus()));
  app.post('/api/v1/oauth/complete', async (c) => {
    const { callbackUrl } = parse(completeBody, await readJson(c));
    return c.json(await services.oauth.complete(callbackUrl));
  });
  app.get('/api/v1/oauth/providers', (c) => c.json(services.oauth.providers()));
  // The provider redirects the browser here. No API key: the one-use state in the URL is the authorization,
  // and the answer is a page for a person, saying what happened and what to fix.
  app.get('/oauth/callback', async (c) => {
    try {
      const done = await withActor('oauth-callback', () => services.oauth.complete(c.req.url));
      return c.html(authorizedPage(done));
    } catch (err) {
      const coded = isMailintakeError(err) ? err : null;
      if (!coded) logger.error('oauth callback failed', { error: String(err) });
      return c.html(
        failedPage(
          coded?.code ?? 'INTERNAL',
          coded?.message ?? 'An unexpected error; the service log has the details.',
        ),
        coded && coded.code !== 'OAUTH_PROVIDER_UNAVAILABLE' ? 400 : 502,
      );
    }
  });

  // Fetching
  app.post('/api/v1/fetch', async (c) => {
    const body = parse(fetchBody, await readJson(c, { optional: true }));
    return c.json(await services.fetch.once(body.mailbox ? { mailbox: body.mailbox } : {}));
  });

  // Portals
  app.get('/api/v1/portals', async (c) => c.json(await services.portals.list()));
  app.post('/api/v1/portals', async (c) => {
    const { name } = parse(portalBody, await readJson(c));
    return c.json(await services.portals.add(name), 201);
  });
  app.patch('/api/v1/portals/:name', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    const patch = parse(portalPatchBody, await readJson(c));
    return c.json(await services.portals.update(name, patch));
  });

  // Requests and attachments
  app.get('/api/v1/requests', async (c) => {
    const q = parse(requestsQuery, c.req.query(), '(query)');
    return c.json(await services.requests.list(q));
  });
  app.get('/api/v1/requests/:id', async (c) => {
    const id = pathId(c, 'request');
    return c.json(await services.requests.show(id));
  });
  app.get('/api/v1/attachments/:id/content', async (c) => {
    const id = pathId(c, 'attachment');
    const { meta, open } = await services.requests.attachment(id);
    return attachmentResponse(meta, open());
  });

  // Intake log
  app.get('/api/v1/log', async (c) => {
    const q = parse(logQuery, c.req.query(), '(query)');
    return c.json(await services.log.list(q));
  });
  app.get('/api/v1/system-log', async (c) => {
    const q = parse(systemLogQuery, c.req.query(), '(query)');
    return c.json(await services.systemLog.list(q));
  });
  app.get('/api/v1/log/:id/raw', async (c) => {
    const id = pathId(c, 'intake log entry');
    const { meta, open } = await services.log.raw(id);
    return attachmentResponse(meta, open());
  });

  // Error folder: error mails, their sealed reports (opened here for the admin), POP3's kept mails
  app.get('/api/v1/error-mails', async (c) => {
    const q = parse(errorMailsQuery, c.req.query(), '(query)');
    return c.json(await services.errorMails.list(q));
  });
  app.get('/api/v1/error-mails/:id/report', async (c) => {
    const id = pathId(c, 'error mail');
    return c.json(await services.errorMails.report(id));
  });
  app.get('/api/v1/error-mails/:id/raw', async (c) => {
    const id = pathId(c, 'error mail');
    const { meta, open } = await services.errorMails.raw(id);
    return attachmentResponse(meta, open());
  });
  app.post('/api/v1/mailboxes/:name/error-mails/move-to-inbox', async (c) => {
    const { name } = parse(nameParams, c.req.param());
    return c.json(await services.errorMails.moveToInbox(name));
  });

  // Bell notifications
  app.get('/api/v1/notifications', async (c) => {
    const { unread, ...q } = parse(notificationsQuery, c.req.query(), '(query)');
    return c.json(await services.notifications.list({ ...q, unread: unread === 'true' }));
  });
  app.get('/api/v1/notifications/unread-count', async (c) =>
    c.json(await services.notifications.unreadCount()),
  );
  app.post('/api/v1/notifications/read-all', async (c) => c.json(await services.notifications.markAllRead()));
  app.post('/api/v1/notifications/:id/read', async (c) => {
    const id = pathId(c, 'notification');
    return c.json(await services.notifications.markRead(id));
  });

  // Notification rules, outgoing SMTP server, connection alerts, outbox
  app.get('/api/v1/notification-rules', async (c) => c.json(await services.notificationRules.list()));
  app.put('/api/v1/notification-rules', async (c) =>
    c.json(await services.notificationRules.set(parse(settingsBody, await readJson(c)))),
  );
  app.post('/api/v1/notification-rules/:id/enable', async (c) => {
    const id = pathId(c, 'notification rule');
    return c.json(await services.notificationRules.setEnabled(id, true));
  });
  app.post('/api/v1/notification-rules/:id/disable', async (c) => {
    const id = pathId(c, 'notification rule');
    return c.json(await services.notificationRules.setEnabled(id, false));
  });
  app.get('/api/v1/settings/smtp', async (c) => {
    const smtp = await services.smtp.get();
    if (!smtp) throw new MailintakeError('NOT_FOUND', 'no outgoing SMTP server is configured');
    return c.json(smtp);
  });
  app.put('/api/v1/settings/smtp', async (c) => {
    const body = await readJson(c);
    rememberSecrets(c, body);
    return c.json(await services.smtp.set(parse(settingsBody, body)));
  });
  app.post('/api/v1/settings/smtp/test', async (c) =>
    c.json(await services.smtp.test(parse(smtpTestBody, await readJson(c)))),
  );
  app.get('/api/v1/settings/connection-alerts', async (c) => c.json(await services.alerts.get()));
  app.patch('/api/v1/settings/connection-alerts', async (c) =>
    c.json(await services.alerts.set(parse(settingsBody, await readJson(c)))),
  );
  app.get('/api/v1/outbox', async (c) => c.json(await services.outbox.status()));
  app.post('/api/v1/outbox/:id/retry', async (c) => {
    const id = pathId(c, 'outbox mail');
    return c.json(await services.outbox.retry(id));
  });

  app.notFound((c) =>
    c.json({ error: 'NOT_FOUND', message: 'No such route.', details: {} } satisfies ErrorBody, 404),
  );

  app.onError((err, c) => {
    const secrets = requestSecrets.get(c.req.raw) ?? [];
    const status = isMailintakeError(err) ? STATUS[err.code] : undefined;
    if (isMailintakeError(err) && status !== undefined) {
      if (status === 503) c.header('Retry-After', '30');
      return c.json(redact(err.toJSON(), secrets) satisfies ErrorBody, status);
    }
    // The real error goes to the log only: its message may name tables, paths or driver internals. The log line
    // carries method and path, never headers (Authorization) nor the body (passwords).
    logger.error('API request failed', {
      method: c.req.method,
      path: c.req.path,
      code: isMailintakeError(err) ? err.code : 'INTERNAL',
      error: redact(err instanceof Error ? (err.stack ?? err.message) : String(err), secrets),
    });
    return c.json(
      {
        error: 'INTERNAL',
        message: 'An unexpected error occurred; the server log has the details.',
        details: {},
      },
      500,
    );
  });

  return app;
}

interface ErrorBody {
  error: ErrorCode;
  message: string;
  details: ErrorDetails;
}
