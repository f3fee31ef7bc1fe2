import { DEFAULT_ERROR_FOLDER, DEFAULT_GRAPH_ENDPOINT, DEFAULT_PORTS } from '../../connectors/settings.js';
import { providerPresets } from '../../oauth/providers.js';
import type { MailboxView } from './views.js';

/**
 * The mailbox form of the console, as flat string fields, and its translation to and from the service's
 * settings (the same JSON the API and the CLI's files take). The selected protocol and authentication decide
 * which fields are read: a field of another connection type that the browser still sends (hidden by the
 * script, or typed before switching) is never passed on, so it cannot be refused as "not used with ...".
 */
export type FormValues = Record<string, string>;

export type Protocol = 'imap' | 'imaps' | 'pop' | 'pops' | 'ews' | 'graph';
export const PROTOCOLS: { value: Protocol; label: string }[] = [
  { value: 'imaps', label: 'IMAPS (IMAP over TLS)' },
  { value: 'imap', label: 'IMAP (with STARTTLS)' },
  { value: 'pops', label: 'POPS (POP3 over TLS)' },
  { value: 'pop', label: 'POP (POP3 with STLS)' },
  { value: 'ews', label: 'Exchange Web Services (EWS)' },
  { value: 'graph', label: 'Microsoft Graph' },
];

export const isMailProtocol = (p: string) => p === 'imap' || p === 'imaps' || p === 'pop' || p === 'pops';
export const isPopProtocol = (p: string) => p === 'pop' || p === 'pops';

/** The selected protocol (imaps when missing or unknown). */
export function protocolOf(v: FormValues): Protocol {
  return (PROTOCOLS.find((p) => p.value === v.protocol)?.value ?? 'imaps') as Protocol;
}

/** basic, oauth, or token (a Graph mailbox with a bearer token set through the API: kept as it is). */
export function authOf(v: FormValues): 'basic' | 'oauth' | 'token' {
  if (protocolOf(v) === 'graph') return v.auth === 'token' ? 'token' : 'oauth';
  return v.auth === 'oauth' ? 'oauth' : 'basic';
}

/** The scope a provider preset fills for a protocol (and flow); '' for generic (the admin types it). */
export function presetScope(provider: string, protocol: string, flow: string): string {
  const presets = providerPresets() as Record<
    string,
    Record<string, { scope: string | null; appScope: string | null }>
  >;
  const p = presets[provider]?.[protocol];
  if (!p) return '';
  return (flow === 'client-credentials' ? p.appScope : p.scope) ?? '';
}

/** Every preset scope, for the script that fills the Scope field when the provider or protocol changes. */
export function presetScopes(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const provider of ['microsoft', 'google']) {
    for (const { value } of PROTOCOLS) {
      for (const flow of ['authorization-code', 'client-credentials']) {
        const scope = presetScope(provider, value, flow);
        if (scope) out[`${provider}/${value}/${flow}`] = scope;
      }
    }
  }
  return out;
}

/** A new mailbox's form. */
export function newMailboxValues(): FormValues {
  return {
    protocol: 'imaps',
    auth: 'basic',
    portal: 'default',
    folder: 'INBOX',
    intervalSeconds: '60',
    idle: 'on',
    starttls: 'on',
    notifyOnErrorFolder: 'on',
    oauthProvider: 'generic',
    oauthFlow: 'authorization-code',
    graphEndpoint: DEFAULT_GRAPH_ENDPOINT,
    ewsAuth: 'ntlm',
  };
}

/** A stored mailbox as the form shows it (secrets never: the form says whether one is stored). */
export function viewValues(m: MailboxView): FormValues {
  const on = (b: boolean) => (b ? 'on' : '');
  const v: FormValues = {
    name: m.name,
    portal: m.portal,
    protocol: m.protocol,
    auth: m.auth === 'oauth2' ? 'oauth' : m.auth === 'token' ? 'token' : 'basic',
    username: m.username,
    emailAddress: m.emailAddress.join(', '),
    starttls: on(m.starttls),
    caFile: m.caFile ?? '',
    folder: m.folder,
    afterFetch: m.afterFetch,
    moveToFolder: m.moveToFolder ?? '',
    intervalSeconds: String(m.intervalSeconds),
    idle: on(m.idle),
    replyAddress: on(m.replyAddress),
    moveToErrorFolder: on(m.moveToErrorFolder),
    errorFolder: m.errorFolder ?? '',
    stopAfterErrors: m.stopAfterErrors === null ? '' : String(m.stopAfterErrors),
    notifyOnErrorFolder: on(m.notifyOnErrorFolder),
    ewsAuth: m.ewsAuth ?? 'ntlm',
    graphEndpoint: DEFAULT_GRAPH_ENDPOINT,
    oauthProvider: m.oauth?.provider ?? 'generic',
    oauthFlow: m.oauth?.flow ?? 'authorization-code',
    oauthTenant: m.oauth?.tenant ?? '',
    clientId: m.oauth?.clientId ?? '',
    authorizationUrl: m.oauth?.authorizationUrl ?? '',
    tokenUrl: m.oauth?.tokenUrl ?? '',
    scope: m.oauth?.scope ?? '',
  };
  if (m.protocol === 'graph') v.graphEndpoint = m.server;
  else if (m.protocol === 'ews') v.connectUrl = m.server;
  else {
    v.server = m.server;
    v.port = String(m.port);
  }
  return v;
}

