import type { Command } from 'commander';
import type { CliKit } from '../shared/cli-kit.js';
import type { ResealResult, SecretKeyService } from './service.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ secretKey: SecretKeyService }>;

/** `secret-key reseal`: the second step of a key rotation. */
export function addSecretKeyCommands(program: Command, k: Kit): void {
  const key = program
    .command('secret-key')
    .description('the key that seals passwords, tokens and error reports');
  k.leaf(
    key,
    'reseal',
    'after a key rotation: seal everything sealed with a MAILINTAKE_SECRET_KEY_PREVIOUS key again with the current key',
  ).action(
    k.answer(
      (services) => services.secretKey.reseal(),
      (r) => printResealed(k, r),
    ),
  );
}

/** What was resealed; exit 1 while something is still sealed with a key that is not configured. */
function printResealed(k: Kit, r: ResealResult): number | undefined {
  const { line } = k;
  line(
    `Mailbox secrets: ${r.mailboxSecrets.resealed} resealed, ${r.mailboxSecrets.current} already current.`,
  );
  line(
    `Instance secrets (SMTP passwords, the instance's and portals'): ${r.instanceSecrets.resealed} resealed, ${r.instanceSecrets.current} already current.`,
  );
  line(
    `Error reports and kept mails: ${r.errorMailBlobs.resealed} resealed, ${r.errorMailBlobs.current} already current.`,
  );
  line(`OAuth tokens: ${r.oauthTokens.resealed} resealed, ${r.oauthTokens.current} already current.`);
  const unreadable = [
    ...r.mailboxSecrets.unreadable.map((n) => `mailbox ${n}`),
    ...r.oauthTokens.unreadable.map((n) => `OAuth tokens of ${n}`),
    ...r.instanceSecrets.unreadable.map((n) => `setting ${n}`),
    ...r.errorMailBlobs.unreadable.map((b) => `blob ${b}`),
  ];
  if (unreadable.length > 0) {
    line(`Sealed with a key that is not configured (left as they are): ${unreadable.join(', ')}`);
    return 1;
  }
  line('Nothing is sealed with a previous key any more: MAILINTAKE_SECRET_KEY_PREVIOUS can be removed.');
  return undefined;
}
