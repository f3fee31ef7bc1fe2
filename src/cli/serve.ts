import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import type { Runtime } from '../app/runtime.js';
import type { Services } from '../features/services.js';
import { type CliKit, intArg } from '../features/shared/cli-kit.js';
import { MailintakeError } from '../kernel/errors.js';
import { createLogger } from '../kernel/logger.js';
import { storeLocation } from '../kernel/store-location.js';
import type { CliOutput } from './kit.js';
import { type CliRun, EXIT, withRuntime } from './run-command.js';

/**
 * `serve`: the REST API and the fetch scheduler in one process, until SIGINT/SIGTERM (or the io's stopSignal).
 * The HTTP server and the API are imported when it runs, not for `--help`.
 */
export function addServeCommand(program: Command, k: CliKit<Services>, run: CliRun): void {
  k.leaf(program, 'serve', 'run the REST API and the fetch scheduler')
    .option('--port <n>', 'port to listen on (default: MAILINTAKE_PORT or 8025)', intArg(0, 65535))
    .option('--host <host>', 'address to listen on (default: MAILINTAKE_HOST or 127.0.0.1)')
    .action(async (opts: { port?: number; host?: string; json?: boolean }) => {
      // Listen before the runtime opens: the port taken is known (--port 0, and the OAuth redirect URL is built
      // from it), and a port in use fails at once, before the store is touched.
      let listener: Listener | undefined;
      try {
        await withRuntime(
          run,
          !!opts.json,
          (rt) =>
            serveUntilStopped(rt, listener as Listener, {
              json: !!opts.json,
              out: run.o,
              database: storeLocation(run.env).database,
              stopSignal: run.io.stopSignal,
            }),
          {
            service: true,
            beforeOpen: async (config) => {
              listener = await listen(opts.host ?? config.host, opts.port ?? config.port);
              config.listeningPort = listener.port;
            },
          },
        );
      } finally {
        await listener?.close();
      }
    });
}

interface Listener {
  host: string;
  port: number;
  url: string;
  /** Hands the requests to the API (until then they are answered 503: the store is still opening). */
  serveWith(handler: (req: Request, env: unknown) => Response | Promise<Response>): void;
  /** Stops taking connections and waits for the open ones to end (idempotent). */
  close(): Promise<void>;
}

async function listen(host: string, port: number): Promise<Listener> {
  const { serve: serveHttp } = await import('@hono/node-server');
  let handler: ((req: Request, env: unknown) => Response | Promise<Response>) | undefined;
  const server = serveHttp({
    fetch: (req, env) =>
      handler
        ? handler(req, env)
        : new Response('Mailintake is starting', { status: 503, headers: { 'retry-after': '1' } }),
    port,
    hostname: host,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (e: NodeJS.ErrnoException) => {
      server.close();
      reject(
        e.code === 'EADDRINUSE'
          ? new MailintakeError(
              'PORT_IN_USE',
              `Port ${port} on ${host} is already in use by another program (another Mailintake service?). ` +
                'Stop that program, or choose another port with --port or MAILINTAKE_PORT.',
              { details: { host, port } },
            )
          : new MailintakeError('INTERNAL', `Cannot listen on ${host}:${port}: ${e.code ?? e.message}`, {
              details: { host, port },
            }),
      );
    });
  });
  const actual = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    host,
    port: actual,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    serveWith: (h) => {
      handler = h;
    },
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeIdleConnections' in server) server.closeIdleConnections();
      });
      return closing;
    },
  };
}

async function serveUntilStopped(
  rt: Runtime,
  listener: Listener,
  s: {
    json: boolean;
    out: CliOutput;
    /** The SQLite file or the PostgreSQL server and database, never the password. */
    database: string;
    stopSignal: AbortSignal | undefined;
  },
): Promise<number> {
  const { createApi } = await import('../http/app.js');
  const app = createApi(rt.services, {
    logger: {
      error: (msg, fields) =>
        s.out.err(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg, ...fields })}\n`),
    },
  });
  listener.serveWith((req, env) => app.fetch(req, env as never));
  const { dataDirWarnings } = await import('../store/db.js');
  const log = createLogger(rt.config.logLevel, s.out.err);
  for (const warning of dataDirWarnings(rt.config.dataDir)) {
    log.warn('file permissions', { warning });
    if (!s.json) s.out.err(`warning: ${warning}\n`);
  }
  rt.startScheduler();
  const { redirectUrl } = rt.services.oauth.providers();
  const consoleUrl = `${rt.services.users.publicUrl}/`;
  const admins = await countAdmins(rt.services.users);
  if (s.json) {
    s.out.printJson({
      listening: listener.url,
      host: listener.host,
      port: listener.port,
      dataDir: rt.config.dataDir,
      database: s.database,
      redirectUrl,
      consoleUrl,
      admins,
    });
  } else {
    s.out.line(
      `Mailintake listening on ${listener.url} (data: ${rt.config.dataDir}, database: ${s.database})`,
    );
    s.out.line(`OAuth redirect URL: ${redirectUrl}`);
    // the last line is what a newcomer does next: open the console, or first make the admin who can sign in
    s.out.line(
      admins === 0
        ? `No admin yet. Create the first one in another terminal: npx mailintake user create --email YOU@EXAMPLE.ORG --role admin --link, open the link it prints to set the password, then sign in at ${consoleUrl}`
        : `Open ${consoleUrl} in a browser and sign in.`,
    );
  }

  await untilStopped(s.stopSignal);
  if (!s.json) s.out.err('Stopping: finishing running fetches (a second Ctrl-C stops at once)…\n');
  // Stop taking requests, then let withRuntime's runtime.close() finish the running fetches and close the store.
  await listener.close();
  return EXIT.ok;
}

/** Active admins (null when the store could not say: the line then just names the URL). */
async function countAdmins(users: { list(): Promise<{ role: string; disabledAt: string | null }[]> }) {
  try {
    return (await users.list()).filter((u) => u.role === 'admin' && u.disabledAt === null).length;
  } catch {
    return null;
  }
}

/** Resolves on SIGINT, SIGTERM or the io's stopSignal, whichever comes first. */
function untilStopped(stopSignal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      stopSignal?.removeEventListener('abort', stop);
      resolve();
    };
    // Only the first signal is ours: with the handlers gone, a second Ctrl-C or SIGTERM ends the process at
    // once (the lease then expires on its own, nothing committed is lost).
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (stopSignal?.aborted) stop();
    else stopSignal?.addEventListener('abort', stop);
  });
}
