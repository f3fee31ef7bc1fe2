import { MailintakeError } from '../kernel/errors.js';

/**
 * Where a connector gets its OAuth 2.0 access token. Connectors never see refresh tokens, client secrets or the
 * token endpoint: they ask for a token when they log in (IMAP, POP3, SMTP) or send a request (Graph, EWS), and
 * say when the server refused one. Implemented by features/oauth/tokens.ts (stored, refreshed, shared between processes).
 */
export interface AccessTokenSource {
  /**
   * `delegated`: the token acts as the account that consented (authorization code flow).
   * `app`: an application token (client credentials), with no user; EWS then impersonates the mailbox.
   */
  readonly kind: 'delegated' | 'app';
  /** A token that is valid for at least a minute more, refreshed first when needed. Throws OAUTH_* codes. */
  get(): Promise<string>;
  /**
   * The server refused `rejected` (IMAP/POP3 login failed, HTTP 401): a newer token. When `rejected` is still
   * the stored one, it is refreshed now; when another caller refreshed meanwhile, that token is returned. A
   * provider that refuses the refresh token throws OAUTH_REAUTHORIZE_REQUIRED.
   */
  renew(rejected: string): Promise<string>;
}

/** A token the admin obtained elsewhere (Graph's `accessToken` setting): never refreshed. */
export function staticTokenSource(token: string): AccessTokenSource {
  return {
    kind: 'delegated',
    get: async () => token,
    renew: async () => {
      throw new MailintakeError(
        'AUTH_FAILED',
        'The server refused the access token set in "accessToken", which Mailintake cannot refresh. Set a new one, or configure OAuth ("auth": "oauth2") so tokens are refreshed.',
      );
    },
  };
}

/** SASL XOAUTH2 (Google, Microsoft): `user=<u>^Aauth=Bearer <t>^A^A`, base64 by the caller's protocol. */
export function xoauth2Payload(user: string, token: string): string {
  return `user=${user}\x01auth=Bearer ${token}\x01\x01`;
}

/** SASL OAUTHBEARER (RFC 7628 §3.1): GS2 header with the authorization identity, host, port and the token. */
export function oauthbearerPayload(user: string, host: string, port: number, token: string): string {
  // RFC 5801: ',' and '=' in the authzid are escaped as =2C and =3D
  const authzid = user.replace(/=/g, '=3D').replace(/,/g, '=2C');
  return `n,a=${authzid},\x01host=${host}\x01port=${port}\x01auth=Bearer ${token}\x01\x01`;
}

/**
 * The token source a connection of a mailbox with `auth: oauth2` must have. The runtime always passes one, so a
 * missing source is a programming error, not a setting to fix. Undefined for other ways of logging in.
 */
export function requireTokenSource(
  settings: { auth: string; name: string },
  given: AccessTokenSource | undefined,
  connection: string,
): AccessTokenSource | undefined {
  if (settings.auth !== 'oauth2') return undefined;
  if (!given) {
    throw new MailintakeError(
      'INTERNAL',
      `Mailbox "${settings.name}" logs in with OAuth 2.0, but no token source was given to its ${connection} connection`,
      { retryable: false },
    );
  }
  return given;
}

/** Shorter strings are not tokens: replacing them everywhere would mangle messages, not protect anything. */
const MIN_TOKEN_LENGTH = 8;

/** Cuts access tokens out of a text (a server's answer, an error message), even if a server echoes one. */
export function scrubTokens(text: string, tokens: Iterable<string>): string {
  let out = text;
  for (const token of tokens) {
    if (token.length >= MIN_TOKEN_LENGTH) out = out.split(token).join('[token hidden]');
  }
  return out;
}

/**
 * The last few tokens a long-lived connection sent (it sees a new one every hour or so), to scrub from
 * whatever it reports.
 */
export class SentTokens implements Iterable<string> {
  private readonly tokens = new Set<string>();

  remember(token: string): void {
    this.tokens.delete(token);
    this.tokens.add(token);
    for (const old of this.tokens) {
      if (this.tokens.size <= 4) break;
      this.tokens.delete(old);
    }
  }

  scrub(text: string): string {
    return scrubTokens(text, this.tokens);
  }

  [Symbol.iterator](): Iterator<string> {
    return this.tokens[Symbol.iterator]();
  }
}
