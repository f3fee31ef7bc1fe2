import { splitReply } from '../../mail/reply-split.js';
import { Csrf, Message } from '../shared/console-ui.js';
import { bodyPath } from './body-routes.js';
import { shortTime } from './list-page.js';
import {
  type AttachmentView,
  type DeliveryView,
  type DroppedAttachmentView,
  type IntakeLogEntry,
  REQUEST_STATUSES,
  type RequestDetail,
  type RequestHistoryEntry,
} from './views.js';

/**
 * One request's page content: what it is and who works on it (with the status and assignee forms), its history,
 * and its mails in order, each with why it landed here (the intake log's outcome and reasons), its attachments,
 * the dropped ones with their reason, its raw source, and its body in a sandboxed frame.
 */

export const attachmentPath = (requestId: number, attachmentId: number) =>
  `/requests/${requestId}/attachments/${attachmentId}`;
export const rawPath = (requestId: number, logId: number) => `/requests/${requestId}/mails/${logId}/raw`;

/** What the work forms show after a failed change: the message, each bad field's, and what was typed. */
export interface WorkState {
  notice?: string | undefined;
  error?: string | undefined;
  fields?: Record<string, string>;
  status?: string;
  assignee?: string;
  /** What was typed in the reply box, kept when sending failed. */
  reply?: ReplyTyped;
}

/** The reply box's fields as typed. */
export interface ReplyTyped {
  to: string;
  cc: string[];
  ccExtra: string;
  bcc: string;
  text: string;
  /** The request's attachments checked to go with a forward (ids as typed). */
  forwardAttachments: string[];
}

/**
 * What a forward may carry: the request's own attachments, of the first mail and of the conversations taken in
 * (not inline images, not what the help desk sent).
 */
export function forwardableAttachments(r: RequestDetail): AttachmentView[] {
  return [
    ...r.attachments,
    ...r.conversations.filter((x) => x.direction === 'in').flatMap((x) => x.attachments),
  ].filter((a) => a.disposition === 'attachment');
}

/**
 * An outgoing mail's delivery in words: Queued, Sent, Retrying: reason, Failed: status reason. Sent with a reason:
 * the server took it for some recipients and refused it for the others, which the technician must see.
 */
export function deliveryWords(d: DeliveryView): string {
  const why = [d.status, d.reason].filter((x) => x).join(' ');
  switch (d.state) {
    case 'pending':
      return 'Queued';
    case 'sent':
      return d.reason ? `Sent, but ${d.reason}` : 'Sent';
    case 'retrying':
      return `Retrying: ${why || 'the last try failed'}`;
    case 'failed':
      return `Failed${d.bounced ? ' (bounced)' : ''}: ${why || 'given up'}`;
  }
}

/** One mail of the request: the first (conversationId null) or a conversation. */
interface MailView {
  conversationId: number | null;
  from: RequestDetail['requester'];
  subject: string;
  to: RequestDetail['to'];
  cc: RequestDetail['cc'];
  date: string | null;
  receivedAt: string;
  mailbox: string | null;
  logId: number | null;
  text: string | null;
  html: string | null;
  /** An auto-reply kept on the request (mail/machine.ts): said in the mail's header. */
  automatic: boolean;
  /** A reply or forward the help desk sent: who, and how its delivery went. */
  outgoing: { actor: string | null; delivery: DeliveryView | null } | null;
  attachments: AttachmentView[];
  dropped: DroppedAttachmentView[];
}

function mailsOf(r: RequestDetail): MailView[] {
  return [
    {
      conversationId: null,
      from: r.requester,
      subject: r.subject,
      to: r.to,
      cc: r.cc,
      date: r.date,
      receivedAt: r.createdAt,
      mailbox: r.mailbox,
      logId: r.logId,
      text: r.text,
      html: r.html,
      automatic: false,
      outgoing: null,
      attachments: r.attachments,
      dropped: r.droppedAttachments,
    },
    ...r.conversations.map((c) => ({
      conversationId: c.id,
      from: c.from,
      subject: c.subject,
      to: c.to,
      cc: c.cc,
      date: c.date,
      receivedAt: c.createdAt,
      mailbox: c.mailbox,
      logId: c.logId,
      text: c.text,
      html: c.html,
      automatic: c.automatic,
      outgoing: c.direction === 'out' ? { actor: c.actor, delivery: c.delivery } : null,
      attachments: c.attachments,
      dropped: c.droppedAttachments,
    })),
  ];
}

