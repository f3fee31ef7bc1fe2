import { Csrf, Field, Message, SelectField } from '../shared/console-ui.js';
import {
  authOf,
  defaultsFor,
  FORM_FIELDS,
  type FormValues,
  PROTOCOLS,
  presetScope,
  presetScopes,
  protocolOf,
} from './form.js';
import { Check, Shown } from './form-parts.js';

/**
 * The mailbox form: the reference's three connection types (email protocols, EWS, Graph) with its field names
 * and help texts, basic or OAuth authentication, the schedule and the error folder. Every field is in the page;
 * those of another connection type or authentication carry `hidden`, decided here from the selected values, so
 * the form works without script ("Show fields" re-renders it), and assets/mailboxes.js switches them at once.
 */

const MAIL = 'imap imaps pop pops';
const FOLDERS = 'imap imaps ews graph';

export interface MailboxFormProps {
  action: string;
  csrf: string;
  values: FormValues;
  errors: Record<string, string>;
  message?: string | undefined;
  isNew: boolean;
  /** Edit: whether a password / client secret is stored (never shown). */
  passwordSet?: boolean;
  clientSecretSet?: boolean;
  /** Edit: "total number of mails in error folder". */
  errorMails?: number;
  redirectUrl: string;
  /** The save found the mailbox being fetched: ask to pause it first. */
  fetchRunning?: boolean;
}

