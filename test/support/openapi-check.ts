import { isDeepStrictEqual } from 'node:util';
import type { RouteConfig } from '@hono/zod-openapi';
import type { Hono } from 'hono';
import type { z } from 'zod';
import { type Api, ERROR_RESPONSES, errorBodySchema } from '../../src/features/shared/route-kit.js';

/**
 * Checks every answer of the API against the route's declaration (the same createRoute objects the OpenAPI
 * document is generated from): the status must be one the operation declares, and a JSON body must parse with
 * the declared zod schema and hold no field the schema does not name. Install it on an app with
 * `checkResponses(app)` before the first request: it wraps `app.fetch`, which `app.request()` and a served app
 * both go through, and throws (and records) on the first answer that breaks its declaration.
 */

export interface ResponseChecks {
  /** How many answers were checked. */
  readonly checked: number;
  /** Every broken declaration seen, as "METHOD /path → problem". */
  readonly violations: string[];
}

interface Operation {
  method: string;
  path: string;
  pattern: RegExp;
  params: number;
  responses: RouteConfig['responses'];
}

/** The operations the app declared (its registry), most specific first: /notifications/read-all before /{id}. */
export function declaredOperations(app: Api): Operation[] {
  const out: Operation[] = [];
  for (const d of app.openAPIRegistry.definitions) {
    if (d.type !== 'route') continue;
    const { method, path, responses } = d.route;
    const source = path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[A-Za-z]+\}/g, '[^/]+');
    out.push({
      method: method.toUpperCase(),
      path,
      pattern: new RegExp(`^${source}$`),
      params: (path.match(/\{/g) ?? []).length,
      responses,
    });
  }
  return out.sort((a, b) => a.params - b.params);
}

export function checkResponses(app: Hono): ResponseChecks {
  if (!('openAPIRegistry' in app)) throw new Error('checkResponses needs the app createApi() made');
  const operations = declaredOperations(app as Api);
  const state = { checked: 0, violations: [] as string[] };
  const target = app as unknown as {
    fetch: (req: Request, ...rest: unknown[]) => Response | Promise<Response>;
  };
  const fetch = target.fetch;
  target.fetch = async (req: Request, ...rest: unknown[]) => {
    const res = await fetch(req, ...rest);
    const problem = await problemOf(operations, req.method, new URL(req.url).pathname, res.clone());
    state.checked++;
    if (problem) {
      const line = `${req.method} ${new URL(req.url).pathname} → ${problem}`;
      state.violations.push(line);
      throw new Error(`the answer breaks the API's declaration: ${line}`);
    }
    return res;
  };
  return state;
}

/** What is wrong with one answer, or null. Exported for the test that proves the check fails when it should. */
export async function problemOf(
  operations: Operation[],
  method: string,
  path: string,
  res: Response,
): Promise<string | null> {
  const op = operations.find((o) => o.method === method && o.pattern.test(path));
  if (!op) {
    // no such route: authentication answers first (401), then the not-found answer, both the Error shape
    if (res.status !== 401 && res.status !== 404) return `status ${res.status} for a path no route declares`;
    return bodyProblem(errorBodySchema, await res.text());
  }
  const declared = op.responses[String(res.status)];
  if (!declared) {
    return `status ${res.status} is not declared (declared: ${Object.keys(op.responses).join(', ')})`;
  }
  if ('$ref' in declared) {
    const known = Object.values(ERROR_RESPONSES).some((e) => declared.$ref.endsWith(`/${e.name}`));
    if (!known) return `unknown response ${declared.$ref}`;
    return bodyProblem(errorBodySchema, await res.text());
  }
  if (!declared.content) {
    const text = await res.text();
    return text === '' ? null : `status ${res.status} declares no body but has ${text.length} characters`;
  }
  const media = declared.content['application/json'];
  const schema = media && 'schema' in media ? media.schema : undefined;
  if (!schema || !isZod(schema)) return null; // a download or a page: its bytes are not JSON
  return bodyProblem(schema, await res.text());
}

function isZod(schema: unknown): schema is z.ZodType {
  return typeof (schema as { safeParse?: unknown }).safeParse === 'function';
}

/** A body that does not parse, or that has a field the schema does not name (parsing drops unknown keys). */
function bodyProblem(schema: z.ZodType, text: string): string | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return `the body is not JSON: ${text.slice(0, 80)}`;
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
    return `the body does not match its schema: ${issues.slice(0, 5).join('; ')}`;
  }
  if (!isDeepStrictEqual(parsed.data, body)) {
    return `the body has fields its schema does not declare: ${undeclared(parsed.data, body).slice(0, 5).join(', ')}`;
  }
  return null;
}

/** The paths of keys in `body` that parsing dropped. */
function undeclared(parsed: unknown, body: unknown, at = ''): string[] {
  if (!body || typeof body !== 'object' || !parsed || typeof parsed !== 'object') return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(body)) {
    const here = at ? `${at}.${k}` : k;
    if (!(k in parsed)) out.push(here);
    else out.push(...undeclared((parsed as Record<string, unknown>)[k], v, here));
  }
  return out;
}
