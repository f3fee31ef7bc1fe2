import type { Child } from 'hono/jsx';
import { authOf, type FormValues, protocolOf } from './form.js';

/** Small pieces of the mailbox form: a part shown per protocol and authentication, and a labelled checkbox. */

/** A part of the form shown for some protocols (space-separated) and, optionally, one authentication. */
export function Shown(props: { v: FormValues; for: string; auth?: string; children: Child }) {
  const visible =
    props.for.split(' ').includes(protocolOf(props.v)) && (!props.auth || props.auth === authOf(props.v));
  return (
    <div class="shown" data-for={props.for} data-auth={props.auth} hidden={!visible}>
      {props.children}
    </div>
  );
}

/** A labelled checkbox with its help text. */
export function Check(props: { name: string; label: string; v: FormValues; help?: Child }) {
  const id = `f-${props.name}`;
  return (
    <div class="field check">
      <input
        type="checkbox"
        id={id}
        name={props.name}
        checked={props.v[props.name] === 'on'}
        aria-describedby={props.help ? `${id}-help` : undefined}
      />
      <label for={id}>{props.label}</label>
      {props.help ? (
        <p class="help" id={`${id}-help`}>
          {props.help}
        </p>
      ) : null}
    </div>
  );
}
