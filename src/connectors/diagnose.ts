import type { ErrorCode } from '../kernel/errors.js';
import type { MailboxSettings } from './settings.js';

/** The step of "fetch a sample mail" that failed, in the order a connection goes through them. */
export type ConnectionStep =
  | 'settings'
  | 'authorization'
  | 'token'
  | 'dns'
  | 'connect'
  | 'tls'
  | 'login'
  | 'folder'
  | 'response';

export interface Diagnosis {
  step: ConnectionStep;
  /** What the step is, in an admin's words. */
  stepLabel: string;
  /** What to check, most likely cause first, with this mailbox's own values filled in. */
  checks: string[];
}

const STEP_OF: Partial<Record<ErrorCode, ConnectionStep>> = {
  INVALID_SETTINGS: 'settings',
  OAUTH_NOT_AUTHORIZED: 'authorization',
  OAUTH_REAUTHORIZE_REQUIRED: 'authorization',
  OAUTH_CLIENT_REJECTED: 'token',
  OAUTH_PROVIDER_UNAVAILABLE: 'token',
  DNS_FAILED: 'dns',
  CONNECT_FAILED: 'connect',
  TLS_FAILED: 'tls',
  AUTH_FAILED: 'login',
  FOLDER_NOT_FOUND: 'folder',
  TIMEOUT: 'response',
  PROTOCOL_ERROR: 'response',
};

const LABEL: Record<ConnectionStep, string> = {
  settings: 'reading the mailbox settings',
  authorization: 'the OAuth consent for this mailbox',
  token: "getting an access token from the provider's token endpoint",
  dns: 'looking up the server name (DNS)',
  connect: 'connecting to the server (TCP)',
  tls: 'securing the connection (TLS)',
  login: 'logging in',
  folder: 'opening the folder',
  response: 'talking to the server',
};

/**
 * Says which step of reaching a mailbox failed and what to check, for every connection type — the
 * troubleshooting an admin otherwise looks up by error message. Only settings values appear (never secrets).
 */
export function diagnose(settings: MailboxSettings, code: ErrorCode): Diagnosis | null {
  const step = STEP_OF[code];
  if (!step) return null;
  const protocol = settings.protocol as string;
  const web = protocol === 'graph' || protocol === 'ews';
  const s = settings as MailboxSettings & { connectUrl?: string };
  const where =
    protocol === 'graph'
      ? `the Graph endpoint ${s.graphEndpoint}`
      : protocol === 'ews'
        ? `the Connect URL ${s.connectUrl ?? s.server}`
        : `"${s.server}"`;
  const name = web ? 'protocol' : protocol.startsWith('pop') ? 'POP3' : 'IMAP';
  const checks: string[] = [];
  switch (step) {
    case 'settings':
      checks.push('Every field named in the error: fix it and save the mailbox again.');
      break;
    case 'authorization':
      checks.push(
        `Authorize the mailbox: mailintake mailbox authorize ${s.name}, open the URL and sign in as "${s.username}".`,
        'Is the redirect URL (mailintake mailbox show) registered for the app, and does the browser reach it?',
      );
      if (code === 'OAUTH_REAUTHORIZE_REQUIRED') {
        checks.push(
          "The provider refused the stored refresh token: was the user's password changed, the consent withdrawn, or the app's access revoked by an administrator?",
        );
      }
      break;
    case 'token':
      checks.push(
        `Are "oauth.clientId" (${s.oauth?.clientId ?? '-'}) and "oauth.clientSecret" those of the app registration? Client secrets expire (Microsoft Entra: at most 24 months).`,
        `Can this machine reach ${s.oauth?.tokenUrl ?? 'the token URL'} (proxy, firewall, DNS)?`,
      );
      break;
    case 'dns':
      checks.push(
        `Is the host name in ${where} spelled right?`,
        `Can this machine resolve it (try: getent hosts ${s.server})? A name that only resolves inside your network needs this machine's DNS to see it.`,
      );
      break;
    case 'connect':
      if (web) {
        checks.push(`Does ${where} point at the right host and port (HTTPS, usually 443)?`);
      } else {
        checks.push(
          `Is port ${s.port} right for protocol "${protocol}"? Usual ports: IMAPS 993, IMAP with STARTTLS 143, POP3S 995, POP3 with STARTTLS 110.`,
          `Is ${name} access switched on at the mail server (Exchange: per mailbox; Gmail: in the account's settings)?`,
        );
      }
      checks.push(`Does a firewall or proxy between this machine and ${s.server} allow port ${s.port}?`);
      break;
    case 'tls':
      if (!web) {
        checks.push(
          `Do protocol and port match? "${protocol.startsWith('pop') ? 'pops' : 'imaps'}" speaks TLS at once (port ${protocol.startsWith('pop') ? 995 : 993}); "${protocol.startsWith('pop') ? 'pop' : 'imap'}" with starttls upgrades a plain connection (port ${protocol.startsWith('pop') ? 110 : 143}).`,
        );
      }
      checks.push(
        `Is the server's certificate valid for ${s.server} and not expired?`,
        'Is it signed by a certificate authority this machine trusts? For a private CA, set "caFile" to its PEM file.',
      );
      break;
    case 'login':
      if (settings.auth === 'oauth2') {
        checks.push(
          `Was the consent given by "${s.username}" itself? The server refuses another account's token.`,
          `Does the app registration hold the permission for ${name === 'protocol' ? (protocol === 'graph' ? 'Graph (Mail.ReadWrite)' : 'EWS (EWS.AccessAsUser.All, or full_access_as_app for app-only)') : name}, with admin consent where the organization requires it? The scope asked for is "${s.oauth?.scope ?? '-'}".`,
          `Is ${name === 'protocol' ? protocol.toUpperCase() : name} access switched on for the mailbox (Exchange Online: per mailbox; Gmail: in the account's settings)?`,
        );
      } else if (protocol === 'graph') {
        checks.push(
          'Is the access token current, issued for this mailbox, and does it carry Mail.ReadWrite?',
        );
      } else {
        checks.push(
          `Are "username" and the password the ones the server expects (often the full email address, not just the name)?`,
          'Microsoft 365 and Gmail have retired basic authentication for most mailboxes: use OAuth there.',
        );
        if (protocol === 'ews') {
          checks.push(
            'Does the EWS virtual directory allow the chosen authentication (Basic or NTLM)? Exchange Online has been switching EWS off since October 2026; EWS is for on-premises Exchange.',
          );
        } else {
          checks.push(`Is the account allowed to use ${name} (it can be switched off per mailbox)?`);
        }
      }
      break;
    case 'folder':
      checks.push(
        `Does the folder "${s.folder}" exist in this mailbox? Names are case-sensitive and nested folders use the server's separator (e.g. "INBOX/Support" or "INBOX.Support").`,
      );
      break;
    case 'response':
      checks.push(
        `Is ${where} a ${web ? (protocol === 'graph' ? 'Microsoft Graph' : 'Exchange Web Services') : name} server? Another service on that port answers in a way Mailintake cannot read.`,
        'Is the server overloaded or throttling this client? The next scheduled round tries again.',
      );
      break;
  }
  return { step, stepLabel: LABEL[step], checks };
}