const who = (a: { address: string; name: string } | null) =>
  a ? (a.name ? `${a.name} <${a.address}>` : a.address) : '(no sender)';
const addresses = (list: { address: string; name: string }[]) => list.map((a) => who(a)).join(', ');
const size = (bytes: number) =>
  bytes < 1024
    ? `${bytes} bytes`
    : bytes < 1024 * 1024
      ? `${(bytes / 1024).toFixed(1)} KB`
      : `${(bytes / 1048576).toFixed(1)} MB`;

export function RequestPage(props: {
  request: RequestDetail;
  history: RequestHistoryEntry[];
  log: IntakeLogEntry[];
  assignees: string[];
  csrf: string;
  work: WorkState;
}) {
  const { request: r, work } = props;
  const mails = mailsOf(r);
  return (
    <article class="request">
      <p class="crumbs">
        <a href="/requests">All requests</a>
      </p>
      <h1>
        #{r.id} {r.subject || '(no subject)'}
      </h1>
      <Message error={work.error} notice={work.notice} />
      <div class="request-head">
        <dl class="facts">
          <dt>Requester</dt>
          <dd>{who(r.requester)}</dd>
          <dt>Participants</dt>
          <dd class="participants">
            {r.participants.length === 0
              ? 'none'
              : r.participants.map((p) => (p.name ? `${p.name} <${p.address}>` : p.address)).join(', ')}
          </dd>
          {r.acknowledgement ? (
            <>
              <dt>Acknowledgement</dt>
              <dd class="acknowledgement">{deliveryWords(r.acknowledgement)}</dd>
            </>
          ) : null}
          <dt>Portal</dt>
          <dd>{r.portal}</dd>
          <dt>Mailbox</dt>
          <dd>{r.mailbox ?? '—'}</dd>
          <dt>Status</dt>
          <dd>
            <span class={`status status-${r.status}`}>{r.status}</span>
          </dd>
          <dt>Assignee</dt>
          <dd>{r.assignee ?? 'nobody'}</dd>
          <dt>Created</dt>
          <dd>
            <time datetime={r.createdAt}>{shortTime(r.createdAt)}</time>
          </dd>
        </dl>
        <WorkForms request={r} assignees={props.assignees} csrf={props.csrf} work={work} />
      </div>
      <History entries={props.history} />
      <h2>Mails ({mails.length})</h2>
      {mails.map((m, i) => (
        <Mail requestId={r.id} mail={m} index={i} log={logOf(props.log, m)} />
      ))}
      <ReplyBox request={r} csrf={props.csrf} work={work} />
    </article>
  );
}

/** The outbox id a bounce's log entry names (commit-mail.ts linkBounce), or null. */
const bouncedOutbox = (l: IntakeLogEntry): number | null => {
  for (const reason of l.reasons) {
    const m = /^bounce of our reply on request #\d+ \(outbox (\d+)\)/.exec(reason);
    if (m) return Number(m[1]);
  }
  return null;
};

/** The log entries of one mail: those that took it in, and for a reply we sent the bounces that came back for it. */
function logOf(log: IntakeLogEntry[], m: MailView): IntakeLogEntry[] {
  const outbox = m.outgoing?.delivery?.outboxId;
  if (outbox !== undefined) return log.filter((l) => bouncedOutbox(l) === outbox);
  return log.filter((l) => l.conversationId === m.conversationId && bouncedOutbox(l) === null);
}

/**
 * Offered as the reply's Cc: the request's participants first, checked (they get replies), then anyone else in
 * Cc of the mails taken in, unchecked (the portal did not make them participants; the technician may still copy
 * them).
 */
function ccPeople(r: RequestDetail): { address: string; name: string; participant: boolean }[] {
  const seen = new Map<string, { address: string; name: string; participant: boolean }>();
  for (const p of r.participants) {
    seen.set(p.address.toLowerCase(), { address: p.address, name: p.name ?? '', participant: true });
  }
  for (const a of [...r.cc, ...r.conversations.filter((c) => c.direction === 'in').flatMap((c) => c.cc)]) {
    if (!seen.has(a.address.toLowerCase())) seen.set(a.address.toLowerCase(), { ...a, participant: false });
  }
  return [...seen.values()];
}

