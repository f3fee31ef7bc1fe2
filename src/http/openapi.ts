import { z } from 'zod';
import { mailboxInputSchema } from '../connectors/settings.js';
import { MAX_PAGE } from '../features/requests/service.js';
import { ERROR_HELP } from '../kernel/errors.js';
import { DEFAULT_ATTACHMENT_POLICY, DROP_MESSAGES } from '../mail/attachment-checks.js';
import { alertPatchSchema } from '../notify/alert-settings.js';
import { NOTIFICATION_EVENTS } from '../notify/notifier.js';
import { ruleInputSchema } from '../notify/rules.js';
import { smtpInputSchema } from '../notify/smtp-settings.js';
import { SYSTEM_LOG_CATEGORIES } from '../store/system-log.js';

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

/**
 * The coded error answers a route can give, by HTTP status. Every route reads or writes the store, so every
 * route can answer 503 STORE_FAILED (the database or disk is unavailable; come back after Retry-After).
 */
const errorResponses = (...statuses: number[]): Json =>
  Object.fromEntries(
    [...statuses, 503].map((s) => [String(s), { $ref: `#/components/responses/${ERROR_RESPONSE_NAMES[s]}` }]),
  );

const ERROR_RESPONSE_NAMES: Record<number, string> = {
  400: 'InvalidSettings',
  401: 'Unauthorized',
  404: 'NotFound',
  409: 'Conflict',
  502: 'MailboxUnreachable',
  503: 'StoreUnavailable',
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
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE } },
  { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 } },
];
/** Lists that can be read whole: `before` pages on from the last id seen, unaffected by new entries. */
const keysetParams: Json[] = [
  ...pageParams,
  {
    name: 'before',
    in: 'query',
    schema: { type: 'integer', minimum: 1 },
    description:
      'Only entries with an id below this one. To read everything: ask with limit=' +
      `${MAX_PAGE}, then again with before=<the last id> until a page has fewer than ${MAX_PAGE} entries.`,
  },
];
/** A filter naming a mailbox or portal that does not exist is NOT_FOUND, never an empty page. */
const unknownFilter = 'A mailbox or portal named in a filter that does not exist answers 404 NOT_FOUND.';

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
if (mailboxInputProps.accessToken) {
  mailboxInputProps.accessToken.writeOnly = true;
  mailboxInputProps.accessToken.description =
    'Graph only: a bearer token you obtained yourself (never refreshed; prefer "oauth"). Sealed at rest; never returned.';
}
const oauthInputProps = (mailboxInputProps.oauth?.properties ?? {}) as Record<string, Json>;
if (oauthInputProps.clientSecret) {
  oauthInputProps.clientSecret.writeOnly = true;
  oauthInputProps.clientSecret.description =
    "The app registration's client secret. Sealed at rest; never returned; left out on an update with the same clientId: kept.";
}
if (mailboxInputProps.graphEndpoint) {
  mailboxInputProps.graphEndpoint.description =
    'Graph only ("Graph Endpoint"): https://graph.microsoft.com (default), a national cloud (https://graph.microsoft.us, https://dod-graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn) or another https URL.';
}
if (mailboxInputProps.connectUrl) {
  mailboxInputProps.connectUrl.description =
    'EWS only ("Connect URL"): the https URL of Exchange Web Services, e.g. https://mail.example.com/EWS/Exchange.asmx. For on-premises Exchange 2013 SP1 and later: Exchange Online has been turning EWS off since October 2026 (use protocol "graph" there).';
}
if (mailboxInputProps.ewsAuth) {
  mailboxInputProps.ewsAuth.description =
    'EWS only: how username and password log in. "ntlm" (default; NTLMv2 with channel binding, what Exchange accepts out of the box) or "basic".';
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
  logId: {
    type: ['integer', 'null'],
    description: 'The intake-log entry of this mail: its raw source is GET /api/v1/log/{logId}/raw',
  },
  attachments: { type: 'array', items: ref('Attachment') },
  droppedAttachments: { type: 'array', items: ref('DroppedAttachment') },
};

