import { createRoute, z } from '@hono/zod-openapi';
import { mailboxInputSchema } from '../../connectors/settings.js';
import {
  type Api,
  bodyDoc,
  errors,
  inputJsonSchema,
  nameParams,
  ok,
  parse,
  queryOf,
  readJson,
  rememberSecrets,
} from '../shared/route-kit.js';
import type { MailboxesService } from './service.js';
import { mailboxTestSchema, mailboxViewSchema } from './views.js';

/**
 * Mailboxes: settings (fields validated by the service), switching fetching on and off, the test. One round
 * ("fetch now") is the fetch feature's route (fetch/routes.ts).
 */

const MAILBOX_INPUT = { $ref: '#/components/schemas/MailboxInput' };
const mailboxBody = z.record(z.string(), z.unknown(), 'must be a JSON object'); // fields: the service validates
/** `?pauseFetching=true`: save even while the mailbox is fetched, pausing it (the reference's prompt). */
const updateQuery = queryOf({
  pauseFetching: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ param: { description: 'pause fetching if a fetch is running, to save anyway' } }),
});

export const listMailboxes = createRoute({
  method: 'get',
  path: '/api/v1/mailboxes',
  summary: 'List mailboxes',
  responses: { 200: ok('Mailboxes', z.array(mailboxViewSchema)), ...errors(401) },
});
export const addMailbox = createRoute({
  method: 'post',
  path: '/api/v1/mailboxes',
  summary: 'Add a mailbox',
  request: { body: bodyDoc(MAILBOX_INPUT) },
  responses: { 201: ok('Added', mailboxViewSchema), ...errors(400, 401, 404, 409) },
});
export const getMailbox = createRoute({
  method: 'get',
  path: '/api/v1/mailboxes/{name}',
  summary: 'Show a mailbox',
  request: { params: nameParams },
  responses: { 200: ok('The mailbox', mailboxViewSchema), ...errors(401, 404) },
});
export const updateMailbox = createRoute({
  method: 'put',
  path: '/api/v1/mailboxes/{name}',
  summary:
    'Replace a mailbox’s settings (a missing password keeps the stored one, a missing `enabled` the state)',
  description:
    'While the mailbox is being fetched the save answers 409 FETCH_RUNNING, unless `pauseFetching=true`: then the mailbox is disabled with the save (the running round stops at its next batch) and stays disabled until enabled again.',
  request: { params: nameParams, query: updateQuery, body: bodyDoc(MAILBOX_INPUT) },
  responses: { 200: ok('Updated', mailboxViewSchema), ...errors(400, 401, 404, 409) },
});
export const removeMailbox = createRoute({
  method: 'delete',
  path: '/api/v1/mailboxes/{name}',
  summary: 'Remove a mailbox',
  description:
    'Its requests, conversations, intake log (raw mails), dropped attachments, error mails and notifications ' +
    'are kept and name it "<name> (removed #<id>)"; its password and OAuth tokens are discarded; the name ' +
    'is free again. 409 FETCH_RUNNING while a round holds its lease: disable it, then remove it.',
  request: { params: nameParams },
  responses: { 204: { description: 'Removed' }, ...errors(401, 404, 409) },
});
export const testMailbox = createRoute({
  method: 'post',
  path: '/api/v1/mailboxes/{name}/test',
  summary: 'Fetch a sample mail: connect, log in, describe the oldest mail, change nothing',
  request: { params: nameParams },
  responses: {
    200: ok('Reached; `sample` is null when the folder is empty', mailboxTestSchema),
    ...errors(401, 404, 409, 502),
  },
});
export const enableMailbox = createRoute({
  method: 'post',
  path: '/api/v1/mailboxes/{name}/enable',
  summary: 'Enable scheduled fetching',
  request: { params: nameParams },
  responses: { 200: ok('The mailbox', mailboxViewSchema), ...errors(401, 404) },
});
export const disableMailbox = createRoute({
  method: 'post',
  path: '/api/v1/mailboxes/{name}/disable',
  summary: 'Disable scheduled fetching',
  request: { params: nameParams },
  responses: { 200: ok('The mailbox', mailboxViewSchema), ...errors(401, 404) },
});

export function mountMailboxRoutes(app: Api, services: { mailboxes: MailboxesService }): void {
  app.openAPIRegistry.registerComponent('schemas', 'MailboxInput', mailboxInputDoc());
  app.openapi(listMailboxes, async (c) => c.json(await services.mailboxes.list(), 200));
  app.openapi(addMailbox, async (c) => {
    const body = await readJson(c);
    rememberSecrets(c, body);
    return c.json(await services.mailboxes.add(parse(mailboxBody, body)), 201);
  });
  app.openapi(getMailbox, async (c) => c.json(await services.mailboxes.get(c.req.valid('param').name), 200));
  app.openapi(updateMailbox, async (c) => {
    const { name } = c.req.valid('param');
    const body = await readJson(c);
    rememberSecrets(c, body);
    const { pauseFetching } = c.req.valid('query');
    const view = await services.mailboxes.update(name, parse(mailboxBody, body), {
      pauseFetching: pauseFetching === 'true',
    });
    return c.json(view, 200);
  });
  app.openapi(removeMailbox, async (c) => {
    await services.mailboxes.remove(c.req.valid('param').name);
    return c.body(null, 204);
  });
  app.openapi(testMailbox, async (c) =>
    c.json(await services.mailboxes.test(c.req.valid('param').name), 200),
  );
  app.openapi(enableMailbox, async (c) =>
    c.json(await services.mailboxes.setEnabled(c.req.valid('param').name, true), 200),
  );
  app.openapi(disableMailbox, async (c) =>
    c.json(await services.mailboxes.setEnabled(c.req.valid('param').name, false), 200),
  );
}

/**
 * The mailbox input as JSON Schema, generated from the zod schema that validates mailbox files, so the document
 * can never accept or reject a field the server does not; the secrets are marked write-only.
 */
function mailboxInputDoc(): Record<string, unknown> {
  type Json = Record<string, unknown>;
  const doc = inputJsonSchema(mailboxInputSchema);
  const props = doc.properties as Record<string, Json>;
  const describe = (p: Json | undefined, description: string, writeOnly = false) => {
    if (!p) return;
    p.description = description;
    if (writeOnly) p.writeOnly = true;
  };
  describe(props.password, 'Sealed at rest; never returned.', true);
  describe(
    props.accessToken,
    'Graph only: a bearer token you obtained yourself (never refreshed; prefer "oauth"). Sealed at rest; never returned.',
    true,
  );
  describe(
    (props.oauth?.properties as Record<string, Json> | undefined)?.clientSecret,
    "The app registration's client secret. Sealed at rest; never returned; left out on an update with the same clientId: kept.",
    true,
  );
  describe(
    props.graphEndpoint,
    'Graph only ("Graph Endpoint"): https://graph.microsoft.com (default), a national cloud (https://graph.microsoft.us, https://dod-graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn) or another https URL.',
  );
  describe(
    props.connectUrl,
    'EWS only ("Connect URL"): the https URL of Exchange Web Services, e.g. https://mail.example.com/EWS/Exchange.asmx. For on-premises Exchange 2013 SP1 and later: Exchange Online has been turning EWS off since October 2026 (use protocol "graph" there).',
  );
  describe(
    props.ewsAuth,
    'EWS only: how username and password log in. "ntlm" (default; NTLMv2 with channel binding, what Exchange accepts out of the box) or "basic".',
  );
  describe(props.emailAddress, 'One address, or several separated by commas (aliases).');
  return doc;
}