/**
 * The reply box: a multipart form (it carries files), so it works without script. To is the requester unless
 * something is typed; a forward needs it typed. The help desk's own addresses are dropped by the service
 * whatever is typed here.
 */
function ReplyBox(props: { request: RequestDetail; csrf: string; work: WorkState }) {
  const { request: r, work } = props;
  const typed = work.reply;
  const f = work.fields ?? {};
  const people = ccPeople(r);
  const forwardable = forwardableAttachments(r);
  const field = (
    name: string,
    label: string,
    help: string,
    value: string,
    extra: Record<string, string> = {},
  ) => (
    <div class={f[name] ? 'field invalid' : 'field'}>
      <label for={`reply-${name}`}>{label}</label>
      <input
        id={`reply-${name}`}
        name={name}
        type="text"
        autocomplete="off"
        value={value}
        aria-invalid={f[name] ? 'true' : undefined}
        aria-describedby={f[name] ? `reply-${name}-help reply-${name}-error` : `reply-${name}-help`}
        {...extra}
      />
      <p class="help" id={`reply-${name}-help`}>
        {help}
      </p>
      {f[name] ? (
        <p class="field-error" id={`reply-${name}-error`}>
          {f[name]}
        </p>
      ) : null}
    </div>
  );
  return (
    <section class="reply-box" aria-labelledby="reply-title">
      <h2 id="reply-title">Reply or forward</h2>
      <form method="post" action={`/requests/${r.id}/replies`} enctype="multipart/form-data" id="reply-form">
        <Csrf token={props.csrf} />
        {field(
          'to',
          'To',
          `Empty: the requester, ${r.requester ? who(r.requester) : 'nobody (type an address)'}. A forward needs an address. Several: separate them with commas.`,
          typed?.to ?? '',
        )}
        {people.length > 0 ? (
          <fieldset class="cc-people">
            <legend>Cc the people of this request</legend>
            {people.map((a, i) => (
              <div class="check">
                <input
                  type="checkbox"
                  id={`reply-cc-${i}`}
                  name="cc"
                  value={a.address}
                  checked={typed ? typed.cc.includes(a.address) : a.participant}
                />
                <label for={`reply-cc-${i}`}>{who(a)}</label>
              </div>
            ))}
          </fieldset>
        ) : null}
        {field('ccExtra', 'More Cc', 'Other addresses to copy, separated by commas.', typed?.ccExtra ?? '')}
        {field('bcc', 'Bcc', 'Blind copies, separated by commas.', typed?.bcc ?? '')}
        <div class={f.text ? 'field invalid' : 'field'}>
          <label for="reply-text">Text</label>
          <textarea
            id="reply-text"
            name="text"
            rows={8}
            aria-invalid={f.text ? 'true' : undefined}
            aria-describedby={f.text ? 'reply-text-error' : undefined}
          >
            {typed?.text ?? ''}
          </textarea>
          {f.text ? (
            <p class="field-error" id="reply-text-error">
              {f.text}
            </p>
          ) : null}
        </div>
        <div class={f.attachments ? 'field invalid' : 'field'}>
          <label for="reply-attachments">Attachments</label>
          <input id="reply-attachments" name="attachments" type="file" multiple />
          {f.attachments ? <p class="field-error">{f.attachments}</p> : null}
        </div>
        {forwardable.length > 0 ? (
          <fieldset class="forward-attachments">
            <legend>A forward carries these attachments of the request</legend>
            {forwardable.map((a) => (
              <div class="check">
                <input
                  type="checkbox"
                  id={`reply-fwd-${a.id}`}
                  name="forwardAttachment"
                  value={String(a.id)}
                  checked={typed ? typed.forwardAttachments.includes(String(a.id)) : true}
                />
                <label for={`reply-fwd-${a.id}`}>{a.filename}</label>
              </div>
            ))}
          </fieldset>
        ) : null}
        <p class="help">
          Sent from the mailbox's address through the outgoing SMTP server of the request's portal; the
          subject carries ##{r.id}## so the answer comes back to this request. A reply carries only the files
          added above; a forward also the request's attachments checked here.
        </p>
        <button type="submit" name="action" value="reply">
          Send reply
        </button>{' '}
        <button type="submit" name="action" value="forward">
          Forward
        </button>
      </form>
    </section>
  );
}