export function MailboxForm(props: MailboxFormProps) {
  const { values: v, errors: e } = props;
  const protocol = protocolOf(v);
  const defaults = defaultsFor(protocol);
  const provider = v.oauthProvider ?? 'generic';
  const scope = v.scope || presetScope(provider, protocol, v.oauthFlow ?? 'authorization-code');
  const f = (name: string) => ({ name, value: v[name], error: e[name] });
  // A stored secret is never sent to the browser (v holds none on a first edit). One the admin typed in the
  // form that came back with an error is theirs, in this answer to their own POST (never cached): kept, so that
  // nothing typed is lost, and so that "Pause fetching and save" saves the new secret, not the stored one.
  const typedSecret = (name: string) => v[name] ?? '';
  const keeps = (set: boolean | undefined, what: string) =>
    set ? ` A ${what} is stored (never shown): leave this empty to keep it.` : '';
  // problems the form has no field for (e.g. a setting only the API takes) are listed at the top
  const shownNames = new Set(FORM_FIELDS);
  const other = Object.entries(e).filter(([k]) => !shownNames.has(k));
  return (
    <form
      method="post"
      action={props.action}
      class="mailbox-form"
      id="mailbox-form"
      data-scopes={JSON.stringify(presetScopes())}
      novalidate
    >
      <Csrf token={props.csrf} />
      <Message error={props.message} />
      {other.length ? (
        <ul class="field-error">
          {other.map(([k, m]) => (
            <li>
              <code>{k}</code>: {m}
            </li>
          ))}
        </ul>
      ) : null}
      {props.fetchRunning ? (
        <div class="confirm" role="alert">
          <p>
            <strong>This mailbox is being fetched right now.</strong> To save, fetching is paused: the running
            round finishes the batch it is on and stops, the rest waits on the server. The mailbox then stays
            paused until you resume it.
          </p>
          <button type="submit" name="pauseFetching" value="1">
            Pause fetching and save
          </button>{' '}
          <a href={props.action}>Cancel</a>
        </div>
      ) : null}
      <fieldset>
        <legend>Connection</legend>
        <Field {...f('name')} label="Name" help="Letters, digits, dot, hyphen and underscore." />
        <Field {...f('portal')} label="Portal" help="The help desk whose requests this mailbox creates." />
        <SelectField
          {...f('protocol')}
          value={protocol}
          label="Protocol"
          options={PROTOCOLS}
          help="Select the protocol to connect to the mailbox: an email protocol, Exchange Web Services (on-premises Exchange) or Microsoft Graph (Microsoft 365)."
        />
        {authOf(v) === 'token' ? (
          <input type="hidden" name="auth" value="token" id="f-auth" />
        ) : (
          <Shown v={v} for={`${MAIL} ews`}>
            <SelectField
              {...f('auth')}
              value={authOf(v) === 'oauth' ? 'oauth' : 'basic'}
              label="Authentication"
              options={[
                { value: 'basic', label: 'Basic authentication (user name and password)' },
                { value: 'oauth', label: 'OAuth authentication' },
              ]}
            />
          </Shown>
        )}
        <button type="submit" name="intent" value="show-fields" class="secondary show-fields">
          Show fields
        </button>
      </fieldset>

      <fieldset>
        <legend>Mail server</legend>
        <Shown v={v} for={MAIL}>
          <Field
            {...f('server')}
            label="Server Name / IP Address"
            help="Provide the name or IP address of the mail server from where emails should be fetched."
          />
          <Field
            {...f('port')}
            label="Port"
            placeholder={defaults.port}
            help={`Specify the port number as per the selected protocol (default ${defaults.port}).`}
          />
          <Shown v={v} for="imap pop">
            <Check
              name="starttls"
              label="Require STARTTLS"
              v={v}
              help="Upgrade the plain connection to TLS before logging in. Turn off only for a server without TLS."
            />
          </Shown>
          <Field
            {...f('caFile')}
            label="CA file (optional)"
            help="PEM file of a private certificate authority to trust, on the Mailintake machine. Certificates are always verified."
          />
        </Shown>
        <Shown v={v} for="ews">
          <Field
            {...f('connectUrl')}
            label="Connect URL"
            type="url"
            help="Provide the EWS URL to connect to the server (for example, https://<host_name>/EWS/Exchange.asmx)."
          />
        </Shown>
        <Shown v={v} for="graph">
          <Field
            {...f('graphEndpoint')}
            label="Graph Endpoint"
            type="url"
            help="The global graph endpoint is pre-populated here. Modify the endpoint if your organization comes under a specific national cloud (https://graph.microsoft.us, https://dod-graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn)."
          />
        </Shown>
        <Field
          {...f('emailAddress')}
          label="Email Address"
          help="Enter the email address of the mailbox to fetch incoming emails as requests. You can also specify alias email addresses using a comma."
        />
        <Shown v={v} for={`${MAIL} ews`}>
          <Field
            {...f('username')}
            label="Username"
            autocomplete="off"
            help="Enter the username to access the organization mailbox. With OAuth: the account that signs in at the provider."
          />
        </Shown>
        <Shown v={v} for={`${MAIL} ews`} auth="basic">
          <Field
            name="password"
            value={typedSecret('password')}
            error={e.password}
            type="password"
            autocomplete="new-password"
            label="Password"
            help={`Enter the password to access the organization mailbox.${keeps(props.passwordSet, 'password')}`}
          />
        </Shown>
        <Shown v={v} for="ews" auth="basic">
          <SelectField
            {...f('ewsAuth')}
            label="EWS authentication"
            options={[
              { value: 'ntlm', label: 'NTLM (what Exchange accepts out of the box)' },
              { value: 'basic', label: 'Basic (only where switched on for EWS)' },
            ]}
          />
        </Shown>
        <Shown v={v} for={FOLDERS}>
          <Field
            {...f('folder')}
            label="Folder"
            help="The folder to take mail from (INBOX; for EWS and Graph a well-known name such as inbox)."
          />
        </Shown>
      </fieldset>

      <fieldset class="shown" data-auth="oauth" hidden={authOf(v) !== 'oauth'}>
        <legend>OAuth authentication</legend>
        <p class="help">
          Obtain the Client ID, Client Secret, Authorization URL and Token URL from the authorization server.
          After saving, click Authorize and sign in as the mailbox's username.
        </p>
        <SelectField
          {...f('oauthProvider')}
          value={provider}
          label="Provider"
          options={[
            { value: 'microsoft', label: 'Microsoft 365 (fills the URLs and the scope)' },
            { value: 'google', label: 'Google (fills the URLs and the scope)' },
            { value: 'generic', label: 'Another provider (type the URLs and the scope)' },
          ]}
        />
        <Field
          {...f('oauthTenant')}
          label="Tenant (Microsoft only)"
          help="The directory (tenant) ID or a verified domain; empty: organizations."
        />
        <Shown v={v} for="ews graph">
          <SelectField
            {...f('oauthFlow')}
            label="Flow"
            options={[
              { value: 'authorization-code', label: "Delegated: sign in as the mailbox's user once" },
              { value: 'client-credentials', label: 'Application (client credentials, no sign-in)' },
            ]}
          />
        </Shown>
        <Field {...f('clientId')} label="Client ID" autocomplete="off" />
        <Field
          name="clientSecret"
          value={typedSecret('clientSecret')}
          error={e.clientSecret}
          type="password"
          autocomplete="new-password"
          label="Client Secret"
          help={`From the app registration.${keeps(props.clientSecretSet, 'client secret')}`}
        />
        <Field
          {...f('authorizationUrl')}
          label="Authorization URL"
          type="url"
          help="Filled by a provider preset."
        />
        <Field {...f('tokenUrl')} label="Token URL" type="url" help="Filled by a provider preset." />
        <Field
          {...f('scope')}
          value={scope}
          label="Scope"
          help="Define the accessibility of the obtained OAuth tokens in the mailbox. Filled per protocol for Microsoft 365 and Google."
        />
        <div class="field">
          <label for="f-redirectUrl">Redirect URL</label>
          <div class="copy-row">
            <input
              id="f-redirectUrl"
              type="text"
              readonly
              value={props.redirectUrl}
              aria-describedby="f-redirectUrl-help"
            />
            <button type="button" class="secondary copy" data-copy="f-redirectUrl" hidden>
              Copy
            </button>
          </div>
          <p class="help" id="f-redirectUrl-help">
            Configure this Redirect URL in the authorization server. Open Mailintake at the same host as the
            redirect URL for the consent to work.
          </p>
          <p class="copied" role="status" aria-live="polite" />
        </div>
      </fieldset>
      {authOf(v) === 'token' ? (
        <p class="help">
          This Graph mailbox logs in with a bearer token set through the API; it is kept as it is. Choose
          OAuth through the API to have Mailintake obtain and refresh tokens.
        </p>
      ) : null}

      <fieldset>
        <legend>Fetching</legend>
        <SelectField
          {...f('afterFetch')}
          value={v.afterFetch || defaults.afterFetch}
          label="After a mail is taken in"
          options={[
            { value: 'mark-read', label: 'Mark it read (IMAP, EWS, Graph)' },
            { value: 'delete', label: 'Delete it' },
            { value: 'move', label: 'Move it to a folder' },
            { value: 'leave', label: 'Leave it on the server (POP3)' },
          ]}
        />
        <Field
          {...f('moveToFolder')}
          label="Move to folder"
          help='Used when "Move it to a folder" is chosen.'
        />
        <Field {...f('intervalSeconds')} label="Fetch every (seconds)" help="From 10 seconds to one day." />
        <Shown v={v} for="imap imaps">
          <Check
            name="idle"
            label="Push (IMAP IDLE)"
            v={v}
            help="A new mail is taken in within about a second; the schedule stays as the fallback."
          />
        </Shown>
        <Check
          name="replyAddress"
          label="Reply address per request"
          v={v}
          help="Replies carry Reply-To: address+<request>.<signature>@domain of the first address, so an answer threads even when its headers are stripped. Only for a server that delivers plus-addresses to this mailbox."
        />
        {props.isNew ? (
          <Check
            name="enabled"
            label="Start fetching once saved"
            v={v}
            help="Leave off to fetch a sample mail first; Resume starts fetching later."
          />
        ) : null}
      </fieldset>

      <fieldset>
        <legend>Error folder</legend>
        <Check
          name="moveToErrorFolder"
          label="Move messages to error folder"
          v={v}
          help="A mail that fails processing is moved to the error folder with an encrypted report, so it never blocks fetching. POP3: Mailintake keeps it (encrypted) and deletes it from the server."
        />
        <Shown v={v} for={FOLDERS}>
          <Field
            {...f('errorFolder')}
            label="Name of the error folder"
            placeholder={defaults.errorFolder}
            help={`Provide the name of the folder (created when missing; default "${defaults.errorFolder}").`}
          />
        </Shown>
        <Field
          {...f('stopAfterErrors')}
          label="Stop mail fetching after [ ] mails"
          help="Stop mail fetching when the number of error emails moved to the folder reaches this count. Empty: never stop."
        />
        <Check
          name="notifyOnErrorFolder"
          label="Notify by email when a mail is moved from inbox to error folder"
          v={v}
          help="Sent to the recipients of the application-error notification rule."
        />
        {props.errorMails !== undefined ? (
          <p>
            Total number of mails in error folder: <strong>{props.errorMails}</strong>{' '}
            <a href="/error-mails">Open the error folder</a>
          </p>
        ) : null}
      </fieldset>
      <button type="submit" name="intent" value="save">
        Save
      </button>
    </form>
  );
}
