import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { expect } from 'vitest';
import { openRuntime } from '../../src/app/compose.js';
import type { Runtime } from '../../src/app/runtime.js';
import { createApi } from '../../src/http/app.js';
import type { AppConfig } from '../../src/kernel/env.js';
import { createLogger } from '../../src/kernel/logger.js';
import { loadSecretBox } from '../../src/kernel/secret-box.js';
import { openStore } from '../../src/store/db.js';
import { type CliRun, cliRunner } from './cli.js';
import { runConsent } from './consent.js';
import { type EngineName, freshConfig } from './engines.js';
import { type OAuthTestClient, type OAuthTestServer, startOAuthServer } from './oauth-server.js';
import { checkResponses } from './openapi-check.js';

/**
 * What an OAuth 2.0 end-to-end test runs Mailintake against: a real authorization server (oidc-provider, see
 * oauth-server.ts) with the test's users and clients, the real runtime on a fresh configuration of the engine,
 * and the real API served on loopback at MAILINTAKE_PUBLIC_URL, so that a consent driven like a browser lands
 * on Mailintake's own /oauth/callback. The mail servers (Dovecot, the Graph and EWS doubles) are the test's own.
 *
 * Everything Mailintake says goes into `transcript`: log lines (at debug), API answers, the pages of the
 * consent, CLI output. A test checks at the end that no secret was ever shown there.
 */
export interface OAuthHarnessOptions {
  /** The authorization server's users; each signs in with the password `<name>-pw`. */
  users: string[];
  /**
   * The secrets of the two clients every test registers with Mailintake's redirect URL: "helpdesk", and
   * "helpdesk-short", whose access tokens live 2 s (every round after that needs a refresh).
   */
  secrets: { helpdesk: string; short: string };
  /** More clients the test uses. */
  clients?: OAuthTestClient[];
  /** The scope a mailbox of the "helpdesk" client asks for (`helpdeskOAuth`). */
  scope: string;
}

export interface OAuthHarness {
  auth: OAuthTestServer;
  rt: Runtime;
  /** Where the API answers: http://127.0.0.1:PORT, also MAILINTAKE_PUBLIC_URL. */
  base: string;
  config: AppConfig;
  /** The environment of the configuration, for the CLI. */
  env: Record<string, string>;
  /** Everything Mailintake said; a test adds what else it was shown. */
  transcript: string[];
  /** A request to the API with the test's key; the answer goes into the transcript. */
  api(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }>;
  /** The CLI in-process, on this configuration; its output goes into the transcript. */
  cli(args: string[]): Promise<CliRun>;
  /**
   * Starts the consent for a mailbox through the API and signs in at the provider as `user`; the browser lands
   * on Mailintake's page, whose answer is returned (and goes into the transcript).
   */
  consent(
    name: string,
    user: string,
    decision?: 'approve' | 'deny',
  ): Promise<{ status: number | undefined; body: string; callbackUrl: string }>;
  /** The tokens Mailintake stored for a mailbox, opened with its key (the test's view into the sealed row). */
  storedTokens(name: string): Promise<{ accessToken: string; refreshToken?: string }>;
  /** A mailbox's `oauth` settings for the "helpdesk" client at this authorization server; `over` changes any. */
  helpdeskOAuth(over?: Record<string, unknown>): Record<string, unknown>;
  close(): Promise<void>;
}

/** Polls an asynchronous condition the servers answer (never a bare sleep), bounded. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export async function startOAuthHarness(engine: EngineName, o: OAuthHarnessOptions): Promise<OAuthHarness> {
  const transcript: string[] = [];
  // what is open so far, closed in reverse order (also when starting fails half-way)
  const opened: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const f of opened.splice(0).reverse()) await f();
  };
  try {
    const auth = await startOAuthServer({ users: o.users.map((name) => ({ name, password: `${name}-pw` })) });
    opened.push(() => auth.close());
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const fresh = await freshConfig(engine, { MAILINTAKE_PUBLIC_URL: base });
    opened.push(() => fresh.cleanup());
    const redirect = `${base}/oauth/callback`;
    await auth.addClient({
      clientId: 'helpdesk',
      clientSecret: o.secrets.helpdesk,
      redirectUris: [redirect],
    });
    await auth.addClient({
      clientId: 'helpdesk-short',
      clientSecret: o.secrets.short,
      redirectUris: [redirect],
      accessTokenTtlSeconds: 2,
    });
    for (const client of o.clients ?? []) await auth.addClient(client);
    const rt = await openRuntime(fresh.config, {
      logger: createLogger('debug', (line) => {
        transcript.push(line);
      }),
    });
    opened.push(() => rt.close());
    const app = createApi(rt.services, {
      logger: { error: (m, f) => transcript.push(m, JSON.stringify(f)) },
    });
    checkResponses(app);
    const http: ServerType = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' });
    opened.push(() => new Promise((r) => http.close(r)));
    const apiKey = (await rt.services.apiKeys.create('oauth-test')).key;
    const store = await openStore({ databaseUrl: fresh.config.databaseUrl, dataDir: fresh.config.dataDir });
    opened.push(() => store.close());
    const box = loadSecretBox({ secretKey: fresh.config.secretKey, dataDir: fresh.config.dataDir });

    const api: OAuthHarness['api'] = async (method, path, body) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      transcript.push(text);
      return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    };

    return {
      auth,
      rt,
      base,
      config: fresh.config,
      env: fresh.env,
      transcript,
      api,
      cli: cliRunner(() => fresh.env, transcript),
      consent: async (name, user, decision = 'approve') => {
        const started = await api('POST', `/api/v1/mailboxes/${name}/oauth/authorize`);
        expect(started.status).toBe(200);
        const result = await runConsent(String(started.json.authorizationUrl), {
          user,
          password: `${user}-pw`,
          decision,
          followCallback: true,
        });
        if (result.providerError) throw new Error(`provider error page: ${result.providerError.body}`);
        transcript.push(result.body ?? '');
        return { status: result.status, body: result.body ?? '', callbackUrl: result.callbackUrl };
      },
      storedTokens: async (name) => {
        const { id } = (await rt.services.mailboxes.get(name)) as { id: number };
        const row = await store.db
          .selectFrom('oauth_tokens')
          .selectAll()
          .where('owner', '=', `mailbox:${id}`)
          .executeTakeFirstOrThrow();
        return JSON.parse(box.open(row.sealed)) as { accessToken: string; refreshToken?: string };
      },
      helpdeskOAuth: (over = {}) => ({
        provider: 'generic',
        clientId: 'helpdesk',
        clientSecret: o.secrets.helpdesk,
        authorizationUrl: auth.authorizationUrl,
        tokenUrl: auth.tokenUrl,
        scope: o.scope,
        ...over,
      }),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
