import { createRoute, z } from '@hono/zod-openapi';
import { smtpSettingsViewSchema, smtpTestResultSchema } from '../notifications/views.js';
import {
  type Api,
  bodyDoc,
  errors,
  inputJsonSchema,
  nameParams,
  ok,
  parse,
  readJson,
  rememberSecrets,
} from '../shared/route-kit.js';
import type { PortalsService } from './service.js';
import { attachmentPolicySchema, mailSettingsSchema, portalViewSchema } from './views.js';

/** Portals: where requests land, with their threading switch and attachment policy. */

const portalBody = z.strictObject({ name: z.string().min(1).max(100) });
const portalPatchBody = z
  .strictObject({
    headerThreading: z.boolean('must be true or false').optional(),
    // fields: the service validates (resolveAttachmentPolicy names every bad one)
    attachmentPolicy: z.record(z.string(), z.unknown(), 'must be a JSON object').optional(),
    // fields: the service validates (resolvePortalMailSettings names every bad one)
    mailSettings: z.record(z.string(), z.unknown(), 'must be a JSON object').optional(),
  })
  .refine(
    (b) =>
      b.headerThreading !== undefined || b.attachmentPolicy !== undefined || b.mailSettings !== undefined,
    { message: 'give headerThreading, attachmentPolicy or mailSettings' },
  );

/** The PATCH body as documented: the policy's fields, each optional and `null` to restore its default. */
function portalPatchDoc(): Record<string, unknown> {
  const patch = z.object(
    Object.fromEntries(
      Object.entries(attachmentPolicySchema.shape).map(([k, v]) => [
        k,
        (v as z.ZodType).nullable().optional(),
      ]),
    ),
  );
  return {
    type: 'object',
    properties: {
      headerThreading: {
        type: 'boolean',
        description: 'false: only `##<request id>##` in the subject threads a reply',
      },
      attachmentPolicy: {
        ...inputJsonSchema(patch.strict()),
        description:
          'Fields to change; the others keep their value. `null` restores a field’s default. ' +
          'INVALID_SETTINGS names every bad field and nothing is saved.',
      },
      mailSettings: {
        ...inputJsonSchema(nullablePatch(mailSettingsSchema)),
        description:
          'Fields to change; groups (acknowledgement, rateLimit) are merged field by field. `null` restores a ' +
          'field’s or a group’s default. INVALID_SETTINGS names every bad field (e.g. acknowledgement.subject: ' +
          'unknown placeholder {{name}}) and nothing is saved.',
      },
    },
    minProperties: 1,
    additionalProperties: false,
  };
}

/** A view schema as a PATCH takes it: every field optional and nullable, groups likewise, nothing unknown. */
function nullablePatch(schema: z.ZodObject): z.ZodType {
  return z
    .object(
      Object.fromEntries(
        Object.entries(schema.shape).map(([k, v]) => [
          k,
          (v instanceof z.ZodObject ? nullablePatch(v) : (v as z.ZodType)).nullable().optional(),
        ]),
      ),
    )
    .strict();
}

export const listPortals = createRoute({
  method: 'get',
  path: '/api/v1/portals',
  summary: 'List portals',
  responses: { 200: ok('Portals', z.array(portalViewSchema)), ...errors(401) },
});
export const addPortal = createRoute({
  method: 'post',
  path: '/api/v1/portals',
  summary: 'Add a portal',
  request: { body: bodyDoc(portalBody) },
  responses: { 201: ok('Added', portalViewSchema), ...errors(400, 401, 409) },
});
export const updatePortal = createRoute({
  method: 'patch',
  path: '/api/v1/portals/{name}',
  summary: 'Change a portal’s settings',
  request: { params: nameParams, body: bodyDoc(portalPatchDoc()) },
  responses: { 200: ok('The portal', portalViewSchema), ...errors(400, 401, 404) },
});

