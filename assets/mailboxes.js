// Mailintake console, mailbox pages: progressive enhancement only. Every page works without this file: the
// form's "Show fields" button re-renders it for another protocol, the Redirect URL is selectable text, and
// Authorize leads to a page with a link to the provider. Loaded as a file (the CSP allows no inline script).
'use strict';

(() => {
  const form = document.getElementById('mailbox-form');
  if (form) enhanceForm(form);
  const authorize = document.getElementById('authorize-form');
  if (authorize) enhanceAuthorize(authorize);
  for (const button of document.querySelectorAll('button[data-copy]')) enhanceCopy(button);

  /** Shows the fields of the selected protocol and authentication at once, as the server would. */
  function enhanceForm(f) {
    const protocol = f.querySelector('#f-protocol');
    const auth = f.querySelector('#f-auth');
    const provider = f.querySelector('#f-oauthProvider');
    const flow = f.querySelector('#f-oauthFlow');
    const scope = f.querySelector('#f-scope');
    const scopes = JSON.parse(f.dataset.scopes || '{}');
    const presetValues = new Set(Object.values(scopes));
    const show = f.querySelector('button.show-fields');
    if (show) show.hidden = true;

    const authNow = () => {
      if (auth && auth.value === 'token') return 'token';
      if (protocol.value === 'graph') return 'oauth';
      return auth ? auth.value : 'basic';
    };
    const update = () => {
      const p = protocol.value;
      const a = authNow();
      for (const el of f.querySelectorAll('.shown')) {
        const forList = el.dataset.for ? el.dataset.for.split(' ') : null;
        const okProtocol = !forList || forList.includes(p);
        const okAuth = !el.dataset.auth || el.dataset.auth === a;
        el.hidden = !(okProtocol && okAuth);
      }
    };
    /** The provider preset's scope for the protocol, unless the admin typed a scope of their own. */
    const fillScope = () => {
      if (!scope || !provider) return;
      const key = `${provider.value}/${protocol.value}/${flow ? flow.value : 'authorization-code'}`;
      const preset = scopes[key];
      if (scope.value.trim() === '' || presetValues.has(scope.value.trim())) scope.value = preset || '';
    };
    protocol.addEventListener('change', () => {
      update();
      fillScope();
    });
    if (auth) auth.addEventListener('change', update);
    if (provider) provider.addEventListener('change', fillScope);
    if (flow) flow.addEventListener('change', fillScope);
    update();
  }

  function enhanceCopy(button) {
    const input = document.getElementById(button.dataset.copy);
    const status = button.closest('.field')?.querySelector('.copied');
    button.hidden = false;
    button.addEventListener('click', async () => {
      let ok = false;
      try {
        await navigator.clipboard.writeText(input.value);
        ok = true;
      } catch {
        input.select();
        ok = document.execCommand('copy');
      }
      if (status) status.textContent = ok ? 'Copied.' : 'Select the text and copy it.';
    });
  }

  /**
   * Authorize: the consent opens in a window of its own (opened on the click itself, so a pop-up blocker lets
   * it through), and this page asks for the token state until the consent is done or the window is closed.
   */
  function enhanceAuthorize(f) {
    const message = document.getElementById('authorize-message');
    const state = document.getElementById('token-state');
    const csrf = f.querySelector('input[name="_csrf"]').value;
    const say = (text, kind, link) => {
      message.hidden = false;
      message.className = `message ${kind}`;
      message.setAttribute('role', kind === 'error' ? 'alert' : 'status');
      message.textContent = text;
      if (link) {
        const a = document.createElement('a');
        a.href = link;
        a.id = 'consent-fallback';
        a.textContent = 'Open the consent in this tab';
        message.append(' ', a);
      }
    };
    const start = async () => {
      const res = await fetch(f.action, {
        method: 'POST',
        headers: { accept: 'application/json' },
        body: new URLSearchParams({ _csrf: csrf, format: 'json' }),
        credentials: 'same-origin',
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok || !body.authorizationUrl) {
        throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`);
      }
      return body.authorizationUrl;
    };
    const readState = async () => {
      const res = await fetch(f.dataset.state, { headers: { accept: 'application/json' } });
      return res.ok ? res.json() : null;
    };

    f.addEventListener('submit', async (event) => {
      event.preventDefault();
      const win = window.open('', 'mailintake-consent', 'popup,width=640,height=760');
      const before = await readState().catch(() => null);
      let url;
      try {
        url = await start();
      } catch (err) {
        if (win) win.close();
        say(`The consent could not be started: ${err.message}`, 'error');
        return;
      }
      if (!win) {
        say(
          'Your browser blocked the consent window. Allow pop-ups for this site and click Authorize again, or',
          'error',
          url,
        );
        return;
      }
      win.location.href = url;
      say('Waiting for the consent in the other window: sign in there and approve.', 'notice');
      const changed = (s) =>
        s && s.status === 'authorized' && (!before || before.obtainedAt !== s.obtainedAt);
      const poll = async () => {
        const s = await readState().catch(() => null);
        if (s && state) {
          state.textContent = s.text;
          state.dataset.status = s.status;
        }
        if (changed(s)) {
          say('Authorized: the token is stored and valid.', 'notice');
          return;
        }
        if (win.closed) {
          say('The consent window was closed before the mailbox was authorized.', 'error');
          return;
        }
        setTimeout(poll, 1000);
      };
      setTimeout(poll, 1000);
    });
  }
})();
