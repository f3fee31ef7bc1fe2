import type { Child } from 'hono/jsx';
import { isMailintakeError, MailintakeError } from '../../kernel/errors.js';
import { SYSTEM_LOG_CATEGORIES } from '../../kernel/system-log-categories.js';
import { type ConsoleApp, type ConsoleKit, fieldErrors } from '../shared/console-kit.js';
import { Field, Message, Pager, SelectField } from '../shared/console-ui.js';
import type { SystemLogService } from './service.js';
import type { SystemLogEntry } from './views.js';

/**
 * `/system-log` (admins): what Mailintake did and who did it, newest first, paged, filtered by actor
 * (`user:<email>` for changes made in the console), category, mailbox and a date range. A GET form, so a
 * filtered view is an address to share.
 */

const PAGE_SIZE = 50;
const FILTERS = ['actor', 'category', 'mailbox', 'from', 'to'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number], string>>;

export function mountSystemLogPages(
  ui: ConsoleApp,
  kit: ConsoleKit,
  deps: { systemLog: SystemLogService },
): void {
  ui.get(
    '/system-log',
    kit.page('admin', async (c, user) => {
      const filters: Filters = {};
      for (const f of FILTERS) {
        const v = c.req.query(f)?.trim();
        if (v) filters[f] = v;
      }
      const offset = Math.max(0, Number.parseInt(c.req.query('offset') ?? '0', 10) || 0);
      const href = (o: number) => {
        const q = new URLSearchParams(filters);
        if (o > 0) q.set('offset', String(o));
        const s = q.toString();
        return s ? `/system-log?${s}` : '/system-log';
      };
      let body: Child;
      let status = 200;
      try {
        const list = await deps.systemLog.list({
          actor: filters.actor,
          category: filters.category,
          mailbox: filters.mailbox,
          since: filters.from,
          // the "to" day is included: entries before the next midnight
          until: filters.to ? nextDay(filters.to) : undefined,
          limit: PAGE_SIZE,
          offset,
        });
        body = (
          <SystemLog filters={filters} items={list.items} total={list.total}>
            <Pager offset={list.offset} limit={list.limit} total={list.total} href={href} />
          </SystemLog>
        );
      } catch (e) {
        // a filter naming nothing (an actor with no entry, an unknown mailbox) is told beside it, like a bad one
        const notFound = isMailintakeError(e) && e.code === 'NOT_FOUND';
        const { message, fields } = fieldErrors(
          notFound ? new MailintakeError('INVALID_SETTINGS', e.message, { details: e.details }) : e,
        );
        const errors: Filters = {
          ...(fields.actor ? { actor: fields.actor } : {}),
          ...(fields.mailbox ? { mailbox: fields.mailbox } : {}),
          ...(fields.category ? { category: fields.category } : {}),
          ...(fields.since ? { from: fields.since } : {}),
          ...(fields.until ? { to: fields.until } : {}),
        };
        body = <SystemLog filters={filters} errors={errors} error={message} items={[]} total={0} />;
        status = notFound ? 404 : 400;
      }
      return kit.render(c, 'System log', user, body, { current: '/system-log', status });
    }),
  );
}

/** The day after a YYYY-MM-DD date (to include the whole "to" day); anything else is passed on as typed. */
function nextDay(value: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return value;
  const d = new Date(`${value}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return value;
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

function SystemLog(props: {
  filters: Filters;
  errors?: Filters;
  error?: string;
  items: SystemLogEntry[];
  total: number;
  children?: unknown;
}) {
  const f = props.filters;
  const e = props.errors ?? {};
  return (
    <section>
      <h1>System log</h1>
      <p>
        Every change and what the service did by itself, with who: <code>user:&lt;email&gt;</code> in the
        console, <code>api-key:&lt;name&gt;</code>, <code>cli:&lt;OS user&gt;</code> or <code>system</code>.
        Times are UTC.
      </p>
      <Message error={props.error} />
      <form method="get" action="/system-log" class="filters">
        <Field
          name="actor"
          label="Actor"
          value={f.actor}
          error={e.actor}
          placeholder="user:admin@example.org"
        />
        <SelectField
          name="category"
          label="Kind"
          value={f.category ?? ''}
          error={e.category}
          options={[
            { value: '', label: 'Every kind' },
            ...SYSTEM_LOG_CATEGORIES.map((k) => ({ value: k, label: k })),
          ]}
        />
        <Field name="mailbox" label="Mailbox" value={f.mailbox} error={e.mailbox} />
        <Field type="date" name="from" label="From (date)" value={f.from} error={e.from} />
        <Field type="date" name="to" label="To (date, included)" value={f.to} error={e.to} />
        <button type="submit">Filter</button>
      </form>
      {props.items.length === 0 ? (
        <p>{props.error ? '' : 'No entries match.'}</p>
      ) : (
        <table>
          <caption>
            {props.total} entr{props.total === 1 ? 'y' : 'ies'}, newest first
          </caption>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Level</th>
              <th scope="col">Kind</th>
              <th scope="col">What happened</th>
            </tr>
          </thead>
          <tbody>
            {props.items.map((x) => (
              <tr class={`level-${x.level}`}>
                <td>
                  <time datetime={x.createdAt}>{x.createdAt.slice(0, 19).replace('T', ' ')}</time>
                </td>
                <td>{x.actor}</td>
                <td>{x.level}</td>
                <td>{x.category}</td>
                <td>
                  {x.message}
                  {Object.keys(x.details).length > 0 ? (
                    <details>
                      <summary>Details</summary>
                      <pre>{JSON.stringify(x.details, null, 2)}</pre>
                    </details>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {props.children}
    </section>
  );
}
