import type { OpenAPIHono } from '@hono/zod-openapi';
import { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { BlankEnv } from 'hono/types';
import { ERROR_HELP, type ErrorCode, MailintakeError } from '../../kernel/errors.js';
import { MAX_PAGE } from '../../kernel/limits.js';
import { refuseNul } from '../../kernel/nul.js';
import { invalidSettings, plainFields } from '../../kernel/plain-issues.js';
import { secretsIn } from '../../kernel/secrets.js';

/**
 * What every feature's routes.ts shares: the error answers each operation declares, the path and paging
 * parameters, the JSON body reader and the one validation hook that turns a bad path or query into
 * INVALID_SETTINGS / INVALID_ID exactly as the routes did before they were declared with createRoute.
 *
 * Request bodies are read by the handlers (readJson + parse), not by @hono/zod-openapi's body validator: that one
 * answers 415 to a body without a JSON Content-Type and has no line and column for a JSON syntax error. So a
 * body is documented with `bodyDoc` (its JSON Schema, generated from the same zod schema the handler parses with).
 */

/** The API app every feature mounts its routes on. */
export type Api = OpenAPIHono<BlankEnv>;

// ---- errors -------------------------------------------------------------------------------------------------

export const errorBodySchema = z
  .object({
    error: z
      .enum(Object.keys(ERROR_HELP) as [ErrorCode, ...ErrorCode[]])
      .openapi({ description: 'A stable code; see the API description.' }),
    message: z.string(),
    // open: a code adds what helps with it (the parameter, the server and step of a failed test, ...)
    details: z
      .object({
        fields: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
        serverResponse: z.string().optional(),
        hint: z.string().optional(),
      })
      .catchall(z.unknown()),
  })
  .openapi('Error');
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** The shared error answers (components/responses), by HTTP status. */
export const ERROR_RESPONSES = {
  400: {
    name: 'InvalidSettings',
    description:
      'INVALID_SETTINGS: `details.fields` names every bad field; INVALID_JSON: the body is not valid JSON (the message gives line and column); INVALID_ID: an id in the path is not a positive whole number (`details.parameter` names it)',
  },
  401: { name: 'Unauthorized', description: 'UNAUTHORIZED: no or an invalid API key' },
  404: { name: 'NotFound', description: 'NOT_FOUND' },
  409: { name: 'Conflict', description: 'CONFLICT or MAILBOX_BUSY' },
  502: {
    name: 'MailboxUnreachable',
    description:
      'A connection code: DNS_FAILED, CONNECT_FAILED, TLS_FAILED, AUTH_FAILED, FOLDER_NOT_FOUND, TIMEOUT, PROTOCOL_ERROR',
  },
  503: {
    name: 'StoreUnavailable',
    description:
      'STORE_FAILED: the database or the disk is unavailable (restart, failover, full); try again after Retry-After seconds',
  },
  500: { name: 'Internal', description: 'INTERNAL: the server log has the details' },
} as const;
export type ErrorStatus = keyof typeof ERROR_RESPONSES;

/** Registers the Error schema and the shared error answers that `errors()` refers to. */
export function registerErrorComponents(app: Api): void {
  app.openAPIRegistry.register('Error', errorBodySchema);
  const content = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };
  for (const [status, { name, description }] of Object.entries(ERROR_RESPONSES)) {
    const headers =
      status === '503' ? { 'Retry-After': { schema: { type: 'integer' as const } } } : undefined;
    app.openAPIRegistry.registerComponent('responses', name, {
      description,
      content,
      ...(headers && { headers }),
    });
  }
}

/**
 * The coded error answers an operation can give. Every route reads or writes the store, so every route can
 * answer 503 STORE_FAILED (the database or disk is unavailable; come back after Retry-After).
 */
