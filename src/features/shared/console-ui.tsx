import type { Child } from 'hono/jsx';

/**
 * The console's small shared components, used by every feature's pages.tsx: a message above a form, a labelled
 * field with its help text and its own error beside it, the CSRF field, and paging links. Plain HTML that works
 * without any script; every input has a label, every error is tied to its input with aria-describedby.
 */

/** A message above a form: `role="alert"` so a screen reader says it when the page opens. */
export function Message(props: { error?: string | undefined; notice?: string | undefined }) {
  if (props.error) {
    return (
      <p class="message error" role="alert" id="form-message">
        {props.error}
      </p>
    );
  }
  return props.notice ? (
    <p class="message notice" role="status" id="form-message">
      {props.notice}
    </p>
  ) : null;
}

/** The session's CSRF token, in every form that changes something. */
export function Csrf(props: { token: string }) {
  return <input type="hidden" name="_csrf" value={props.token} />;
}

/** What a field's control points at for its help and error (aria-describedby), if anything. */
function describedBy(id: string, help: unknown, error: unknown): string | undefined {
  return [help ? `${id}-help` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
}

/** The frame every field shares: the label, the control, the help text, and the error beside the field. */
function FieldFrame(props: {
  id: string;
  label: string;
  help?: Child;
  error?: string | undefined;
  children: Child;
}) {
  const { id } = props;
  return (
    <div class={props.error ? 'field invalid' : 'field'}>
      <label for={id}>{props.label}</label>
      {props.children}
      {props.help ? (
        <p class="help" id={`${id}-help`}>
          {props.help}
        </p>
      ) : null}
      {props.error ? (
        <p class="field-error" id={`${id}-error`}>
          {props.error}
        </p>
      ) : null}
    </div>
  );
}

/**
 * One labelled input. `value` is what the admin typed (kept on an error); `error` is shown beside the field and
 * marks it aria-invalid; `help` is the reference's help text.
 */
export function Field(props: {
  name: string;
  label: string;
  value?: string | undefined;
  type?: 'text' | 'email' | 'password' | 'number' | 'url' | 'search' | 'date';
  help?: Child;
  error?: string | undefined;
  required?: boolean;
  autocomplete?: string;
  placeholder?: string;
  id?: string;
}) {
  const id = props.id ?? `f-${props.name}`;
  return (
    <FieldFrame id={id} label={props.label} help={props.help} error={props.error}>
      <input
        id={id}
        name={props.name}
        type={props.type ?? 'text'}
        value={props.value ?? ''}
        required={props.required}
        autocomplete={props.autocomplete}
        placeholder={props.placeholder}
        aria-invalid={props.error ? 'true' : undefined}
        aria-describedby={describedBy(id, props.help, props.error)}
      />
    </FieldFrame>
  );
}

/** A multi-line text with its label, help and error, like Field. */
export function TextAreaField(props: {
  name: string;
  label: string;
  value?: string | undefined;
  rows?: number;
  help?: Child;
  error?: string | undefined;
  id?: string;
}) {
  const id = props.id ?? `f-${props.name}`;
  return (
    <FieldFrame id={id} label={props.label} help={props.help} error={props.error}>
      <textarea
        id={id}
        name={props.name}
        rows={props.rows ?? 8}
        aria-invalid={props.error ? 'true' : undefined}
        aria-describedby={describedBy(id, props.help, props.error)}
      >
        {props.value ?? ''}
      </textarea>
    </FieldFrame>
  );
}

/** A select with its label, help and error, like Field. */
export function SelectField(props: {
  name: string;
  label: string;
  value?: string | undefined;
  options: { value: string; label: string }[];
  help?: Child;
  error?: string | undefined;
  id?: string;
}) {
  const id = props.id ?? `f-${props.name}`;
  return (
    <FieldFrame id={id} label={props.label} help={props.help} error={props.error}>
      <select
        id={id}
        name={props.name}
        aria-invalid={props.error ? 'true' : undefined}
        aria-describedby={describedBy(id, props.help, props.error)}
      >
        {props.options.map((o) => (
          <option value={o.value} selected={o.value === props.value}>
            {o.label}
          </option>
        ))}
      </select>
    </FieldFrame>
  );
}

/**
 * Previous / next links of a paged list; `href(offset)` builds the link keeping the list's filters. `capped`: the
 * list stopped counting at `total` (a request search), so there may be more after it.
 */
export function Pager(props: {
  offset: number;
  limit: number;
  total: number;
  capped?: boolean;
  href: (offset: number) => string;
}) {
  const { offset, limit, total } = props;
  if (total <= limit && offset === 0) return null;
  const last = Math.min(offset + limit, total);
  return (
    <nav class="pager" aria-label="Pages">
      {offset > 0 ? <a href={props.href(Math.max(0, offset - limit))}>Previous</a> : null}
      <span>
        {total === 0 ? 0 : (offset + 1).toLocaleString('en')}–{last.toLocaleString('en')} of{' '}
        {total.toLocaleString('en')}
        {props.capped ? '+' : ''}
      </span>
      {last < total || props.capped ? <a href={props.href(offset + limit)}>Next</a> : null}
    </nav>
  );
}
