import { Field, Message, Pager, SelectField } from '../shared/console-ui.js';
import type { Page } from '../shared/page.js';
import { REQUEST_STATUSES, type RequestListItem } from './views.js';

/**
 * The request list's content: a GET form of filters (so a filtered list is a URL to bookmark or send) and one
 * page of requests, newest first. The filters travel in the paging links.
 */

/** The list's filters as typed in the form; '' means "any". */
export interface ListFilters {
  portal: string;
  mailbox: string;
  status: string;
  requester: string;
  q: string;
}

/** In the form's order, so that a submitted form is already the list's address (see listHref). */
export const FILTER_NAMES = ['q', 'portal', 'mailbox', 'status', 'requester'] as const;

/** The list's address with these filters and offset: only the filters that are set, so URLs stay short. */
export function listHref(f: ListFilters, offset: number): string {
  const params = new URLSearchParams();
  for (const name of FILTER_NAMES) if (f[name] !== '') params.set(name, f[name]);
  if (offset > 0) params.set('offset', String(offset));
  const query = params.toString();
  return query ? `/requests?${query}` : '/requests';
}

export const shortTime = (iso: string) => iso.slice(0, 16).replace('T', ' ');

/** A select whose current value is kept even when it is not among the choices (a removed mailbox's name). */
function FilterSelect(props: {
  name: string;
  label: string;
  value: string;
  choices: string[];
  error?: string | undefined;
}) {
  const choices =
    props.value && !props.choices.includes(props.value) ? [...props.choices, props.value] : props.choices;
  return (
    <SelectField
      id={`filter-${props.name}`}
      name={props.name}
      label={props.label}
      value={props.value}
      error={props.error}
      options={[{ value: '', label: 'Any' }, ...choices.map((c) => ({ value: c, label: c }))]}
    />
  );
}

export function RequestList(props: {
  filters: ListFilters;
  /** null for a technician: the list is their portal's, and the portal filter is not offered. */
  portals: string[] | null;
  scope: string | null;
  mailboxes: string[];
  page: Page<RequestListItem> | null;
  error?: { message: string; fields: Record<string, string> } | undefined;
}) {
  const { filters: f, page, error } = props;
  const filtered = FILTER_NAMES.some((n) => f[n] !== '');
  return (
    <section>
      <h1>Requests</h1>
      <p>
        {props.scope
          ? `Requests in portal ${props.scope}, newest first.`
          : 'Requests of every portal, newest first.'}
      </p>
      <form method="get" action="/requests" class="filters" aria-label="Request filters">
        <Field
          id="filter-q"
          name="q"
          label="Search"
          type="search"
          value={f.q}
          help="Words in the subject, the requester or the body"
          error={error?.fields.q}
        />
        {props.portals ? (
          <FilterSelect
            name="portal"
            label="Portal"
            value={f.portal}
            choices={props.portals}
            error={error?.fields.portal}
          />
        ) : null}
        <FilterSelect
          name="mailbox"
          label="Mailbox"
          value={f.mailbox}
          choices={props.mailboxes}
          error={error?.fields.mailbox}
        />
        <FilterSelect
          name="status"
          label="Status"
          value={f.status}
          choices={[...REQUEST_STATUSES]}
          error={error?.fields.status}
        />
        <Field
          id="filter-requester"
          name="requester"
          label="Requester"
          value={f.requester}
          help="The address, exactly"
          error={error?.fields.requester}
        />
        <div class="filter-actions">
          <button type="submit">Show</button>
          {filtered ? <a href="/requests">Clear filters</a> : null}
        </div>
      </form>
      <Message error={error?.message} />
      {page ? <RequestTable page={page} filters={f} filtered={filtered} /> : null}
    </section>
  );
}

function RequestTable(props: { page: Page<RequestListItem>; filters: ListFilters; filtered: boolean }) {
  const { page } = props;
  if (page.items.length === 0) {
    return <p>{props.filtered ? 'No request matches these filters.' : 'No requests yet.'}</p>;
  }
  return (
    <>
      <table class="requests">
        <caption>
          {page.total.toLocaleString('en')}
          {page.totalCapped ? '+' : ''} request{page.total === 1 && !page.totalCapped ? '' : 's'}
          {props.filtered ? ' match' : ''}
        </caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Subject</th>
            <th scope="col">Requester</th>
            <th scope="col">Portal</th>
            <th scope="col">Mailbox</th>
            <th scope="col">Status</th>
            <th scope="col">Assignee</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {page.items.map((r) => (
            <tr>
              <td>
                <a href={`/requests/${r.id}`}>{r.id}</a>
              </td>
              <td>
                <a href={`/requests/${r.id}`}>{r.subject || '(no subject)'}</a>
              </td>
              <td>
                {r.requester ? (
                  <span title={r.requester.address}>{r.requester.name || r.requester.address}</span>
                ) : (
                  '—'
                )}
              </td>
              <td>{r.portal}</td>
              <td>{r.mailbox ?? '—'}</td>
              <td>
                <span class={`status status-${r.status}`}>{r.status}</span>
              </td>
              <td>{r.assignee ?? '—'}</td>
              <td>
                <time datetime={r.createdAt}>{shortTime(r.createdAt)}</time>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager
        offset={page.offset}
        limit={page.limit}
        total={page.total}
        capped={page.totalCapped === true}
        href={(offset) => listHref(props.filters, offset)}
      />
    </>
  );
}