/** A whole number as typed, else the text itself (the service then says it must be a number). */
function num(s: string | undefined): number | string | undefined {
  const t = (s ?? '').trim();
  if (t === '') return undefined;
  return /^\d{1,9}$/.test(t) ? Number(t) : t;
}

/**
 * The service's input from the form. Empty text fields are left out (the service's defaults apply; an empty
 * password or client secret keeps the stored one). `isNew`: the "start fetching" switch is only on the new form;
 * an edit keeps the mailbox's state (Pause and Resume change it).
 */
export function formInput(v: FormValues, isNew: boolean): Record<string, unknown> {
  const protocol = protocolOf(v);
  const auth = authOf(v);
  const text = (k: string) => {
    const t = (v[k] ?? '').trim();
    return t === '' ? undefined : t;
  };
  const secret = (k: string) => (v[k] ? v[k] : undefined);
  const out: Record<string, unknown> = {
    name: text('name') ?? '',
    portal: text('portal'),
    protocol,
    emailAddress: v.emailAddress ?? '',
    replyAddress: v.replyAddress === 'on',
  };
  if (isMailProtocol(protocol)) {
    out.server = text('server') ?? '';
    out.port = num(v.port);
    out.username = text('username') ?? '';
    if (protocol === 'imap' || protocol === 'pop') out.starttls = v.starttls === 'on';
    out.caFile = text('caFile');
    if (!isPopProtocol(protocol)) out.folder = text('folder');
    if (protocol === 'imap' || protocol === 'imaps') out.idle = v.idle === 'on';
  } else if (protocol === 'ews') {
    out.connectUrl = text('connectUrl') ?? '';
    out.username = text('username');
    out.folder = text('folder');
    if (auth === 'basic') out.ewsAuth = v.ewsAuth === 'basic' ? 'basic' : 'ntlm';
  } else {
    out.graphEndpoint = text('graphEndpoint');
    out.folder = text('folder');
  }
  if (auth === 'basic') out.password = secret('password');
  if (auth === 'oauth') {
    const provider = ['microsoft', 'google'].includes(v.oauthProvider ?? '') ? v.oauthProvider : 'generic';
    out.oauth = {
      provider,
      ...(provider === 'microsoft' ? { tenant: text('oauthTenant') } : {}),
      ...(protocol === 'graph' || protocol === 'ews'
        ? { flow: v.oauthFlow === 'client-credentials' ? 'client-credentials' : 'authorization-code' }
        : {}),
      clientId: text('clientId') ?? '',
      clientSecret: secret('clientSecret'),
      authorizationUrl: text('authorizationUrl'),
      tokenUrl: text('tokenUrl'),
      scope: text('scope'),
    };
  }
  const afterFetch = text('afterFetch');
  out.afterFetch = afterFetch;
  if (afterFetch === 'move') out.moveToFolder = text('moveToFolder');
  out.intervalSeconds = num(v.intervalSeconds);
  out.moveToErrorFolder = v.moveToErrorFolder === 'on';
  if (!isPopProtocol(protocol)) out.errorFolder = text('errorFolder');
  out.stopAfterErrors = num(v.stopAfterErrors);
  out.notifyOnErrorFolder = v.notifyOnErrorFolder === 'on';
  if (isNew) out.enabled = v.enabled === 'on';
  return JSON.parse(JSON.stringify(out)) as Record<string, unknown>; // drops the fields left undefined
}

/** The service's field paths (settings names, `oauth.*`) as the form's field names. */
const FORM_FIELD: Record<string, string> = {
  oauth: 'clientId',
  'oauth.provider': 'oauthProvider',
  'oauth.tenant': 'oauthTenant',
  'oauth.flow': 'oauthFlow',
  'oauth.clientId': 'clientId',
  'oauth.clientSecret': 'clientSecret',
  'oauth.authorizationUrl': 'authorizationUrl',
  'oauth.tokenUrl': 'tokenUrl',
  'oauth.scope': 'scope',
  'oauth.issuer': 'authorizationUrl',
  'oauth.clientAuthentication': 'tokenUrl',
  accessToken: 'auth',
};

/** Errors by the form's field names; the service's names are kept for fields the form does not have. */
export function formErrors(fields: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, message] of Object.entries(fields)) {
    const name = FORM_FIELD[field] ?? field;
    out[name] = out[name] ? `${out[name]}; ${message}` : message;
  }
  return out;
}

/** The placeholders of fields whose default depends on the protocol. */
export function defaultsFor(protocol: Protocol) {
  return {
    port: String(DEFAULT_PORTS[protocol]),
    errorFolder: DEFAULT_ERROR_FOLDER,
    afterFetch: isPopProtocol(protocol) ? 'delete' : 'mark-read',
  };
}

/** The form's own field names: errors for any other name are listed at the top. */
export const FORM_FIELDS = [
  'name',
  'portal',
  'protocol',
  'auth',
  'server',
  'port',
  'caFile',
  'connectUrl',
  'graphEndpoint',
  'emailAddress',
  'replyAddress',
  'username',
  'password',
  'ewsAuth',
  'folder',
  'oauthProvider',
  'oauthTenant',
  'oauthFlow',
  'clientId',
  'clientSecret',
  'authorizationUrl',
  'tokenUrl',
  'scope',
  'afterFetch',
  'moveToFolder',
  'intervalSeconds',
  'errorFolder',
  'stopAfterErrors',
];
