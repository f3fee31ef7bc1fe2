import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { BlankEnv } from 'hono/types';
import { mountErrorMailRoutes } from '../features/error-mails/routes.js';
import { mountFetchRoutes } from '../features/fetch/routes.js';
import { mountMailboxRoutes } from '../features/mailboxes/routes.js';
import { mountNotificationRoutes } from '../features/notifications/routes.js';
import { mountOAuthCallback, mountOAuthRoutes } from '../features/oauth/routes.js';
import { mountPortalRoutes } from '../features/portals/routes.js';
import { mountRequestRoutes } from '../features/requests/routes.js';
import type { Services } from '../features/services.js';
import {
  type Api,
  type ErrorBody,
  inputHook,
  invalid,
  redact,
  registerErrorComponents,
  secretsOf,
} from '../features/shared/route-kit.js';
import { mountSystemLogRoutes } from '../features/system-log/routes.js';
import { withActor } from '../kernel/actor.js';
import {
  CONNECTION_CODES,
  ERROR_HELP,
  type ErrorCode,
  isMailintakeError,
  MailintakeError,
} from '../kernel/errors.js';
import { API_MAX_BODY_BYTES as MAX_BODY_BYTES, REPLY_API_MAX_BODY_BYTES } from '../kernel/limits.js';
import { mountConsole } from './console/index.js';

/**
 * The REST API: the app, authentication, the error answers and the features' routes. Each feature declares its
 * routes in features/<feature>/routes.ts (createRoute: path, inputs, answers; a handler that calls one service);
 * the OpenAPI document at /api/openapi.json is generated from those declarations. Every failure goes through the
 * one `onError` below, which turns codes into HTTP statuses and bodies `{ error, message, details }`.
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
const STATUS: Partial<Record<ErrorCode, 400 | 401 | 404 | 409 | 429 | 502 | 503>> = {
  INVALID_SETTINGS: 400,
  INVALID_JSON: 400,
  INVALID_ID: 400,
  UNAUTHORIZED: 401,
  // too many failed sign-ins: Retry-After says when to come back (details.retryAfterSeconds)
  SIGN_IN_THROTTLED: 429,
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

const DOCUMENT_INFO = {
  title: 'Mailintake API',
  version: '1',
  description:
    'Email-to-ticket engine: mailboxes, requests, attachments and the intake log. Every call under /api/v1 ' +
    'needs an API key (`mailintake apikey create NAME`) sent as `Authorization: Bearer <key>`. Errors answer ' +
    '`{ error, message, details }` with a stable code:\n\n' +
    Object.entries(ERROR_HELP)
      .map(([code, help]) => `- \`${code}\`: ${help}`)
      .join('\n'),
};

const documentRoute = createRoute({
  method: 'get',
  path: '/api/openapi.json',
  summary: 'This document',
  security: [],
  responses: {
    200: {
      description: 'The OpenAPI document',
      content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
    },
  },
});

export function createApi(services: Services, opts: ApiOptions = {}): Api {
  const logger = opts.logger ?? defaultLogger;
  // A bad path or query answers INVALID_SETTINGS / INVALID_ID naming the field, as every input error does.
  const app = new OpenAPIHono<BlankEnv>({ defaultHook: inputHook });
  useSecurityHeaders(app);
  useAuthentication(app, services);
  refuseNulInUrl(app);

  registerErrorComponents(app);
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key from `mailintake apikey create`.',
  });
  let document: unknown;
  app.openapi(documentRoute, (c) => {
    // generated once, on first request: the routes are all mounted by then
    document ??= openApiDocument(app);
    return c.json(document as Record<string, unknown>, 200);
  });

  mountMailboxRoutes(app, services);
  mountFetchRoutes(app, services);
  mountOAuthRoutes(app, services);
  mountOAuthCallback(app, services, (message, fields) => logger.error(message, fields));
  mountPortalRoutes(app, services);
  mountRequestRoutes(app, services);
  mountSystemLogRoutes(app, services);
  mountErrorMailRoutes(app, services);
  mountNotificationRoutes(app, services);
  // the web console: pages outside /api/ on the same app (src/http/console)
  mountConsole(app, services);

  app.notFound((c) =>
    c.json({ error: 'NOT_FOUND', message: 'No such route.', details: {} } satisfies ErrorBody, 404),
  );
  app.onError((err, c) => errorAnswer(err, c, logger));
  return app;
}

/** The OpenAPI 3.1 document, generated from the routes' declarations. */
export function openApiDocument(app: Api) {
  return app.getOpenAPI31Document({ openapi: '3.1.0', info: DOCUMENT_INFO, security: [{ bearerAuth: [] }] });
}

/**
 * On every answer, errors and downloads included: API answers hold tickets and personal data (no caches),
 * and a browser must never second-guess a declared type.
 */
function useSecurityHeaders(app: Api): void {
  app.use('*', async (c, next) => {
    await next();
    c.res.headers.set('X-Content-Type-Options', 'nosniff');
    c.res.headers.set('Cache-Control', 'no-store');
  });
}

/**
 * Authentication comes before routing: an unknown path under /api/v1 answers 401 too, so that the API does not
 * tell an anonymous caller which routes exist. Bodies are small JSON documents; reading an unbounded one into
 * memory would let one caller exhaust it.
 */
function useAuthentication(app: OpenAPIHono, services: Services): void {
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
  const limit = (maxSize: number) =>
    bodyLimit({
      maxSize,
      onError: () => {
        throw invalid([{ field: '(body)', message: `larger than ${maxSize} bytes` }]);
      },
    });
  const small = limit(MAX_BODY_BYTES);
  // a reply carries its attachments as base64 in its JSON: the one body allowed to be large
  const reply = limit(REPLY_API_MAX_BODY_BYTES);
  app.use('/api/v1/*', (c, next) =>
    c.req.method === 'POST' && /^\/api\/v1\/requests\/[^/]+\/replies$/.test(c.req.path)
      ? reply(c, next)
      : small(c, next),
  );
}

/**
 * A NUL in a query parameter (`?requester=%00`) is refused naming it, and one in the path is not found, before
 * any route reads it:
 * PostgreSQL refuses NUL in a query's text, which would answer as if the store were down (kernel/nul.ts has the
 * same rule for bodies).
 */
function refuseNulInUrl(app: Api): void {
  const message = 'contains a NUL character (U+0000); remove it';
  app.use('*', async (c, next) => {
    const url = new URL(c.req.url);
    // nothing is named with a NUL, so no such item (every route with a name or id in its path declares 404)
    if (/%00/i.test(url.pathname)) {
      throw new MailintakeError('NOT_FOUND', 'nothing here is named with a NUL character (U+0000)');
    }
    for (const [key, value] of url.searchParams) {
      // the full-text search takes any text as words, NUL and operators included (store/search-text.ts)
      if (key === 'q') continue;
      if (key.includes('\u0000') || value.includes('\u0000')) {
        throw invalid([{ field: key.replaceAll('\u0000', '\\u0000'), message }]);
      }
    }
    await next();
  });
}

/** A coded error as its status and `{ error, message, details }` (secrets of the request cut out); else 500. */
function errorAnswer(err: Error, c: Context, logger: ApiLogger): Response {
  const secrets = secretsOf(c.req.raw);
  const status = isMailintakeError(err) ? STATUS[err.code] : undefined;
  if (isMailintakeError(err) && status !== undefined) {
    if (status === 503) c.header('Retry-After', '30');
    if (status === 429) c.header('Retry-After', String(err.details.retryAfterSeconds ?? 60));
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
    } satisfies ErrorBody,
    500,
  );
}