function WorkForms(props: { request: RequestDetail; assignees: string[]; csrf: string; work: WorkState }) {
  const { request: r, work } = props;
  const statusError = work.fields?.status;
  const assigneeError = work.fields?.assignee;
  const status = work.status ?? r.status;
  return (
    <section class="work" aria-labelledby="work-title">
      <h2 id="work-title">Work on it</h2>
      <form method="post" action={`/requests/${r.id}/status`} class="inline-form">
        <Csrf token={props.csrf} />
        <div class={statusError ? 'field invalid' : 'field'}>
          <label for="work-status">Status</label>
          <select
            id="work-status"
            name="status"
            aria-invalid={statusError ? 'true' : undefined}
            aria-describedby={statusError ? 'work-status-error' : undefined}
          >
            {REQUEST_STATUSES.map((s) => (
              <option value={s} selected={s === status}>
                {s}
              </option>
            ))}
          </select>
          {statusError ? (
            <p class="field-error" id="work-status-error">
              {statusError}
            </p>
          ) : null}
        </div>
        <button type="submit">Set status</button>
      </form>
      <form method="post" action={`/requests/${r.id}/assignee`} class="inline-form">
        <Csrf token={props.csrf} />
        <div class={assigneeError ? 'field invalid' : 'field'}>
          <label for="work-assignee">Assignee</label>
          <input
            id="work-assignee"
            name="assignee"
            type="text"
            inputmode="email"
            autocomplete="off"
            list="work-assignees"
            value={work.assignee ?? r.assignee ?? ''}
            aria-invalid={assigneeError ? 'true' : undefined}
            aria-describedby={assigneeError ? 'work-assignee-help work-assignee-error' : 'work-assignee-help'}
          />
          <datalist id="work-assignees">
            {props.assignees.map((a) => (
              <option value={a} />
            ))}
          </datalist>
          <p class="help" id="work-assignee-help">
            An email address (the console's users are suggested); empty: nobody.
          </p>
          {assigneeError ? (
            <p class="field-error" id="work-assignee-error">
              {assigneeError}
            </p>
          ) : null}
        </div>
        <button type="submit">Assign</button>
      </form>
    </section>
  );
}

function History(props: { entries: RequestHistoryEntry[] }) {
  return (
    <section aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      {props.entries.length === 0 ? (
        <p>No changes yet: the request is as its first mail made it.</p>
      ) : (
        <table class="history">
          <caption>Status and assignee changes, oldest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
              <th scope="col">From</th>
              <th scope="col">To</th>
            </tr>
          </thead>
          <tbody>
            {props.entries.map((h) => (
              <tr>
                <td>
                  <time datetime={h.at}>{shortTime(h.at)}</time>
                </td>
                <td>{h.actor}</td>
                <td>{h.field}</td>
                <td>{h.old ?? (h.field === 'assignee' ? 'nobody' : '—')}</td>
                <td>{h.new ?? (h.field === 'assignee' ? 'nobody' : '—')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const OUTCOME_WORDS: Record<IntakeLogEntry['outcome'], string> = {
  created: 'created this request',
  appended: 'added as a conversation',
  ignored: 'recognised as a copy and ignored',
  error: 'failed',
};

function Mail(props: { requestId: number; mail: MailView; index: number; log: IntakeLogEntry[] }) {
  const { requestId, mail: m, index } = props;
  const frame = `mail-frame-${index}`;
  const src = bodyPath(requestId, m.conversationId);
  const titleId = `mail-${index}-title`;
  return (
    <section class="mail" aria-labelledby={titleId}>
      <h3 id={titleId}>
        {index === 0 ? 'First mail' : m.outgoing ? `Sent ${index}` : `Reply ${index}`}: {who(m.from)}
        {m.automatic ? ' (automatic)' : ''}
      </h3>
      {m.outgoing ? (
        <p class="delivery">
          Sent by the help desk{m.outgoing.actor ? ` (${m.outgoing.actor})` : ''}. Delivery:{' '}
          <strong
            class={`delivery-state delivery-${m.outgoing.delivery?.state ?? 'none'}`}
            data-delivery-state={m.outgoing.delivery?.state ?? 'none'}
            data-conversation={String(m.conversationId)}
          >
            {m.outgoing.delivery ? deliveryWords(m.outgoing.delivery) : '—'}
          </strong>
        </p>
      ) : null}
      <dl class="facts mail-facts">
        <dt>{m.outgoing ? 'Written' : 'Received'}</dt>
        <dd>
          <time datetime={m.receivedAt}>{shortTime(m.receivedAt)}</time>
          {m.mailbox ? ` through ${m.mailbox}` : ''}
          {m.date ? ` (sent ${/^\d{4}-\d\d-\d\dT/.test(m.date) ? shortTime(m.date) : m.date})` : ''}
        </dd>
        <dt>Subject</dt>
        <dd>{m.subject || '(no subject)'}</dd>
        {m.automatic ? (
          <>
            <dt>Sent by</dt>
            <dd>an auto-responder: automatic, never answered</dd>
          </>
        ) : null}
        {m.to.length > 0 ? (
          <>
            <dt>To</dt>
            <dd>{addresses(m.to)}</dd>
          </>
        ) : null}
        {m.cc.length > 0 ? (
          <>
            <dt>Cc</dt>
            <dd>{addresses(m.cc)}</dd>
          </>
        ) : null}
      </dl>
      <div class="trace">
        <h4>Why it is here</h4>
        {props.log.length === 0 ? (
          <p>
            {m.outgoing
              ? 'Written on this page, the API or the CLI, and sent through the outbox.'
              : 'No intake log entry (the request was made before the log kept one).'}
          </p>
        ) : (
          <ul>
            {props.log.map((l) => (
              <li>
                <time datetime={l.createdAt}>{shortTime(l.createdAt)}</time> log #{l.id}, mailbox {l.mailbox}:{' '}
                <strong>
                  {bouncedOutbox(l) !== null
                    ? 'a bounce of this mail: its delivery failed'
                    : OUTCOME_WORDS[l.outcome]}
                </strong>
                {l.reasons.length > 0 ? (
                  <ul>
                    {l.reasons.map((reason) => (
                      <li>{reason}</li>
                    ))}
                  </ul>
                ) : null}
              </li>
            ))}
          </ul>
        )}
      </div>
      {m.attachments.length > 0 ? (
        <div class="attachments">
          <h4>Attachments</h4>
          <ul>
            {m.attachments.map((a) => (
              <li>
                <a href={attachmentPath(requestId, a.id)}>{a.filename}</a> ({a.contentType}, {size(a.size)}
                {a.disposition === 'inline' ? ', inline' : ''})
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {m.dropped.length > 0 ? (
        <div class="dropped">
          <h4>Dropped attachments</h4>
          <ul>
            {m.dropped.map((d) => (
              <li>
                {d.filename} ({size(d.size)}): <code>{d.code}</code> {d.message}
                {d.detail ? ` ${d.detail}` : ''}
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      <p class="mail-links">
        {m.logId !== null ? <a href={rawPath(requestId, m.logId)}>Download the raw mail (.eml)</a> : null}
        {m.html ? (
          <a href={`${src}?images=1`} target={frame}>
            Show images
          </a>
        ) : null}
      </p>
      <NewPart mail={m} />
      <iframe
        class="mail-frame"
        name={frame}
        title={`Body of the ${index === 0 ? 'first mail' : `reply ${index}`}`}
        src={src}
        sandbox="allow-popups allow-popups-to-escape-sandbox"
        referrerpolicy="no-referrer"
      />
    </section>
  );
}

/**
 * What the sender wrote, above the full body: their quoted text and signature folded in a <details> (no script).
 * For display only (mail/reply-split.ts); the frame below shows the whole body as received, the raw mail is a
 * link away. Shown only when something was folded: otherwise the frame says it all.
 */
function NewPart(props: { mail: MailView }) {
  const { mail: m } = props;
  if (m.text === null && m.html === null) return null;
  const split = splitReply({ text: m.text, html: m.html });
  if (split.method !== 'split') return null;
  const folded = [split.signature, split.quoted].filter((p) => p !== '').join('\n\n');
  return (
    <div class="new-part">
      <h4>What they wrote</h4>
      {split.newPart === '' ? (
        <p>Nothing of their own: only quoted or forwarded text and a signature.</p>
      ) : (
        <pre class="mail-new-part">{split.newPart}</pre>
      )}
      <details class="mail-quoted">
        <summary>Show quoted text</summary>
        <pre>{folded}</pre>
      </details>
    </div>
  );
}
