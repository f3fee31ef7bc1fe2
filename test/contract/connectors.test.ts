import { afterAll, beforeAll } from 'vitest';
import { createConnector } from '../../src/connectors/factory.js';
import type { MailboxInput } from '../../src/connectors/settings.js';
import { parseMailboxInput } from '../../src/connectors/settings.js';
import { EwsDouble } from '../doubles/ews-double.js';
import { GraphDouble } from '../doubles/graph-double.js';
import { deliverMaildir, folderMessages, listInbox } from '../support/deliver.js';
import { type DovecotServer, startDovecot } from '../support/dovecot.js';
import { CONTRACT_CASES, type ContractTarget, connectorContract } from './connector-contract.js';

/**
 * The connector contract for every Dovecot-backed connection type, against one real Dovecot (one user per
 * target and case). The certificate names only "localhost", so connecting to 127.0.0.1 (the same server) is
 * a certificate name mismatch.
 */
let dovecot: DovecotServer;

interface Mode {
  id: string;
  name: string;
  protocol: 'imap' | 'imaps' | 'pop' | 'pops';
  port: () => number;
}

const MODES: Mode[] = [
  { id: 'imap', name: 'IMAP (STARTTLS)', protocol: 'imap', port: () => dovecot.ports.imap },
  { id: 'imaps', name: 'IMAPS', protocol: 'imaps', port: () => dovecot.ports.imaps },
  { id: 'pop', name: 'POP3 (STLS)', protocol: 'pop', port: () => dovecot.ports.pop3 },
  { id: 'pops', name: 'POP3S', protocol: 'pops', port: () => dovecot.ports.pop3s },
];

const password = (user: string) => `${user}-pw`;

beforeAll(async () => {
  dovecot = await startDovecot({
    certName: 'localhost',
    users: MODES.flatMap((m) =>
      CONTRACT_CASES.map((c) => ({ name: `${m.id}-${c}`, password: password(`${m.id}-${c}`) })),
    ),
  });
});
afterAll(async () => {
  await dovecot?.stop();
});

const ids = (mails: { messageId: string | null }[]) =>
  mails.map((m) => (m.messageId ?? '(none)').replace(/^<|>$/g, ''));

for (const mode of MODES) {
  const pop = mode.protocol === 'pop' || mode.protocol === 'pops';
  const target: ContractTarget = {
    id: mode.id,
    name: mode.name,
    traits: pop
      ? { keepAction: 'leave', listsKeptMail: true, folders: false }
      : { keepAction: 'mark-read', listsKeptMail: false, folders: true },
    ...(pop ? { noFoldersReason: 'POP3 has no folders' } : {}),
    mismatchedName: '127.0.0.1',
    connector: (user, over: Partial<MailboxInput> = {}) =>
      createConnector(
        parseMailboxInput({
          name: `contract-${user}`,
          protocol: mode.protocol,
          server: 'localhost',
          port: mode.port(),
          starttls: true,
          username: user,
          password: password(user),
          emailAddress: 'help@example.test',
          caFile: dovecot.caFile,
          ...(pop ? { afterFetch: 'leave' } : {}),
          ...over,
        }),
      ),
    deliver: async (user, raws) => {
      await deliverMaildir(dovecot, user, raws);
    },
    onServer: async (user) => ids(await listInbox(dovecot, user)),
    folderMessageIds: async (user, folder) => ids(await folderMessages(dovecot, user, folder)),
  };
  connectorContract(target);
}

/**
 * Microsoft Graph against its protocol double (no real Graph can run here). The contract's `over` speaks
 * IMAP/POP3 settings; they are translated: a wrong password is a wrong access token, a port or server name
 * is a different graphEndpoint.
 */
let graph: GraphDouble;
const GRAPH_TOKEN = 'contract-graph-token-0123456789';
const graphAddress = (user: string) => `${user}@graph.test`;

beforeAll(async () => {
  graph = await GraphDouble.start({ token: GRAPH_TOKEN });
  for (const c of CONTRACT_CASES) graph.addMailbox(graphAddress(`graph-${c}`));
});
afterAll(async () => {
  await graph?.stop();
});

connectorContract({
  id: 'graph',
  name: 'Microsoft Graph (double)',
  traits: { keepAction: 'mark-read', listsKeptMail: false, folders: true },
  mismatchedName: '127.0.0.1',
  connector: (user, over: Partial<MailboxInput> = {}) => {
    const { password, port, server, ...rest } = over;
    return createConnector(
      parseMailboxInput({
        name: `contract-${user}`,
        protocol: 'graph',
        graphEndpoint: `https://${server ?? 'localhost'}:${port ?? graph.port}`,
        accessToken: password ?? GRAPH_TOKEN,
        emailAddress: graphAddress(user),
        caFile: graph.caFile,
        ...rest,
      }),
    );
  },
  deliver: async (user, raws) => {
    await graph.deliver(graphAddress(user), raws);
  },
  onServer: async (user) => ids(graph.messages(graphAddress(user)).map((m) => ({ messageId: m.messageId }))),
  folderMessageIds: async (user, folder) =>
    ids(graph.messages(graphAddress(user), folder).map((m) => ({ messageId: m.messageId }))),
});

/**
 * Exchange Web Services against its protocol double (no Exchange can run here), once per way of logging in:
 * NTLM (Exchange's default, with Extended Protection's channel binding required) and Basic. The contract's
 * `over` speaks IMAP/POP3 settings; a port or server name becomes a different connectUrl.
 */
let ews: EwsDouble;
const ewsAddress = (user: string) => `${user}@ews.test`;
const EWS_MODES = [
  { id: 'ews', name: 'Exchange Web Services, NTLM (double)', ewsAuth: 'ntlm' },
  { id: 'ewsb', name: 'Exchange Web Services, Basic (double)', ewsAuth: 'basic' },
] as const;

beforeAll(async () => {
  ews = await EwsDouble.start({ auth: { ntlm: true, basic: true }, channelBinding: 'required' });
  for (const mode of EWS_MODES) {
    for (const c of CONTRACT_CASES) {
      ews.addAccount(`${mode.id}-${c}`, password(`${mode.id}-${c}`));
      ews.addMailbox(ewsAddress(`${mode.id}-${c}`));
    }
  }
});
afterAll(async () => {
  await ews?.stop();
});

for (const mode of EWS_MODES) {
  connectorContract({
    id: mode.id,
    name: mode.name,
    traits: { keepAction: 'mark-read', listsKeptMail: false, folders: true },
    mismatchedName: '127.0.0.1',
    connector: (user, over: Partial<MailboxInput> = {}) => {
      const { port, server, ...rest } = over;
      return createConnector(
        parseMailboxInput({
          name: `contract-${user}`,
          protocol: 'ews',
          connectUrl: `https://${server ?? 'localhost'}:${port ?? ews.port}/EWS/Exchange.asmx`,
          ewsAuth: mode.ewsAuth,
          username: user,
          password: password(user),
          emailAddress: ewsAddress(user),
          caFile: ews.caFile,
          ...rest,
        }),
      );
    },
    deliver: async (user, raws) => {
      await ews.deliver(ewsAddress(user), raws);
    },
    onServer: async (user) => ids(ews.messages(ewsAddress(user))),
    folderMessageIds: async (user, folder) => ids(ews.messages(ewsAddress(user), folder)),
  });
}