export function errors(...statuses: ErrorStatus[]): Record<string, { $ref: string }> {
  return Object.fromEntries(
    [...statuses, 503 as const].map((s) => [
      String(s),
      { $ref: `#/components/responses/${ERROR_RESPONSES[s].name}` },
    ]),
  );
}

/** A 200 (or 201) JSON answer. */
export function ok<S extends z.ZodType>(description: string, schema: S) {
  return { description, content: { 'application/json': { schema } } };
}

/** A download: the stored bytes as an attachment. */
export function download(description: string, mediaType: string) {
  return {
    description,
    headers: {
      'Content-Disposition': { schema: { type: 'string' as const } },
      'Content-Length': { schema: { type: 'integer' as const } },
    },
    content: { [mediaType]: { schema: { type: 'string' as const, contentEncoding: 'binary' } } },
  };
}

// ---- inputs -------------------------------------------------------------------------------------------------

export function invalid(fields: { field: string; message: string }[]): MailintakeError {
  return invalidSettings('request', fields);
}

/** Validates a body; a failure names every bad field, in plain words. */
export function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  throw invalid(plainFields(result.error.issues, value, '(body)'));
}

/** A request body's documentation: the JSON Schema of the zod schema the handler parses it with. */
export function bodyDoc(schema: z.ZodType | Record<string, unknown>, required = true) {
  const json = schema instanceof z.ZodType ? inputJsonSchema(schema) : schema;
  return { required, content: { 'application/json': { schema: json } } };
}

/** An input schema as JSON Schema (what a client may send), for request bodies and components. */
export function inputJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
export const nameParams = z.object({
  name: z
    .string()
    .min(1)
    .max(200)
    .openapi({ param: { name: 'name', in: 'path' }, pattern: NAME_PATTERN }),
});

const ID_PATTERN = /^[1-9][0-9]{0,14}$/;
const ID_MESSAGE = /^the (.+) id: a positive whole number$/;

/**
 * A path id. Ids are positive integers; anything else is INVALID_ID naming what the id is of (no "id=1 OR 1=1"
 * ever reaches SQL, and a mistyped id is not answered as if it were a missing item). The validation hook below
 * reads `what` back from the message.
 */
export function idParams(what: string, description?: string) {
  return z.object({
    id: z
      .string()
      .regex(ID_PATTERN, `the ${what} id: a positive whole number`)
      .transform(Number)
      .openapi({
        param: { name: 'id', in: 'path', ...(description && { description }) },
        type: 'integer',
        minimum: 1,
      }),
  });
}

