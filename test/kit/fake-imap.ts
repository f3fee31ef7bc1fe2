import { once } from 'node:events';
import net from 'node:net';
import { conditions } from './conditions.js';
import { bearerInSasl, SASL_TOKEN_REFUSED } from './fake-token-source.js';

/**
 * A scripted IMAP server on loopback (plain IMAP, no TLS), for what a real Dovecot cannot be made to do on
 * demand: lack IDLE, drop every connection, report EXISTS shrinking, refuse an OAuth token at will, offer only
 * some SASL mechanisms or none of the OAuth ones. It answers what a connector and the IDLE watcher send:
 * CAPABILITY, LOGIN, AUTHENTICATE, SELECT/EXAMINE of an empty or fixed-size folder, IDLE/DONE, LOGOUT; any
 * other command gets "OK done".
 *
 * With `accept`, AUTHENTICATE is answered as Dovecot's mech-oauth2 does: a good token → OK; a refused one → the
 * RFC 7628 error as a continuation ("+ <base64 JSON>"), the client's answer to it, then NO [AUTHENTICATIONFAILED].
 * Without it, AUTHENTICATE is just "OK done".
 */
export interface FakeImapOptions {
  /** The SASL mechanisms offered (AUTH=…). Default PLAIN. */
  mechanisms?: string[];
  /** Judges the bearer token of an AUTHENTICATE; the server then also offers SASL-IR, as Dovecot does. */
  accept?: (token: string) => Promise<boolean>;
  idle?: boolean;
  /** How many messages SELECT and EXAMINE report (UIDNEXT one above). Default 0. */
  exists?: number;
  /** Every connection is answered "* BYE" and closed instead of greeted. */
  dropAfterGreeting?: boolean;
}

export interface FakeImap {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Every command line received, without its tag (and DONE). */
  commands: string[];
  /** Decoded SASL payloads of AUTHENTICATE, in order. */
  payloads: string[];
  /** The mechanism of each AUTHENTICATE. */
  mechanisms: string[];
  /** What the client answered to an error continuation. */
  errorAnswers: string[];
  /** Sends an untagged line to every open connection. */
  push(line: string): void;
  /** Waits until `check` holds (re-checked on every command, connection and `recheck()`). */
  until(check: () => boolean): Promise<void>;
  /** Re-checks the waiting conditions (for events on the client side). */
  recheck(): void;
  close(): Promise<void>;
}

export async function startFakeImap(o: FakeImapOptions = {}): Promise<FakeImap> {
  const sockets = new Set<net.Socket>();
  const { until, recheck } = conditions();
  const caps = [
    'IMAP4rev1',
    ...(o.accept ? ['SASL-IR'] : []),
    ...(o.mechanisms ?? ['PLAIN']).map((m) => `AUTH=${m}`),
    ...(o.idle ? ['IDLE'] : []),
  ].join(' ');
  const exists = o.exists ?? 0;
  const fake: FakeImap = {
    port: 0,
    connections: 0,
    commands: [],
    payloads: [],
    mechanisms: [],
    errorAnswers: [],
    push: (line) => {
      for (const s of sockets) s.write(`${line}\r\n`);
    },
    until,
    recheck: () => recheck(),
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
  const server = net.createServer((socket) => {
    fake.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    recheck();
    if (o.dropAfterGreeting) {
      socket.end('* BYE going away\r\n');
      return;
    }
    socket.write(`* OK [CAPABILITY ${caps}] fake ready\r\n`);
    let buffer = '';
    let failedTag: string | null = null;
    let idleTag: string | null = null;
    let chain = Promise.resolve();
    const handle = async (line: string) => {
      if (failedTag) {
        // the client's answer to the error continuation ends the exchange
        fake.errorAnswers.push(line);
        socket.write(`${failedTag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`);
        failedTag = null;
        return;
      }
      if (line === 'DONE' && idleTag) {
        socket.write(`${idleTag} OK IDLE terminated\r\n`);
        idleTag = null;
        fake.commands.push('DONE');
        return;
      }
      const [tag = '*', command = '', ...args] = line.split(' ');
      const verb = command.toUpperCase();
      fake.commands.push([verb, ...args].join(' '));
      switch (verb) {
        case 'CAPABILITY':
          socket.write(`* CAPABILITY ${caps}\r\n${tag} OK done\r\n`);
          return;
        case 'LOGIN':
          socket.write(`${tag} OK [CAPABILITY ${caps}] logged in\r\n`);
          return;
        case 'AUTHENTICATE': {
          if (!o.accept) break;
          const [mechanism = '', initial = ''] = args;
          fake.mechanisms.push(mechanism.toUpperCase());
          const payload = Buffer.from(initial, 'base64').toString('utf8');
          fake.payloads.push(payload);
          if (await o.accept(bearerInSasl(payload))) {
            socket.write(`${tag} OK [CAPABILITY ${caps}] Logged in\r\n`);
            return;
          }
          failedTag = tag;
          socket.write(SASL_TOKEN_REFUSED);
          return;
        }
        case 'SELECT':
        case 'EXAMINE':
          socket.write(
            `* FLAGS (\\Seen \\Deleted)\r\n* ${exists} EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT ${exists + 1}] ok\r\n` +
              `${tag} OK [${verb === 'EXAMINE' ? 'READ-ONLY' : 'READ-WRITE'}] done\r\n`,
          );
          return;
        case 'IDLE':
          idleTag = tag;
          socket.write('+ idling\r\n');
          return;
        case 'LOGOUT':
          socket.end(`* BYE bye\r\n${tag} OK done\r\n`);
          return;
      }
      socket.write(`${tag} OK done\r\n`);
    };
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      for (let nl = buffer.indexOf('\r\n'); nl !== -1; nl = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        chain = chain.then(async () => {
          await handle(line);
          recheck();
        });
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fake.port = (server.address() as net.AddressInfo).port;
  return fake;
}