const portalSmtpViewSchema = z
  .object({
    portal: z.string(),
    inEffect: z.enum(['portal', 'instance', 'none']).openapi({
      description:
        "The server the portal's replies, forwards and acknowledgements go out through: its own, the instance's " +
        '(`/api/v1/settings/smtp`), or none (they wait in the outbox until one is set)',
    }),
    own: smtpSettingsViewSchema.nullable().openapi({ description: "The portal's own server; null: none" }),
  })
  .openapi('PortalSmtp');
const smtpSettingsBody = z.record(z.string(), z.unknown(), 'must be a JSON object');
const smtpTestBody = z.strictObject({ to: z.string().min(1).max(320) });

export const getPortalSmtp = createRoute({
  method: 'get',
  path: '/api/v1/portals/{name}/smtp',
  summary:
    "The portal's outgoing SMTP server: its own, or the instance's it falls back to (never a password)",
  request: { params: nameParams },
  responses: { 200: ok('The server in effect', portalSmtpViewSchema), ...errors(401, 404) },
});
export const setPortalSmtp = createRoute({
  method: 'put',
  path: '/api/v1/portals/{name}/smtp',
  summary:
    'Give the portal an outgoing SMTP server of its own (for its replies, forwards and acknowledgements)',
  description:
    'The same fields and checks as the instance’s server (`PUT /api/v1/settings/smtp`). Notification mail ' +
    'keeps going through the instance’s server. Mail of the portal waiting in the outbox goes out through this one.',
  request: { params: nameParams, body: bodyDoc({ $ref: '#/components/schemas/SmtpInput' }) },
  responses: { 200: ok('The server in effect', portalSmtpViewSchema), ...errors(400, 401, 404) },
});
export const clearPortalSmtp = createRoute({
  method: 'delete',
  path: '/api/v1/portals/{name}/smtp',
  summary: "Remove the portal's own outgoing SMTP server: its mail goes through the instance's again",
  request: { params: nameParams },
  responses: { 200: ok('The server in effect', portalSmtpViewSchema), ...errors(401, 404) },
});
export const testPortalSmtp = createRoute({
  method: 'post',
  path: '/api/v1/portals/{name}/smtp/test',
  summary: "Send a test mail now through the server the portal's replies use (its own, else the instance's)",
  description:
    'Answers 502 with a connection code (DNS_FAILED, CONNECT_FAILED, TLS_FAILED, AUTH_FAILED, TIMEOUT) or ' +
    'SEND_FAILED; 404 when neither the portal nor the instance has a server. `through` says which one was used.',
  request: { params: nameParams, body: bodyDoc(smtpTestBody) },
  responses: {
    200: ok('Sent', smtpTestResultSchema.extend({ through: z.enum(['portal', 'instance']) })),
    ...errors(400, 401, 404, 502),
  },
});

export function mountPortalRoutes(app: Api, services: { portals: PortalsService }): void {
  app.openapi(listPortals, async (c) => c.json(await services.portals.list(), 200));
  app.openapi(addPortal, async (c) => {
    const { name } = parse(portalBody, await readJson(c));
    return c.json(await services.portals.add(name), 201);
  });
  app.openapi(updatePortal, async (c) => {
    const { name } = c.req.valid('param');
    const patch = parse(portalPatchBody, await readJson(c));
    return c.json(await services.portals.update(name, patch), 200);
  });
  app.openapi(getPortalSmtp, async (c) =>
    c.json(await services.portals.smtp.get(c.req.valid('param').name), 200),
  );
  app.openapi(setPortalSmtp, async (c) => {
    const { name } = c.req.valid('param');
    const body = await readJson(c);
    rememberSecrets(c, body);
    return c.json(await services.portals.smtp.set(name, parse(smtpSettingsBody, body)), 200);
  });
  app.openapi(clearPortalSmtp, async (c) =>
    c.json(await services.portals.smtp.clear(c.req.valid('param').name), 200),
  );
  app.openapi(testPortalSmtp, async (c) => {
    const { name } = c.req.valid('param');
    return c.json(await services.portals.smtp.test(name, parse(smtpTestBody, await readJson(c))), 200);
  });
}
