import type { SampleMail } from '../../connectors/connector.js';
import { diagnose } from '../../connectors/diagnose.js';
import type { SamplingConnector } from '../../connectors/factory.js';
import type { MailboxSettings } from '../../connectors/settings.js';
import { toMailintakeError } from '../../kernel/errors.js';

/**
 * The reference's "fetch a sample mail": connect, log in, describe the oldest mail, change nothing. A failure
 * says which step failed (DNS, TCP, TLS, login, folder) and what to check, in the error's details: the API
 * answers it with the code, the CLI prints it under the message.
 */
export async function testConnection(
  settings: MailboxSettings,
  connect: () => SamplingConnector,
): Promise<{ ok: true; sample: SampleMail | null; durationMs: number }> {
  const started = Date.now();
  const explained = (err: unknown) => {
    const coded = toMailintakeError(err, 'INTERNAL');
    const d = diagnose(settings, coded.code);
    if (d) Object.assign(coded.details, d);
    return coded;
  };
  let connector: SamplingConnector;
  try {
    connector = connect();
  } catch (err) {
    throw explained(err);
  }
  try {
    await connector.open();
    const sample = await connector.sample();
    return { ok: true, sample, durationMs: Date.now() - started };
  } catch (err) {
    throw explained(err);
  } finally {
    await connector.close();
  }
}
