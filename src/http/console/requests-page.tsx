import type { RequestSummary } from '../../features/requests/views.js';

/**
 * A placeholder until the requests pages (features/requests/pages.tsx) arrive: the newest requests, through the
 * same service as the API (`GET /api/v1/requests`). A technician sees only their portal's.
 */
export function RequestListPlaceholder(props: {
  items: RequestSummary[];
  total: number;
  portal: string | null;
}) {
  return (
    <section>
      <h1>Requests</h1>
      <p>
        {props.total} request{props.total === 1 ? '' : 's'}
        {props.portal ? ` in portal ${props.portal}` : ''}, newest first.
      </p>
      {props.items.length === 0 ? (
        <p>No requests yet.</p>
      ) : (
        <table>
          <caption>The newest requests</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Subject</th>
              <th scope="col">From</th>
              <th scope="col">Portal</th>
              <th scope="col">Status</th>
              <th scope="col">Received</th>
            </tr>
          </thead>
          <tbody>
            {props.items.map((r) => (
              <tr>
                <td>{r.id}</td>
                <td>{r.subject}</td>
                <td>{r.requester ? r.requester.name || r.requester.address : ''}</td>
                <td>{r.portal}</td>
                <td>{r.status}</td>
                <td>
                  <time datetime={r.createdAt}>{r.createdAt.slice(0, 16).replace('T', ' ')}</time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
