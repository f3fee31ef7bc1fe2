import type { SampleMail } from '../../connectors/connector.js';
import type { MailintakeError } from '../../kernel/errors.js';
import type { OAuthTokenView } from '../oauth/tokens.js';
import { Csrf } from '../shared/console-ui.js';
import type { MailboxView } from './views.js';

/**
 * The mailbox pages' read-only parts: the list, a mailbox's state, its token state, the buttons acting on it,
 * and the result of "fetch a sample mail". Everything shown comes from the service's views.
 */

export const mailboxPath = (name: string) => `/mailboxes/${encodeURIComponent(name)}`;
const when = (iso: string | null) => (iso ? iso.slice(0, 19).replace('T', ' ') : 'never');

/** The mailbox's state in words: fetching / paused / stopped by errors / failing. */
export function stateText(m: MailboxView): string {
  if (m.state.fetching) return 'Fetching now';
  if (m.status === 'paused') return 'Paused (saved during a fetch): resume to fetch again';
  if (m.status === 'stopped-by-errors')
    return `Stopped by errors: the error folder reached ${m.stopAfterErrors ?? 'its limit of'} mails`;
  if (m.status === 'disabled') return 'Paused';
  // failingSince outlives consecutiveFailures, which starts again at 0 each time an alert goes out
  if (m.state.failingSince)
    return `Failing since ${when(m.state.failingSince)} (${m.state.lastErrorCode ?? 'error'}), last tried ${when(m.state.lastFetchAt)}`;
  if (m.state.consecutiveFailures > 0)
    return `Failing: the last ${m.state.consecutiveFailures} round${m.state.consecutiveFailures === 1 ? '' : 's'} failed (${m.state.lastErrorCode ?? 'error'}), last tried ${when(m.state.lastFetchAt)}`;
  return `Fetching every ${m.intervalSeconds} s`;
}

export function tokenText(t: OAuthTokenView | null | undefined): string {
  if (!t) return 'not looked up';
  if (t.status === 'authorized')
    return `Valid${t.account ? ` for ${t.account}` : ''}${t.accessTokenExpiresAt ? `, access token until ${when(t.accessTokenExpiresAt)}` : ''}${t.refreshTokenSet ? ', refreshed by Mailintake' : ''}`;
  if (t.status === 'reauthorize-required')
    return `Authorize again${t.lastError ? `: ${t.lastError.code} ${t.lastError.message}` : ''}`;
  return t.pending ? 'Not authorized yet (a consent is under way)' : 'Not authorized yet';
}

/** Pause or Resume, and Fetch a sample mail: small POST forms, back to `back` afterwards. */
export function MailboxActions(props: { m: MailboxView; csrf: string; back: string }) {
  const { m } = props;
  const base = mailboxPath(m.name);
  return (
    <div class="actions">
      <form method="post" action={`${base}/enabled`}>
        <Csrf token={props.csrf} />
        <input type="hidden" name="back" value={props.back} />
        <input type="hidden" name="enabled" value={m.enabled ? '0' : '1'} />
        <button type="submit" class="secondary" aria-label={`${m.enabled ? 'Pause' : 'Resume'} ${m.name}`}>
          {m.enabled ? 'Pause' : 'Resume'}
        </button>
      </form>
      <form method="post" action={`${base}/test`}>
        <Csrf token={props.csrf} />
        <button type="submit" class="secondary" aria-label={`Fetch a sample mail from ${m.name}`}>
          Fetch a sample mail
        </button>
      </form>
    </div>
  );
}

