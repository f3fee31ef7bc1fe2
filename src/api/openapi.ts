import { z } from 'zod';
import { mailboxInputSchema } from '../config/mailbox-settings.js';
import { ERROR_HELP } from '../errors.js';

/**
 * The OpenAPI 3.1 document served at /api/openapi.json, written by hand next to the routes in app.ts.
 * app.test.ts checks that every route the app registers is described here and nothing more, so the two cannot
 * drift apart. The mailbox input schema is the one exception to "by hand": it is generated from the zod schema
 * that validates mailbox files, so the document can never accept or reject a field the server does not.
 */

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const nullable = (type: string): Json => ({ type: [type, 'null'] });
const json = (schema: Json): Json => ({ 'application/json': { schema } });

/** The coded error answers a route can give, by HTTP status. */
const errorResponses = (...statuses: number[]): Json =>
  Object.fromEntries(
    statuses.map((s) => [String(s), { $ref: `#/components/responses/${ERROR_RESPONSE_NAMES[s]}` }]),
  );

const ERROR_RESPONSE_NAMES: Record<number, string> = {
  400: 'InvalidSettings',
  401: 'Unauthorized',
  404: 'NotFound',
  409: 'Conflict',
  502: 'MailboxUnreachable',
  500: 'Internal',
};

const nameParam: Json = {
  name: 'name',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' },
};
const idParam: Json = { name: 'id', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } };
const pageParams: Json[] = [
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000 } },
  { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 } },
];

const ok = (description: string, schema: Json, status = '200'): Json => ({
  [status]: { description, content: json(schema) },
});

const mailboxInput = z.toJSONSchema(mailboxInputSchema, { io: 'input', unrepresentable: 'any' }) as Json;
delete mailboxInput.$schema;
const mailboxInputProps = mailboxInput.properties as Record<string, Json>;
if (mailboxInputProps.password) {
  mailboxInputProps.password.writeOnly = true;
  mailboxInputProps.password.description = 'Sealed at rest; never returned.';
}
if (mailboxInputProps.emailAddress) {
  mailboxInputProps.emailAddress.description = 'One address, or several separated by commas (aliases).';
}

const address: Json = {
  type: 'object',
  properties: { address: { type: 'string' }, name: { type: 'string' } },
  required: ['address', 'name'],
};

const attachment: Json = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    filename: { type: 'string' },
    contentType: { type: 'string' },
    size: { type: 'integer' },
    sha256: { type: 'string' },
    contentId: nullable('string'),
    disposition: { type: 'string', enum: ['attachment', 'inline'] },
    conversationId: nullable('integer'),
  },
};

const requestSummaryProps: Json = {
  id: { type: 'integer' },
  portal: { type: 'string' },
  subject: { type: 'string' },
  requester: { oneOf: [ref('Address'), { type: 'null' }] },
  status: { type: 'string' },
  conversationCount: { type: 'integer' },
  createdAt: { type: 'string', format: 'date-time' },
  updatedAt: { type: 'string', format: 'date-time' },
};

const mailBodyProps: Json = {
  to: { type: 'array', items: ref('Address') },
  cc: { type: 'array', items: ref('Address') },
  messageId: nullable('string'),
  text: nullable('string'),
  html: { type: ['string', 'null'], description: 'As received: untrusted, sanitise before display.' },
  date: nullable('string'),
  mailbox: nullable('string'),
  attachments: { type: 'array', items: ref('Attachment') },
};

const page = (item: string): Json => ({
  type: 'object',
  properties: {
    items: { type: 'array', items: ref(item) },
    total: { type: 'integer' },
    limit: { type: 'integer' },
    offset: { type: 'integer' },
  },
  required: ['items', 'total', 'limit', 'offset'],
});