const droppedAttachment: Json = {
  type: 'object',
  description:
    'An attachment or inline image the checks dropped. The mail itself was taken in; the body is kept in the ' +
    'blob store under `sha256`, so an admin can recover it.',
  properties: {
    ...(attachment.properties as Json),
    code: { type: 'string', enum: Object.keys(DROP_MESSAGES) },
    message: { type: 'string', description: 'The reference’s text for the code' },
    detail: { type: 'string', description: 'What exactly was wrong with this item' },
    createdAt: { type: 'string', format: 'date-time' },
  },
};

const mbLimit = (what: string, minusOne: string): Json => ({
  oneOf: [
    { type: 'number', exclusiveMinimum: 0, maximum: 1024 * 1024 },
    { const: -1, description: minusOne },
    { type: 'null', description: 'restore the default (PATCH)' },
  ],
  description: what,
});
const extensionList = (what: string): Json => ({
  type: ['array', 'null'],
  items: { type: 'string', pattern: '^\\.?[\\p{L}\\p{N}][\\p{L}\\p{N}_-]{0,31}$' },
  description: what,
});
const switchField = (what: string): Json => ({ type: ['boolean', 'null'], description: what });

const attachmentPolicy: Json = {
  type: 'object',
  description:
    'Attachment and inline-image checks of a portal. A missing (or, in PATCH, `null`) field means its default: ' +
    JSON.stringify(DEFAULT_ATTACHMENT_POLICY),
  properties: {
    maxSizeMb: mbLimit('Largest attachment in MB (default 25)', 'unlimited'),
    inlineImageMaxSizeMb: mbLimit('Largest inline image in MB (default 3)', 'the size is not checked'),
    allowedExtensions: extensionList('Allowed extensions; empty: all that are not denied'),
    deniedExtensions: extensionList('Denied extensions; deny wins over allow'),
    skipAttachmentValidation: switchField('Keep attachments without any check'),
    skipInlineImageValidation: switchField('Keep inline images without any check'),
    notifyOnDrop: switchField('Email when an attachment is dropped (sent by the notification part)'),
    notifyOnInlineImageDrop: switchField('Email when an inline image is dropped'),
    fileNames: {
      enum: ['safe', 'strict', null],
      description:
        'File names refused (FILE_NAME_INVALID). "safe" (default): only unsafe or unsaveable names (control, ' +
        'bidirectional and invisible characters, path separators and "..", characters Windows forbids, Windows ' +
        'device names, a leading dot, a trailing dot or space, over 255 UTF-8 bytes). "strict": also any ' +
        'character other than letters, digits, marks, ".", "-", "_" and space.',
    },
  },
  additionalProperties: false,
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

// ---- the error folder: error mails, sealed reports, POP3's kept mails, move to inbox --------------------------

const errorFolderPaths: Json = {
  '/api/v1/error-mails': {
    get: {
      summary: 'Error mails (the error folders of the mailboxes), newest first',
      parameters: [
        { name: 'mailbox', in: 'query', schema: { type: 'string' } },
        {
          name: 'status',
          in: 'query',
          schema: { type: 'string', enum: ['in-error-folder', 'moved-to-inbox'] },
        },
        ...pageParams,
      ],
      responses: { ...ok('A page of error mails', page('ErrorMail')), ...errorResponses(400, 401, 404) },
    },
  },
  '/api/v1/error-mails/{id}/report': {
    parameters: [idParam],
    get: {
      summary: 'The report of an error mail, decrypted: mail details and the exception',
      description:
        'Reports are sealed at rest (AES-256-GCM with the instance key) because they hold personal data; this ' +
        'call opens one for the admin holding the API key.',
      responses: {
        ...ok('The error mail and its report', {
          type: 'object',
          properties: { errorMail: ref('ErrorMail'), report: ref('ErrorReport') },
          required: ['errorMail', 'report'],
        }),
        ...errorResponses(400, 401, 404),
      },
    },
  },
  '/api/v1/error-mails/{id}/raw': {
    parameters: [idParam],
    get: {
      summary: 'POP3: download the raw mail Mailintake kept for an error mail, decrypted',
      description:
        'POP3 has no folders, so its error mails are kept (sealed) by Mailintake and deleted from the server. ' +
        'Mails in a server error folder (IMAP, Graph) answer NOT_FOUND; their copy as fetched is under /log/{id}/raw.',
      responses: {
        '200': {
          description: 'The raw RFC 5322 mail, byte for byte as fetched',
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
  '/api/v1/mailboxes/{name}/error-mails/move-to-inbox': {
    parameters: [nameParam],
    post: {
      summary: '"Move mails to inbox": every error mail of the mailbox back to its inbox, the count reset',
      description:
        'IMAP and Graph: the mails are moved from the error folder back to the folder Mailintake reads; POP3: the ' +
        'kept copies are taken in by the next round. The next fetch processes them again (enable the mailbox ' +
        'if it was stopped by errors). Mails no longer in the error folder are listed in `notFound` and count ' +
        'as resolved.',
      responses: {
        ...ok('What was moved', ref('MoveToInboxResult')),
        ...errorResponses(400, 401, 404, 409, 502),
      },
    },
  },
};

const errorFolderSchemas: Json = {
  ErrorMail: {
    type: 'object',
    properties: {
      id: { type: 'integer' },
      mailbox: { type: 'string' },
      serverIdentity: { type: 'string' },
      errorCode: { type: 'string' },
      location: {
        type: 'string',
        enum: ['server-folder', 'kept-locally'],
        description: 'kept-locally: POP3, kept (sealed) by Mailintake',
      },
      folder: nullable('string'),
      status: { type: 'string', enum: ['in-error-folder', 'moved-to-inbox'] },
      rawAvailable: { type: 'boolean', description: 'POP3: GET /error-mails/{id}/raw' },
      createdAt: { type: 'string', format: 'date-time' },
      movedBackAt: nullable('string'),
    },
  },
  ErrorReport: {
    type: 'object',
    properties: {
      format: { type: 'string', const: 'mailintake-error-report/1' },
      mailbox: { type: 'string' },
      protocol: { type: 'string' },
      serverIdentity: { type: 'string' },
      intakeLogId: nullable('integer'),
      failedAt: nullable('string'),
      reportedAt: { type: 'string', format: 'date-time' },
      movedTo: {
        type: 'object',
        properties: {
          location: { type: 'string', enum: ['server-folder', 'kept-locally'] },
          folder: { type: 'string' },
        },
      },
      mail: {
        type: 'object',
        properties: {
          from: nullable('string'),
          to: nullable('string'),
          cc: nullable('string'),
          subject: nullable('string'),
          date: nullable('string'),
          messageId: nullable('string'),
          size: nullable('integer'),
          rawSha256: nullable('string'),
          headerProblem: { type: 'string' },
        },
      },
      error: {
        type: 'object',
        properties: {
          code: { type: 'string' },
          message: { type: 'string' },
          help: nullable('string'),
          causes: { type: 'array', items: { type: 'string' } },
          details: { type: 'object' },
        },
      },
    },
  },
  MoveToInboxResult: {
    type: 'object',
    properties: {
      mailbox: { type: 'string' },
      moved: { type: 'array', items: { type: 'integer' } },
      notFound: { type: 'array', items: { type: 'integer' } },
      remaining: { type: 'integer' },
    },
    required: ['mailbox', 'moved', 'notFound', 'remaining'],
  },
};

// ---- notifications: bell, rules, outgoing SMTP, connection alerts, outbox -----------------------------------

/** Input schemas generated from the zod schemas that validate them, like MailboxInput. */
function inputSchema(schema: z.ZodType): Json {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json;
  delete out.$schema;
  return out;
}
const smtpInput = inputSchema(smtpInputSchema);
const smtpInputProps = smtpInput.properties as Record<string, Json>;
if (smtpInputProps.password) {
  smtpInputProps.password.writeOnly = true;
  smtpInputProps.password.description =
    'Sealed at rest; never returned. Left out: the stored one is kept when the username stays the same.';
}
if (smtpInputProps.secure) {
  smtpInputProps.secure.description = 'TLS from the first byte (implicit TLS, port 465)';
}
if (smtpInputProps.starttls) {
  smtpInputProps.starttls.description =
    'Without secure: require STARTTLS (default); false only for a server without TLS';
}

const eventEnum: Json = { type: 'string', enum: [...NOTIFICATION_EVENTS] };

const notificationPaths: Json = {
  '/api/v1/notifications': {
    get: {
      summary: 'Bell notifications for admins, newest first',
      parameters: [
        {
          name: 'unread',
          in: 'query',
          schema: { type: 'string', enum: ['true', 'false'] },
          description: 'true: only those not marked read',
        },
        ...pageParams,
      ],
      responses: { ...ok('A page of notifications', page('Notification')), ...errorResponses(400, 401) },
    },
  },
  '/api/v1/notifications/unread-count': {
    get: {
      summary: 'How many bell notifications are unread',
      responses: {
        ...ok('The count', {
          type: 'object',
          properties: { unread: { type: 'integer' } },
          required: ['unread'],
        }),
        ...errorResponses(401),
      },
    },
  },
  '/api/v1/notifications/{id}/read': {
    parameters: [idParam],
    post: {
      summary: 'Mark a notification read (a read one keeps its first read time)',
      responses: { ...ok('The notification', ref('Notification')), ...errorResponses(400, 401, 404) },
    },
  },
  '/api/v1/notifications/read-all': {
    post: {
      summary: 'Mark every unread notification read',
      responses: {
        ...ok('How many were marked', {
          type: 'object',
          properties: { marked: { type: 'integer' } },
          required: ['marked'],
        }),
        ...errorResponses(401),
      },
    },
  },
  '/api/v1/notification-rules': {
    get: {
      summary: 'Notification rules: who gets an email for which event',
      responses: {
        ...ok('The rules', { type: 'array', items: ref('NotificationRule') }),
        ...errorResponses(401),
      },
    },
    put: {
      summary: 'Create or replace the rule for an event and portal (no portal: every portal)',
      description:
        'An event’s recipients in a portal are those of its enabled rule for that portal plus those of its enabled ' +
        'rule for every portal, each address once. Bell notifications go to admins whatever the rules say.',
      requestBody: { required: true, content: json(ref('NotificationRuleInput')) },
      responses: { ...ok('The rule', ref('NotificationRule')), ...errorResponses(400, 401) },
    },
  },
  '/api/v1/notification-rules/{id}/enable': {
    parameters: [idParam],
    post: {
      summary: 'Enable a notification rule',
      responses: { ...ok('The rule', ref('NotificationRule')), ...errorResponses(400, 401, 404) },
    },
  },
  '/api/v1/notification-rules/{id}/disable': {
    parameters: [idParam],
    post: {
      summary: 'Disable a notification rule (its recipients get no more email for the event)',
      responses: { ...ok('The rule', ref('NotificationRule')), ...errorResponses(400, 401, 404) },
    },
  },
  '/api/v1/settings/smtp': {
    get: {
      summary: 'The outgoing SMTP server for notification mail (never the password)',
      responses: { ...ok('The settings', ref('SmtpSettings')), ...errorResponses(401, 404) },
    },
    put: {
      summary: 'Set the outgoing SMTP server',
      requestBody: { required: true, content: json(ref('SmtpInput')) },
      responses: { ...ok('The settings', ref('SmtpSettings')), ...errorResponses(400, 401) },
    },
  },
  '/api/v1/settings/smtp/test': {
    post: {
      summary: 'Send a test mail through the stored SMTP settings now',
      description:
        'Answers 502 with a connection code (DNS_FAILED, CONNECT_FAILED, TLS_FAILED, AUTH_FAILED, TIMEOUT) when ' +
        'the SMTP server cannot be reached or refuses the login, or SEND_FAILED when it refuses the mail; 404 ' +
        'when no SMTP server is configured.',
      requestBody: {
        required: true,
        content: json({
          type: 'object',
          properties: { to: { type: 'string', format: 'email' } },
          required: ['to'],
          additionalProperties: false,
        }),
      },
      responses: {
        ...ok('Sent', {
          type: 'object',
          properties: {
            ok: { const: true },
            to: { type: 'string' },
            response: { type: 'string', description: 'The SMTP server’s final answer' },
            durationMs: { type: 'integer' },
          },
        }),
        ...errorResponses(400, 401, 404, 502),
      },
    },
  },
  '/api/v1/settings/connection-alerts': {
    get: {
      summary: 'Connection-failure notifications: threshold and switch',
      responses: { ...ok('The settings', ref('ConnectionAlerts')), ...errorResponses(401) },
    },
    patch: {
      summary: 'Change the threshold and/or switch notifications on or off',
      requestBody: { required: true, content: json(inputSchema(alertPatchSchema)) },
      responses: { ...ok('The settings', ref('ConnectionAlerts')), ...errorResponses(400, 401) },
    },
  },
  '/api/v1/outbox': {
    get: {
      summary: 'Notification mail not sent yet (pending, retrying, given up) and how many were sent',
      responses: { ...ok('The outbox', ref('OutboxStatus')), ...errorResponses(401) },
    },
  },
  '/api/v1/outbox/{id}/retry': {
    parameters: [idParam],
    post: {
      summary: 'Put a given-up notification mail back in line',
      responses: { ...ok('The mail', ref('OutboxMail')), ...errorResponses(400, 401, 404, 409) },
    },
  },
};

const outboxMail: Json = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    event: eventEnum,
    recipients: { type: 'array', items: { type: 'string' } },
    subject: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    attempts: { type: 'integer' },
    state: { type: 'string', enum: ['pending', 'retrying', 'failed', 'sent'] },
    nextAttemptAt: nullable('string'),
    sentAt: nullable('string'),
    failedAt: { type: ['string', 'null'], description: 'when sending was given up' },
    lastError: nullable('string'),
  },
};

const notificationSchemas: Json = {
  Notification: {
    type: 'object',
    properties: {
      id: { type: 'integer' },
      event: eventEnum,
      portal: nullable('string'),
      mailbox: nullable('string'),
      title: { type: 'string' },
      body: { type: 'string' },
      createdAt: { type: 'string', format: 'date-time' },
      readAt: nullable('string'),
    },
  },
  NotificationRuleInput: inputSchema(ruleInputSchema),
  NotificationRule: {
    type: 'object',
    properties: {
      id: { type: 'integer' },
      event: eventEnum,
      portal: { type: ['string', 'null'], description: 'null: every portal' },
      recipients: { type: 'array', items: { type: 'string' } },
      enabled: { type: 'boolean' },
      createdAt: { type: 'string', format: 'date-time' },
      updatedAt: { type: 'string', format: 'date-time' },
    },
  },
  SmtpInput: smtpInput,
  SmtpSettings: {
    type: 'object',
    properties: {
      host: { type: 'string' },
      port: { type: 'integer' },
      secure: { type: 'boolean' },
      starttls: { type: 'boolean' },
      username: nullable('string'),
      passwordSet: { type: 'boolean', description: 'A password is stored; it is never returned.' },
      from: { type: 'string' },
      caFile: nullable('string'),
      auth: { type: 'string', enum: ['password', 'oauth2', 'none'] },
      oauth: {
        description: 'OAuth settings (XOAUTH2); the client secret only as clientSecretSet',
        oneOf: [{ type: 'object' }, { type: 'null' }],
      },
      warnings: { type: 'array', items: { type: 'string' } },
    },
  },
  ConnectionAlerts: {
    type: 'object',
    properties: {
      threshold: {
        type: 'integer',
        minimum: 1,
        description: 'Consecutive rounds that could not connect before the notice (default 5)',
      },
      enabled: { type: 'boolean', description: 'Notifications on (default)' },
    },
    required: ['threshold', 'enabled'],
  },
  OutboxMail: outboxMail,
  OutboxStatus: {
    type: 'object',
    properties: {
      smtpConfigured: { type: 'boolean' },
      pending: { type: 'integer' },
      retrying: { type: 'integer' },
      failed: { type: 'integer' },
      sent: { type: 'integer' },
      unsent: { type: 'array', items: ref('OutboxMail') },
    },
  },
};

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
        summary:
          'Replace a mailbox’s settings (a missing password keeps the stored one, a missing `enabled` the state)',
        description:
          'While the mailbox is being fetched the save answers 409 FETCH_RUNNING, unless `pauseFetching=true`: then the mailbox is disabled with the save (the running round stops at its next batch) and stays disabled until enabled again.',
        parameters: [
          {
            name: 'pauseFetching',
            in: 'query',
            schema: { type: 'string', enum: ['true', 'false'] },
            description: 'pause fetching if a fetch is running, to save anyway',
          },
        ],
        requestBody: { required: true, content: json(ref('MailboxInput')) },
        responses: { ...ok('Updated', ref('Mailbox')), ...errorResponses(400, 401, 404, 409) },
      },
      delete: {
        summary: 'Remove a mailbox',
        description:
          'Its requests, conversations, intake log (raw mails), dropped attachments, error mails and notifications ' +
          'are kept and name it "<name> (removed #<id>)"; its password and OAuth tokens are discarded; the name ' +
          'is free again. 409 FETCH_RUNNING while a round holds its lease: disable it, then remove it.',
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
    '/api/v1/mailboxes/{name}/oauth/authorize': {
      parameters: [nameParam],
      post: {
        summary:
          "Start the OAuth consent: open `authorizationUrl`, sign in as the mailbox's user and approve; the provider returns the browser to `redirectUrl`",
        responses: {
          ...ok('The URL to open (valid 10 minutes)', ref('OAuthAuthorization')),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    '/api/v1/mailboxes/{name}/oauth': {
      parameters: [nameParam],
      get: {
        summary:
          'The OAuth token state (status, account, scope, expiry, last refresh, last error); never a token',
        responses: { ...ok('Token state', ref('OAuthTokens')), ...errorResponses(400, 401, 404) },
      },
      delete: {
        summary: "Discard the mailbox's tokens; it is not fetched until authorized again",
        responses: { '204': { description: 'Discarded' }, ...errorResponses(400, 401, 404) },
      },
    },
    '/api/v1/settings/smtp/oauth/authorize': {
      post: {
        summary:
          'Start the OAuth consent of the outgoing SMTP server (SASL XOAUTH2); sign in as its username',
        responses: {
          ...ok('The URL to open (valid 10 minutes)', ref('OAuthAuthorization')),
          ...errorResponses(400, 401),
        },
      },
    },
    '/api/v1/settings/smtp/oauth': {
      get: {
        summary: "The outgoing SMTP server's OAuth token state; never a token",
        responses: { ...ok('Token state', ref('OAuthTokens')), ...errorResponses(400, 401) },
      },
    },
    '/api/v1/oauth/complete': {
      post: {
        summary:
          'Complete a consent with the address the provider sent the browser to (when the browser could not reach /oauth/callback)',
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            properties: { callbackUrl: { type: 'string' } },
            required: ['callbackUrl'],
            additionalProperties: false,
          }),
        },
        responses: {
          ...ok('Authorized', ref('OAuthCompleted')),
          ...errorResponses(400, 401, 502),
        },
      },
    },
    '/api/v1/oauth/providers': {
      get: {
        summary: 'Provider presets (scope per protocol) and the redirect URL to register at the provider',
        responses: {
          ...ok('Presets', {
            type: 'object',
            properties: { redirectUrl: { type: 'string' }, presets: { type: 'object' } },
          }),
          ...errorResponses(401),
        },
      },
    },
    '/oauth/callback': {
      get: {
        summary:
          'Where the provider redirects the browser after the consent (no API key: the one-use state authorizes it). Answers an HTML page saying what happened and what to fix.',
        security: [],
        parameters: [
          { name: 'state', in: 'query', schema: { type: 'string' } },
          { name: 'code', in: 'query', schema: { type: 'string' } },
          { name: 'error', in: 'query', schema: { type: 'string' } },
        ],
        responses: {
          '200': { description: 'Authorized', content: { 'text/html': { schema: { type: 'string' } } } },
          '400': {
            description: 'Failed; the page says what to fix',
            content: { 'text/html': { schema: { type: 'string' } } },
          },
          '502': {
            description: 'The provider could not be reached',
            content: { 'text/html': { schema: { type: 'string' } } },
          },
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
              attachmentPolicy: {
                ...attachmentPolicy,
                description:
                  'Fields to change; the others keep their value. `null` restores a field’s default. ' +
                  'INVALID_SETTINGS names every bad field and nothing is saved.',
              },
            },
            minProperties: 1,
            additionalProperties: false,
          }),
        },
        responses: { ...ok('The portal', ref('Portal')), ...errorResponses(400, 401, 404) },
      },
    },
    '/api/v1/requests': {
      get: {
        summary: 'List requests, newest first',
        description: unknownFilter,
        parameters: [{ name: 'portal', in: 'query', schema: { type: 'string' } }, ...keysetParams],
        responses: { ...ok('A page of requests', page('RequestSummary')), ...errorResponses(400, 401, 404) },
      },
    },
    '/api/v1/requests/{id}': {
      parameters: [{ ...idParam, description: 'The request id (12 for request #12)' }],
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
          ...keysetParams,
        ],
        description: unknownFilter,
        responses: {
          ...ok('A page of log entries', page('IntakeLogEntry')),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    '/api/v1/system-log': {
      get: {
        summary: 'The system log, newest first: what Mailintake did and why (e.g. dropped attachments)',
        parameters: [
          {
            name: 'category',
            in: 'query',
            schema: { type: 'string', enum: [...SYSTEM_LOG_CATEGORIES] },
            description: 'Only this category; any other value is 400 INVALID_SETTINGS naming the categories',
          },
          ...keysetParams,
        ],
        responses: {
          ...ok('A page of system-log entries', page('SystemLogEntry')),
          ...errorResponses(400, 401),
        },
      },
    },
    '/api/v1/log/{id}/raw': {
      parameters: [
        {
          ...idParam,
          description:
            "An intake-log id (a log entry's id, or a request's or conversation's logId), not a request id",
        },
      ],
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
    ...notificationPaths,
    ...errorFolderPaths,
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
          'INVALID_SETTINGS: `details.fields` names every bad field; INVALID_JSON: the body is not valid JSON (the message gives line and column); INVALID_ID: an id in the path is not a positive whole number (`details.parameter` names it)',
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
      StoreUnavailable: {
        description:
          'STORE_FAILED: the database or the disk is unavailable (restart, failover, full); try again after Retry-After seconds',
        headers: { 'Retry-After': { schema: { type: 'integer' } } },
        content: json(ref('Error')),
      },
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
          protocol: { type: 'string', enum: ['imap', 'imaps', 'pop', 'pops', 'graph', 'ews'] },
          server: {
            type: 'string',
            description: 'Host name; for Graph the endpoint URL, for EWS the Connect URL',
          },
          port: { type: 'integer' },
          username: { type: 'string' },
          auth: {
            type: 'string',
            enum: ['password', 'oauth2', 'token'],
            description:
              'password; oauth2 (tokens from the consent, refreshed); token (Graph: a static accessToken)',
          },
          passwordSet: {
            type: 'boolean',
            description: 'A password is stored (auth "password"); it is never returned.',
          },
          oauth: {
            description: 'The OAuth settings (the client secret only as clientSecretSet) and the token state',
            oneOf: [
              {
                type: 'object',
                properties: {
                  provider: { type: 'string', enum: ['microsoft', 'google', 'generic'] },
                  flow: { type: 'string' },
                  tenant: nullable('string'),
                  clientId: { type: 'string' },
                  clientSecretSet: { type: 'boolean' },
                  authorizationUrl: nullable('string'),
                  tokenUrl: { type: 'string' },
                  scope: { type: 'string' },
                  issuer: { type: 'string' },
                  redirectUrl: { type: 'string' },
                  tokens: { oneOf: [ref('OAuthTokens'), { type: 'null' }] },
                  warnings: { type: 'array', items: { type: 'string' } },
                },
              },
              { type: 'null' },
            ],
          },
          emailAddress: { type: 'array', items: { type: 'string' } },
          starttls: { type: 'boolean' },
          caFile: nullable('string'),
          folder: { type: 'string' },
          afterFetch: {
            type: 'string',
            enum: ['mark-read', 'delete', 'move', 'leave'],
            description:
              'IMAP, Graph and EWS: mark-read (default), delete, move. POP3: delete (default) or leave.',
          },
          moveToFolder: nullable('string'),
          intervalSeconds: { type: 'integer' },
          idle: { type: 'boolean', description: 'IMAP IDLE push: new mail is taken in at once' },
          enabled: { type: 'boolean' },
          status: {
            type: 'string',
            enum: ['enabled', 'paused', 'stopped-by-errors', 'disabled'],
            description:
              'paused: saved during a fetch; stopped-by-errors: the error folder reached stopAfterErrors; ' +
              'disabled: by an admin. Enabling resumes from each.',
          },
          moveToErrorFolder: { type: 'boolean' },
          errorFolder: {
            type: ['string', 'null'],
            description: 'null for POP3, whose error mails Mailintake keeps (sealed)',
          },
          stopAfterErrors: nullable('integer'),
          notifyOnErrorFolder: { type: 'boolean' },
          errorMails: {
            type: 'integer',
            description: '"Total number of mails in error folder": not yet moved back to the inbox',
          },
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
      OAuthAuthorization: {
        type: 'object',
        properties: {
          authorizationUrl: { type: 'string' },
          redirectUrl: { type: 'string', description: 'Register exactly this at the provider' },
          expiresAt: { type: 'string', format: 'date-time' },
        },
      },
      OAuthTokens: {
        type: 'object',
        properties: {
          status: { type: 'string', enum: ['not-authorized', 'authorized', 'reauthorize-required'] },
          flow: { type: 'string', enum: ['authorization-code', 'client-credentials'] },
          account: nullable('string'),
          grantedScope: nullable('string'),
          accessTokenExpiresAt: nullable('string'),
          refreshTokenSet: { type: 'boolean' },
          obtainedAt: nullable('string'),
          lastRefreshAt: nullable('string'),
          refreshCount: { type: 'integer' },
          lastError: {
            oneOf: [
              { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
              { type: 'null' },
            ],
          },
          pending: {
            oneOf: [
              {
                type: 'object',
                properties: {
                  startedAt: { type: 'string' },
                  expiresAt: { type: 'string' },
                  startedBy: { type: 'string' },
                },
              },
              { type: 'null' },
            ],
          },
        },
      },
      OAuthCompleted: {
        type: 'object',
        properties: {
          owner: { type: 'string' },
          label: { type: 'string' },
          account: nullable('string'),
          grantedScope: { type: 'string' },
          accessTokenExpiresAt: nullable('string'),
          refreshTokenSet: { type: 'boolean' },
          warnings: { type: 'array', items: { type: 'string' } },
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
          skippedErrors: { type: 'integer' },
          movedToErrorFolder: { type: 'integer' },
          stopped: {
            type: ['string', 'null'],
            description:
              'the round ended early because the mailbox was disabled meanwhile: settings-changed, error-folder-limit, admin',
          },
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
          attachmentPolicy: ref('AttachmentPolicy'),
        },
      },
      AttachmentPolicy: attachmentPolicy,
      DroppedAttachment: droppedAttachment,
      SystemLogEntry: {
        type: 'object',
        properties: {
          id: { type: 'integer' },
          createdAt: { type: 'string', format: 'date-time' },
          actor: { type: 'string', description: 'api-key:<name>, cli:<os user> or system' },
          level: { type: 'string', enum: ['info', 'warn', 'error'] },
          category: { type: 'string' },
          message: { type: 'string' },
          details: { type: 'object' },
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
      ...notificationSchemas,
      ...errorFolderSchemas,
    },
  },
} as const;
