import fs from 'node:fs';
import { MailintakeError } from '../kernel/errors.js';
import type { Logger } from '../kernel/logger.js';
import { type AccessTokenSource, requireTokenSource, staticTokenSource } from '../oauth/token-source.js';
import type { Connector, SampleMail } from './connector.js';
import { EwsConnector } from './ews/ews-connector.js';
import { GraphConnector, type GraphFetch } from './graph/graph-connector.js';
import { ImapConnector } from './imap/connector.js';
import { Pop3Connector } from './pop3/pop3-connector.js';
import type { MailboxSettings } from './settings.js';

export interface SamplingConnector extends Connector {
  /** The oldest mail in the folder, described without changing anything on the server. */
  sample(): Promise<SampleMail | null>;
}

/** The one place that maps a mailbox's protocol to its connector. */
export function createConnector(
  settings: MailboxSettings,
  opts: {
    logger?: Logger;
    /** Graph only: the HTTP client (tests drive failures with it). */
    fetch?: GraphFetch;
    /**
     * Graph and EWS: the wait before a retry after throttling (tests drive time with it). EWS has no HTTP-client
     * seam: NTLM authenticates a connection, which a fetch-like function cannot express; its tests drive
     * failures through the protocol double instead.
     */
    sleep?: (ms: number) => Promise<void>;
    /**
     * Where the connector gets OAuth 2.0 access tokens: required when `settings.auth` is "oauth2" (the runtime
     * passes the mailbox's stored tokens). Graph's static "accessToken" (`auth: "token"`) needs none.
     */
    tokens?: AccessTokenSource;
  } = {},
): SamplingConnector {
  const tokens = tokenSourceFor(settings, opts.tokens);
  let ca: Buffer | undefined;
  if (settings.caFile) {
    try {
      ca = fs.readFileSync(settings.caFile);
    } catch (err) {
      throw new MailintakeError('INVALID_SETTINGS', `caFile ${settings.caFile} cannot be read`, {
        cause: err,
        details: { fields: [{ field: 'caFile', message: 'file cannot be read' }] },
      });
    }
  }
  switch (settings.protocol) {
    case 'imap':
    case 'imaps':
      return new ImapConnector(settings, {
        ...(opts.logger ? { logger: opts.logger } : {}),
        ...(ca ? { ca } : {}),
        ...(tokens ? { tokens } : {}),
      });
    case 'pop':
    case 'pops':
      return new Pop3Connector(settings, {
        ...(opts.logger ? { logger: opts.logger } : {}),
        ...(ca ? { ca } : {}),
        ...(tokens ? { tokens } : {}),
      });
    case 'graph':
      return new GraphConnector(settings, {
        ...(opts.logger ? { logger: opts.logger } : {}),
        ...(ca ? { ca } : {}),
        ...(opts.fetch ? { fetch: opts.fetch } : {}),
        ...(opts.sleep ? { sleep: opts.sleep } : {}),
        ...(tokens ? { tokens } : {}),
      });
    case 'ews':
      return new EwsConnector(settings, {
        ...(opts.logger ? { logger: opts.logger } : {}),
        ...(ca ? { ca } : {}),
        ...(opts.sleep ? { sleep: opts.sleep } : {}),
        ...(tokens ? { tokens } : {}),
      });
  }
}

/**
 * The token source a mailbox logs in with, or undefined for a password login. OAuth without a source is a
 * programming error (the runtime always passes one), not something an admin can fix: INTERNAL.
 */
export function tokenSourceFor(
  settings: Pick<MailboxSettings, 'auth' | 'accessToken' | 'name'>,
  given: AccessTokenSource | undefined,
): AccessTokenSource | undefined {
  switch (settings.auth) {
    case 'oauth2':
      return requireTokenSource(settings, given, 'mailbox');
    case 'token':
      // Graph's static "accessToken": sent as it is, never refreshed (renew says to set a new one)
      return given ?? staticTokenSource(settings.accessToken ?? '');
    default:
      return undefined;
  }
}
