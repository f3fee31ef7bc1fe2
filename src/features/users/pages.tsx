import { Message } from '../shared/console-ui.js';
import type { UserView } from './views.js';

/**
 * The people pages' content (the console shell in src/http/console wraps them in the layout, checks the session
 * and the CSRF token). Plain forms: they work without any script. Every input has a label.
 */

export function SignInForm(props: {
  csrf: string;
  next: string;
  email?: string | undefined;
  error?: string | undefined;
  notice?: string | undefined;
}) {
  return (
    <section class="narrow">
      <h1>Sign in</h1>
      <Message error={props.error} notice={props.notice} />
      <form method="post" action="/login" class="stack">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <input type="hidden" name="next" value={props.next} />
        <label for="email">Email</label>
        <input
          id="email"
          name="email"
          type="email"
          autocomplete="username"
          required
          value={props.email ?? ''}
        />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required />
        <button type="submit">Sign in</button>
      </form>
    </section>
  );
}

export function SetPasswordForm(props: {
  csrf: string;
  token: string;
  email: string;
  minLength: number;
  error?: string | undefined;
}) {
  return (
    <section class="narrow">
      <h1>Set your password</h1>
      <p>
        For <strong>{props.email}</strong>. At least {props.minLength} characters; a few unrelated words make
        a good one.
      </p>
      <Message error={props.error} />
      <form method="post" action="/set-password" class="stack">
        <input type="hidden" name="_csrf" value={props.csrf} />
        <input type="hidden" name="token" value={props.token} />
        <input type="text" name="username" autocomplete="username" value={props.email} hidden />
        <label for="password">New password</label>
        <input
          id="password"
          name="password"
          type="password"
          autocomplete="new-password"
          minlength={props.minLength}
          required
        />
        <label for="confirm">The same password again</label>
        <input id="confirm" name="confirm" type="password" autocomplete="new-password" required />
        <button type="submit">Set password</button>
      </form>
    </section>
  );
}

export function UserList(props: { users: UserView[] }) {
  return (
    <section>
      <h1>Users</h1>
      <p>
        Add people with{' '}
        <code>mailintake user create --email E --role admin|technician [--portal P] --link</code>.
      </p>
      {props.users.length === 0 ? (
        <p>No users yet.</p>
      ) : (
        <table>
          <caption>Everyone who can sign in, and who could</caption>
          <thead>
            <tr>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              <th scope="col">Portal</th>
              <th scope="col">Password</th>
              <th scope="col">Created</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {props.users.map((u) => (
              <tr>
                <td>{u.email}</td>
                <td>{u.role}</td>
                <td>{u.portal ?? 'all portals'}</td>
                <td>{u.passwordSet ? 'set' : 'link not used yet'}</td>
                <td>
                  <time datetime={u.createdAt}>{u.createdAt.slice(0, 16).replace('T', ' ')}</time>
                </td>
                <td>{u.disabledAt ? `disabled ${u.disabledAt.slice(0, 10)}` : 'active'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