const errorCodes = Object.keys(ERROR_HELP);

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Mailintake API',
    version: '1',
    description:
      'Email-to-ticket engine: mailboxes, requests, attachments and the intake log. Every call under /api/v1 ' +
      'needs an API key (`mailintake apikey create NAME`) sent as `Authorization: Bearer <key>`. Errors answer ' +
      '`{ error, message, details }` with a stable code:\n\n' +
      Object.entries(ERROR_HELP)
        .map(([code, help]) => `- \`${code}\`: ${help}`)
        .join('\n'),
  },
  security: [{ bearerAuth: [] }],
  paths: {
    '/api/openapi.json': {
      get: {
        summary: 'This document',
        security: [],
        responses: { '200': { description: 'The OpenAPI document', content: json({ type: 'object' }) } },
      },
    },
    '/api/v1/mailboxes': {
      get: {
        summary: 'List mailboxes',
        responses: { ...ok('Mailboxes', { type: 'array', items: ref('Mailbox') }), ...errorResponses(401) },
      },
      post: {
        summary: 'Add a mailbox',
        requestBody: { required: true, content: json(ref('MailboxInput')) },
        responses: { ...ok('Added', ref('Mailbox'), '201'), ...errorResponses(400, 401, 404, 409) },
      },
    },
    '/api/v1/mailboxes/{name}': {
      parameters: [nameParam],
      get: {
        summary: 'Show a mailbox',
        responses: { ...ok('The mailbox', ref('Mailbox')), ...errorResponses(401, 404) },
      },
      put: {
        summary: 'Replace a mailbox’s settings (a missing password keeps the stored one)',
        requestBody: { required: true, content: json(ref('MailboxInput')) },
        responses: { ...ok('Updated', ref('Mailbox')), ...errorResponses(400, 401, 404, 409) },
      },
      delete: {
        summary: 'Remove a mailbox',
        responses: { '204': { description: 'Removed' }, ...errorResponses(401, 404, 409) },
      },
    },
    '/api/v1/mailboxes/{name}/test': {
      parameters: [nameParam],
      post: {
        summary: 'Fetch a sample mail: connect, log in, describe the oldest mail, change nothing',
        responses: {
          ...ok('Reached; `sample` is null when the folder is empty', ref('MailboxTest')),
          ...errorResponses(401, 404, 409, 502),
        },
      },
    },
    '/api/v1/mailboxes/{name}/enable': {
      parameters: [nameParam],
      post: {
        summary: 'Enable scheduled fetching',
        responses: { ...ok('The mailbox', ref('Mailbox')), ...errorResponses(401, 404) },
      },
    },
    '/api/v1/mailboxes/{name}/disable': {
      parameters: [nameParam],
      post: {
        summary: 'Disable scheduled fetching',
        responses: { ...ok('The mailbox', ref('Mailbox')), ...errorResponses(401, 404) },
      },
    },
    '/api/v1/fetch': {
      post: {
        summary: 'One fetch round over the enabled mailboxes, or the one named (enabled or not)',
        requestBody: {
          required: false,
          content: json({
            type: 'object',
            properties: { mailbox: { type: 'string' } },
            additionalProperties: false,
          }),
        },
        responses: {
          ...ok('One summary per mailbox; `reached: false` with `error` when it could not be reached', {
            type: 'array',
            items: ref('FetchSummary'),
          }),
          ...errorResponses(400, 401, 404, 409, 502),
        },
      },
    },
    '/api/v1/portals': {
      get: {
        summary: 'List portals',
        responses: { ...ok('Portals', { type: 'array', items: ref('Portal') }), ...errorResponses(401) },
      },
      post: {
        summary: 'Add a portal',
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            properties: { name: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' } },
            required: ['name'],
            additionalProperties: false,
          }),
        },
        responses: { ...ok('Added', ref('Portal'), '201'), ...errorResponses(400, 401, 409) },
      },
    },
    '/api/v1/portals/{name}': {
      parameters: [nameParam],
      patch: {
        summary: 'Change a portal’s settings',
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            properties: {
              headerThreading: {
                type: 'boolean',
                description: 'false: only `##<request id>##` in the subject threads a reply',
              },
            },
            required: ['headerThreading'],
            additionalProperties: false,
          }),
        },
        responses: { ...ok('The portal', ref('Portal')), ...errorResponses(400, 401, 404) },
      },
    },
    '/api/v1/requests': {
      get: {
        summary: 'List requests, newest first',
        parameters: [{ name: 'portal', in: 'query', schema: { type: 'string' } }, ...pageParams],
        responses: { ...ok('A page of requests', page('RequestSummary')), ...errorResponses(400, 401) },
      },
    },
    '/api/v1/requests/{id}': {
      parameters: [idParam],
      get: {
        summary: 'Show a request with its conversations and attachment metadata',
        responses: { ...ok('The request', ref('RequestDetail')), ...errorResponses(400, 401, 404) },
      },
    },
    '/api/v1/attachments/{id}/content': {
      parameters: [idParam],
      get: {
        summary: 'Download an attachment',
        description:
          'Always `Content-Disposition: attachment` with `X-Content-Type-Options: nosniff`; types a browser ' +
          'would render as active content (HTML, SVG, XML) are served as application/octet-stream.',
        responses: {
          '200': {
            description: 'The attachment’s bytes',
            headers: {
              'Content-Disposition': { schema: { type: 'string' } },
              'Content-Length': { schema: { type: 'integer' } },
            },
            content: { '*/*': { schema: { type: 'string', contentEncoding: 'binary' } } },
          },
          ...errorResponses(400, 401, 404),
        },
      },
    },
    '/api/v1/log': {
      get: {
        summary: 'The intake log: one entry per mail fetched, with its outcome and the reasons',
        parameters: [
          { name: 'mailbox', in: 'query', schema: { type: 'string' } },
          {
            name: 'outcome',
            in: 'query',
            schema: { type: 'string', enum: ['created', 'appended', 'ignored', 'error'] },
          },
          ...pageParams,
        ],
        responses: { ...ok('A page of log entries', page('IntakeLogEntry')), ...errorResponses(400, 401) },
      },
    },
    '/api/v1/log/{id}/raw': {
      parameters: [idParam],
      get: {
        summary: 'Download the raw mail of a log entry, as it was fetched',
        description:
          'The original source is kept for every mail taken in or failed, so nothing a parser missed is lost. ' +
          'Served as an attachment (`mail-<id>.eml`).',
        responses: {
          '200': {
            description: 'The raw RFC 5322 mail',
            headers: {
              'Content-Disposition': { schema: { type: 'string' } },
              'Content-Length': { schema: { type: 'integer' } },
            },
            content: { 'message/rfc822': { schema: { type: 'string', contentEncoding: 'binary' } } },
          },
          ...errorResponses(400, 401, 404),
        },
      },
    },
  },
  components: {
    securitySchemes: {
      bearerAuth: {
        type: 'http',
        scheme: 'bearer',
        description: 'An API key from `mailintake apikey create`.',
      },
    },
    responses: {
      InvalidSettings: {
        description:
          'INVALID_SETTINGS: `details.fields` names every bad field (`(body)` for a body that is not JSON)',
        content: json(ref('Error')),
      },
      Unauthorized: { description: 'UNAUTHORIZED: no or an invalid API key', content: json(ref('Error')) },
      NotFound: { description: 'NOT_FOUND', content: json(ref('Error')) },
      Conflict: { description: 'CONFLICT or MAILBOX_BUSY', content: json(ref('Error')) },
      MailboxUnreachable: {
        description:
          'A connection code: DNS_FAILED, CONNECT_FAILED, TLS_FAILED, AUTH_FAILED, FOLDER_NOT_FOUND, TIMEOUT, PROTOCOL_ERROR',
        content: json(ref('Error')),
      },
      Internal: { description: 'INTERNAL: the server log has the details', content: json(ref('Error')) },
    },
    schemas: {
      Error: {
        type: 'object',
        properties: {
          error: { type: 'string', enum: errorCodes, description: 'A stable code; see the API description.' },
          message: { type: 'string' },
          details: {
            type: 'object',
            properties: {
              fields: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { field: { type: 'string' }, message: { type: 'string' } },
                  required: ['field', 'message'],
                },
              },
              serverResponse: { type: 'string' },
              hint: { type: 'string' },
            },
          },
        },
        required: ['error', 'message', 'details'],
      },
      MailboxInput: mailboxInput,
      Mailbox: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          name: { type: 'string' },
          portal: { type: 'string' },
          protocol: { type: 'string' },
          server: { type: 'string' },
          port: { type: 'integer' },
          username: { type: 'string' },
          passwordSet: { type: 'boolean', description: 'The password itself is never returned.' },
          emailAddress: { type: 'array', items: { type: 'string' } },
          starttls: { type: 'boolean' },
          caFile: nullable('string'),
          folder: { type: 'string' },
          afterFetch: { type: 'string', enum: ['mark-read', 'delete', 'move'] },
          moveToFolder: nullable('string'),
          intervalSeconds: { type: 'integer' },
          idle: { type: 'boolean', description: 'IMAP IDLE push: new mail is taken in at once' },
          enabled: { type: 'boolean' },
          state: {
            type: 'object',
            properties: {
              lastFetchAt: nullable('string'),
              lastErrorCode: nullable('string'),
              lastErrorMessage: nullable('string'),
              consecutiveFailures: { type: 'integer' },
              fetching: { type: 'boolean' },
            },
          },
          createdAt: { type: 'string', format: 'date-time' },
          updatedAt: { type: 'string', format: 'date-time' },
        },
      },
      MailboxTest: {
        type: 'object',
        properties: {
          ok: { type: 'boolean', const: true },
          durationMs: { type: 'integer' },
          sample: {
            oneOf: [
              {
                type: 'object',
                properties: {
                  from: nullable('string'),
                  subject: nullable('string'),
                  date: nullable('string'),
                  size: { type: 'integer' },
                  attachments: { type: 'array', items: { type: 'string' } },
                },
              },
              { type: 'null' },
            ],
          },
        },
      },
      FetchSummary: {
        type: 'object',
        properties: {
          mailbox: { type: 'string' },
          reached: { type: 'boolean' },
          fetched: { type: 'integer' },
          created: { type: 'integer' },
          appended: { type: 'integer' },
          ignored: { type: 'integer' },
          errored: { type: 'integer' },
          reacknowledged: { type: 'integer' },
          error: {
            oneOf: [
              {
                type: 'object',
                properties: { code: { type: 'string' }, message: { type: 'string' } },
                required: ['code', 'message'],
              },
              { type: 'null' },
            ],
          },
          durationMs: { type: 'integer' },
        },
      },
      Portal: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          name: { type: 'string' },
          headerThreading: { type: 'boolean' },
        },
      },
      Address: address,
      Attachment: attachment,
      RequestSummary: { type: 'object', properties: requestSummaryProps },
      Conversation: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          from: { oneOf: [ref('Address'), { type: 'null' }] },
          subject: { type: 'string' },
          createdAt: { type: 'string', format: 'date-time' },
          ...mailBodyProps,
        },
      },
      RequestDetail: {
        type: 'object',
        properties: {
          ...requestSummaryProps,
          ...mailBodyProps,
          conversations: { type: 'array', items: ref('Conversation') },
        },
      },
      IntakeLogEntry: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          mailbox: { type: 'string' },
          serverIdentity: { type: 'string' },
          rawAvailable: { type: 'boolean' },
          messageId: nullable('string'),
          contentHash: nullable('string'),
          outcome: { type: 'string', enum: ['created', 'appended', 'ignored', 'error'] },
          requestId: nullable('integer'),
          conversationId: nullable('integer'),
          errorCode: nullable('string'),
          reasons: { type: 'array', items: { type: 'string' } },
          subject: nullable('string'),
          from: nullable('string'),
          size: nullable('integer'),
          attempts: { type: 'integer' },
          acknowledged: { type: 'boolean' },
          createdAt: { type: 'string', format: 'date-time' },
          updatedAt: { type: 'string', format: 'date-time' },
        },
      },
    },
  },
} as const;
