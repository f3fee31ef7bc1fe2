import type { Command } from 'commander';
import { type CliKit, clean, fields, printConsentUrl } from '../shared/cli-kit.js';
import { tokenStateFields } from './fields.js';
import type { OAuthService } from './service.js';
import type { CompletedAuthorization, StartedAuthorization } from './tokens.js';

/** The services these commands use (their slices of Services). */
type Kit = CliKit<{ oauth: OAuthService }>;

/**
 * OAuth 2.0 consent and token state: `mailbox authorize | oauth | oauth-revoke` (on the `mailbox` command) and
 * `oauth complete | providers`.
 */
export function addOAuthCommands(program: Command, mailbox: Command, k: Kit): void {
  const { leaf, answer, line } = k;
  leaf(mailbox, 'authorize', 'start the OAuth consent of a mailbox: prints the URL to open')
    .argument('<name>')
    .addHelpText(
      'after',
      "\nOpen the URL, sign in as the mailbox's user and approve. The provider then sends the browser to the\n" +
        'redirect URL (MAILINTAKE_PUBLIC_URL/oauth/callback), where the running service finishes the consent.\n' +
        'If that address is not reachable from the browser, copy the address the browser shows and run\n' +
        '"mailintake oauth complete \'<address>\'".',
    )
    .action(
      answer(
        (services, name: string) => services.oauth.authorize(name),
        (started, name) => printStarted(k, name, started),
      ),
    );
  leaf(mailbox, 'oauth', 'show the OAuth token state of a mailbox (never the tokens)')
    .argument('<name>')
    .action(
      answer(
        (services, name: string) => services.oauth.status(name),
        (view) => line(fields(tokenStateFields(view))),
      ),
    );
  leaf(mailbox, 'oauth-revoke', 'discard the OAuth tokens of a mailbox (not fetched until authorized again)')
    .argument('<name>')
    .action(
      answer(
        async (services, name: string) => {
          await services.oauth.revoke(name);
          return { revoked: name };
        },
        (_revoked, name) =>
          line(
            `Tokens of mailbox ${clean(name)} discarded. Run "mailintake mailbox authorize ${clean(name)}" to authorize it again.`,
          ),
      ),
    );
  const oauth = program.command('oauth').description('OAuth 2.0: finish a consent by hand, provider presets');
  leaf(oauth, 'complete', 'finish a consent with the address the provider sent the browser to')
    .argument('<address>', 'the whole address from the browser, with ?code=…&state=…')
    .action(
      answer(
        (services, address: string) => services.oauth.complete(address),
        (done) => printCompleted(k, done),
      ),
    );
  leaf(oauth, 'providers', 'the scope each provider preset fills per protocol, and the redirect URL').action(
    answer(
      (services) => services.oauth.providers(),
      (p) => printProviders(k, p),
    ),
  );
}

function printStarted(k: Kit, name: string, started: StartedAuthorization): void {
  printConsentUrl(
    k,
    `Open this URL in a browser and sign in as the user of mailbox ${clean(name)}:`,
    started.authorizationUrl,
  );
  k.line(
    `The provider returns the browser to ${started.redirectUrl} (register exactly this URL for the app;`,
  );
  k.line(`the service must be running there). The link is valid until ${started.expiresAt}.`);
  k.line(
    'If the browser cannot reach that address, copy the address it shows and run: mailintake oauth complete "<address>"',
  );
}

function printCompleted(k: Kit, done: CompletedAuthorization): void {
  k.line(
    `${clean(done.label.charAt(0).toUpperCase() + done.label.slice(1))} authorized${done.account ? ` for ${clean(done.account)}` : ''}.`,
  );
  k.line(
    fields([
      ['scope granted', done.grantedScope],
      ['refresh token', done.refreshTokenSet ? 'issued' : 'NOT issued'],
      ['access token until', done.accessTokenExpiresAt ?? '-'],
    ]),
  );
  for (const w of done.warnings) k.line(`warning: ${clean(w)}`);
}

function printProviders(k: Kit, p: ReturnType<OAuthService['providers']>): void {
  k.line(`Redirect URL to register at the provider: ${p.redirectUrl}`);
  for (const [provider, uses] of Object.entries(p.presets)) {
    k.line();
    k.line(`${provider}:`);
    for (const [use, v] of Object.entries(uses)) {
      k.line(
        `  ${use.padEnd(6)} ${v?.scope ?? '(type the scope)'}${v?.appScope ? `   app-only: ${v.appScope}` : ''}`,
      );
    }
  }
}