/** A whole number in the query; `documentedMax`: the maximum the document names (offsets and ids have none). */
/** A whole-number query parameter from `min` to `max` (optional). */
export const intQuery = (
  min: number,
  max: number,
  doc: { documentedMax?: number; description?: string } = {},
) =>
  z
    .string()
    .regex(/^[0-9]{1,9}$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .optional()
    .openapi({
      type: 'integer',
      minimum: min,
      ...(doc.documentedMax !== undefined && { maximum: doc.documentedMax }),
      ...(doc.description && { param: { description: doc.description } }),
    });
export const pageQuery = {
  limit: intQuery(1, MAX_PAGE, { documentedMax: MAX_PAGE }),
  offset: intQuery(0, 1_000_000_000),
};
/** `before`: only entries with a smaller id, to read a whole list page by page while new entries arrive. */
export const keysetQuery = {
  ...pageQuery,
  before: intQuery(1, 999_999_999, {
    description:
      'Only entries with an id below this one. To read everything: ask with limit=' +
      `${MAX_PAGE}, then again with before=<the last id> until a page has fewer than ${MAX_PAGE} entries.`,
  }),
};
/**
 * A query's fields. A name given twice (`?limit=1&limit=2`) counts with its first value, as the routes read
 * queries before they were declared (the validator would see a list and refuse it).
 */
export function queryOf<T extends z.ZodRawShape>(shape: T) {
  return z.transform(firstValues).pipe(z.strictObject(shape));
}

function firstValues(query: unknown): unknown {
  if (!query || typeof query !== 'object') return query;
  return Object.fromEntries(Object.entries(query).map(([k, v]) => [k, Array.isArray(v) ? v[0] : v]));
}

/** A filter naming a mailbox or portal that does not exist is NOT_FOUND, never an empty page. */
export const UNKNOWN_FILTER =
  'A mailbox or portal named in a filter that does not exist answers 404 NOT_FOUND.';

/**
 * The hook every route's path and query validation ends in: a bad id is INVALID_ID naming what it is the id of,
 * anything else INVALID_SETTINGS naming every bad field (`(query)` for the query as a whole).
 */
export function inputHook(
  result:
    | { target: string; success: true; data: unknown }
    | { target: string; success: false; error: z.ZodError },
  c: Context,
): undefined {
  if (result.success) return undefined;
  const input = (result as { data?: unknown }).data;
  const idIssue = result.error.issues.find((i) => i.path[0] === 'id' && ID_MESSAGE.test(i.message));
  if (result.target === 'param' && idIssue)
    throw invalidId(c.req.param('id') ?? '', ID_MESSAGE.exec(idIssue.message)?.[1] ?? '');
  throw invalid(plainFields(result.error.issues, input, result.target === 'query' ? '(query)' : '(body)'));
}

function invalidId(raw: string, what: string): MailintakeError {
  const shown = raw.length > 40 ? `${raw.slice(0, 40)}…` : raw;
  return new MailintakeError(
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

/**
 * Reads a JSON body. The parser's own message is not echoed: V8's JSON.parse errors quote a piece of the input,
 * which in a mailbox body is likely to be the password. Only the position is kept.
 */
export async function readJson(c: Context, opts: { optional?: boolean } = {}): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') {
    if (opts.optional) return {};
    throw new MailintakeError('INVALID_JSON', 'the request body is empty; a JSON object is expected', {
      details: { fields: [{ field: '(body)', message: 'a JSON body is required' }] },
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const where = jsonErrorPosition(text, e);
    throw new MailintakeError('INVALID_JSON', `the request body is not valid JSON: ${where}`, {
      details: { fields: [{ field: '(body)', message: `not valid JSON (${where})` }] },
    });
  }
  // refused here, naming the field, rather than by PostgreSQL where it would be stored (kernel/nul.ts)
  refuseNul(value, 'request body');
  return value;
}

/** Where JSON.parse stopped, as "line L, column C" (V8 says "position N"; the text around it is not repeated). */
function jsonErrorPosition(text: string, err: unknown): string {
  const pos = /position (\d+)/.exec(err instanceof Error ? err.message : '')?.[1];
  if (pos === undefined) return 'it ends too early';
  const before = text.slice(0, Number(pos));
  const line = before.split('\n').length;
  return `line ${line}, column ${Number(pos) - before.lastIndexOf('\n')}`;
}

// ---- secrets in request bodies --------------------------------------------------------------------------------

/**
 * Secrets sent in a request body (a mailbox password), to be cut out of any error answer for that request.
 * The services never put a password in a message, but a driver or a future validator might quote its input;
 * keyed by the request object so that nothing outlives the request.
 */
const requestSecrets = new WeakMap<Request, string[]>();

/** Remembers a body's secrets (password, token, client secret) so that the error answer can cut them out. */
export function rememberSecrets(c: Context, body: unknown): void {
  const secrets = secretsIn(body);
  if (secrets.length > 0) requestSecrets.set(c.req.raw, secrets);
}

export function secretsOf(req: Request): readonly string[] {
  return requestSecrets.get(req) ?? [];
}

export function redact<T>(value: T, secrets: readonly string[]): T {
  if (secrets.length === 0) return value;
  let text = JSON.stringify(value);
  for (const s of secrets) text = text.split(JSON.stringify(s).slice(1, -1)).join('[redacted]');
  return JSON.parse(text) as T;
}
