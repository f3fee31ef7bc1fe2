import type { SmtpConfig } from './smtp-settings.js';
import { tlsMode } from './smtp-settings.js';
import { openSmtpTransport } from './smtp-transport.js';

/** What a test mail did: the server took it for `to`, with this answer, in this many milliseconds. */
export interface SmtpTestResult {
  ok: true;
  to: string;
  /** The server's final answer, e.g. "250 OK queued as …". */
  response: string;
  durationMs: number;
}

/**
 * Sends a test mail through `config` now, not through the outbox: the admin sees at once whether the server
 * takes mail (or the coded error: DNS_FAILED, CONNECT_FAILED, TLS_FAILED, AUTH_FAILED, SEND_FAILED…).
 * `whatGoesThere` ends the text: which mail goes out this way.
 */
export async function sendTestMail(
  config: SmtpConfig,
  to: string,
  whatGoesThere: string,
): Promise<SmtpTestResult> {
  const started = Date.now();
  const transport = await openSmtpTransport(config, config.tokens ? { tokens: config.tokens } : {});
  try {
    const result = await transport.send({
      to: [to],
      subject: 'Mailintake test mail',
      text: [
        'This is a test mail from Mailintake.',
        '',
        `It was sent through ${config.host}:${config.port} (${tlsMode(config)}) as ${config.from.address}.`,
        whatGoesThere,
      ].join('\n'),
      headers: { 'X-Mailintake-Event': 'test' },
    });
    return { ok: true, to, response: result.response, durationMs: Date.now() - started };
  } finally {
    transport.close();
  }
}