export function MailboxList(props: {
  mailboxes: MailboxView[];
  activity: Record<string, { requests: number; conversations: number }>;
  csrf: string;
  notice?: string | undefined;
}) {
  return (
    <section>
      <h1>Mailboxes</h1>
      {props.notice ? (
        <p class="message notice" role="status">
          {props.notice}
        </p>
      ) : null}
      <p>
        <a href="/mailboxes/new" class="button">
          Add mailbox
        </a>
      </p>
      {props.mailboxes.length === 0 ? (
        <p>No mailboxes yet.</p>
      ) : (
        <table class="mailboxes">
          <caption>Every mailbox Mailintake fetches, with its state</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Server</th>
              <th scope="col">State</th>
              <th scope="col">Last fetch</th>
              <th scope="col">Requests</th>
              <th scope="col">Conversations</th>
              <th scope="col">Error folder</th>
              <th scope="col">OAuth token</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.mailboxes.map((m) => {
              const a = props.activity[m.name] ?? { requests: 0, conversations: 0 };
              return (
                <tr data-mailbox={m.name}>
                  <td>
                    <a href={mailboxPath(m.name)}>{m.name}</a>
                    <br />
                    <span class="muted">
                      {m.protocol}, portal {m.portal}
                    </span>
                  </td>
                  <td class="wrap">
                    {m.protocol === 'graph' || m.protocol === 'ews' ? m.server : `${m.server}:${m.port}`}
                  </td>
                  <td class="state">{stateText(m)}</td>
                  <td>{when(m.state.lastFetchAt)}</td>
                  <td>{a.requests}</td>
                  <td>{a.conversations}</td>
                  <td>{m.errorMails}</td>
                  <td class="token">{m.oauth ? tokenText(m.oauth.tokens) : '–'}</td>
                  <td>
                    <a href={mailboxPath(m.name)} aria-label={`Edit ${m.name}`}>
                      Edit
                    </a>
                    <MailboxActions m={m} csrf={props.csrf} back="/mailboxes" />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The edit page's state panel, with the actions and, for OAuth, the token state and Authorize. */
export function StatePanel(props: { m: MailboxView; csrf: string; requests: number; conversations: number }) {
  const { m } = props;
  const base = mailboxPath(m.name);
  return (
    <section class="state-panel" aria-labelledby="state-heading">
      <h2 id="state-heading">State</h2>
      <dl>
        <dt>State</dt>
        <dd id="mailbox-state">{stateText(m)}</dd>
        <dt>Last fetch</dt>
        <dd>{when(m.state.lastFetchAt)}</dd>
        {m.state.lastErrorCode ? (
          <>
            <dt>Last error</dt>
            <dd>
              <code>{m.state.lastErrorCode}</code> {m.state.lastErrorMessage}
            </dd>
          </>
        ) : null}
        <dt>Requests / conversations</dt>
        <dd>
          {props.requests} / {props.conversations}
        </dd>
        <dt>Mails in error folder</dt>
        <dd>{m.errorMails}</dd>
        {m.oauth ? (
          <>
            <dt>OAuth token</dt>
            <dd id="token-state" aria-live="polite" data-status={m.oauth.tokens?.status ?? ''}>
              {tokenText(m.oauth.tokens)}
            </dd>
          </>
        ) : null}
      </dl>
      {m.oauth?.warnings.map((w) => (
        <p class="message error">{w}</p>
      ))}
      <MailboxActions m={m} csrf={props.csrf} back={base} />
      {m.oauth && m.oauth.flow === 'authorization-code' ? (
        <div class="authorize">
          <form
            method="post"
            action={`${base}/authorize`}
            id="authorize-form"
            data-state={`${base}/token-state`}
          >
            <Csrf token={props.csrf} />
            <button type="submit">Authorize</button>
          </form>
          <p class="help">
            Opens the provider's consent in a window: sign in as <strong>{m.username}</strong> (the username
            of this mailbox) and approve. Make sure your browser does not block pop-ups from this site.
          </p>
          <p id="authorize-message" class="message" role="status" aria-live="polite" hidden />
        </div>
      ) : null}
      <p>
        <a href={`${base}/remove`}>Remove this mailbox…</a>
      </p>
    </section>
  );
}

/** "Fetch a sample mail": the oldest mail's properties. */
export function SampleResult(props: { sample: SampleMail | null; durationMs: number }) {
  const s = props.sample;
  return (
    <section class="sample message notice" aria-labelledby="sample-heading" role="status">
      <h2 id="sample-heading">Fetch a sample mail: connected</h2>
      <p>Reached the mailbox and logged in in {props.durationMs} ms. Nothing was changed on the server.</p>
      {s ? (
        <dl>
          <dt>From</dt>
          <dd>{s.from ?? '–'}</dd>
          <dt>Subject</dt>
          <dd>{s.subject ?? '–'}</dd>
          <dt>Date</dt>
          <dd>{s.date ?? '–'}</dd>
          <dt>Size</dt>
          <dd>{s.size} bytes</dd>
          <dt>Attachments</dt>
          <dd>{s.attachments.length ? s.attachments.join(', ') : 'none'}</dd>
        </dl>
      ) : (
        <p>The folder is empty: there is no mail to show.</p>
      )}
    </section>
  );
}

const STEPS: { step: string; label: string }[] = [
  { step: 'settings', label: 'Reading the settings' },
  { step: 'authorization', label: 'The OAuth consent' },
  { step: 'token', label: 'Getting an access token' },
  { step: 'dns', label: 'Looking up the server name (DNS)' },
  { step: 'connect', label: 'Connecting (TCP)' },
  { step: 'tls', label: 'Securing the connection (TLS)' },
  { step: 'login', label: 'Logging in (authentication)' },
  { step: 'folder', label: 'Opening the folder' },
  { step: 'response', label: 'Fetching the oldest mail' },
];

/** A failed "fetch a sample mail", step by step: what passed, what failed, what to check. */
export function SampleFailure(props: { error: MailintakeError; oauth: boolean }) {
  const d = props.error.details as {
    step?: string;
    stepLabel?: string;
    checks?: string[];
    serverResponse?: string;
  };
  const steps = STEPS.filter((s) => props.oauth || (s.step !== 'authorization' && s.step !== 'token'));
  const failedAt = steps.findIndex((s) => s.step === d.step);
  return (
    <section class="sample message error" aria-labelledby="sample-heading" role="alert">
      <h2 id="sample-heading">Fetch a sample mail failed{d.stepLabel ? `: ${d.stepLabel}` : ''}</h2>
      <p>
        <code>{props.error.code}</code> {props.error.message}
      </p>
      {failedAt >= 0 ? (
        <ol class="steps">
          {steps.map((s, i) => (
            <li
              data-step={s.step}
              class={i < failedAt ? 'passed' : i === failedAt ? 'failed' : 'not-reached'}
            >
              {s.label}: {i < failedAt ? 'passed' : i === failedAt ? 'failed' : 'not reached'}
            </li>
          ))}
        </ol>
      ) : null}
      {d.serverResponse ? (
        <p>
          The server said: <code>{d.serverResponse}</code>
        </p>
      ) : null}
      {d.checks?.length ? (
        <>
          <h3>What to check</h3>
          <ul>
            {d.checks.map((c) => (
              <li>{c}</li>
            ))}
          </ul>
        </>
      ) : null}
    </section>
  );
}
