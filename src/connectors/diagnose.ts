import type { MailboxSettings } from '../config/mailbox-settings.js';
import type { ErrorCode } from '../errors.js';

/** The step of "fetch a sample mail" that failed, in the order a connection goes through them. */
export type ConnectionStep = 'settings' | 'dns' | 'connect' | 'tls' | 'login' | 'folder' | 'response';

export interface Diagnosis {
  step: ConnectionStep;
  /** What the step is, in an admin's words. */
  stepLabel: string;
  /** What to check, most likely cause first, with this mailbox's own values filled in. */
  checks: string[];
}

const STEP_OF: Partial<Record<ErrorCode, ConnectionStep>> = {
  INVALID_SETTINGS: 'settings',
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
      if (protocol === 'graph') {
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
