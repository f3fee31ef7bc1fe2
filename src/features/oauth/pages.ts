import type { CompletedAuthorization } from './tokens.js';

/**
 * The page the browser lands on after the consent (GET /oauth/callback). It needs no API key: the one-use state
 * in the URL is what authorizes completing the consent it belongs to. It says what happened and, on failure,
 * what to fix; it never shows a token.
 */
const esc = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!,
  );

function page(title: string, ok: boolean, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${esc(title)} · Mailintake</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f}
h1{font-size:1.4rem}
.ok{color:#0a6b2b}.fail{color:#a4161a}
code{background:#f2f2f2;padding:0 .25rem;border-radius:3px}
li{margin:.3rem 0}
</style>
</head>
<body>
<h1 class="${ok ? 'ok' : 'fail'}" data-outcome="${ok ? 'authorized' : 'failed'}">${esc(title)}</h1>
${body}
</body>
</html>`;
}

export function authorizedPage(done: CompletedAuthorization): string {
  const lines = [
    `<p>${esc(capital(done.label))} is authorized${done.account ? ` for <code>${esc(done.account)}</code>` : ''}. Mailintake keeps the tokens encrypted and refreshes them by itself; you can close this page.</p>`,
    '<ul>',
    `<li>Scope granted: <code>${esc(done.grantedScope)}</code></li>`,
    `<li>Refresh token: ${done.refreshTokenSet ? 'issued' : '<strong>not issued</strong>'}</li>`,
    ...(done.accessTokenExpiresAt
      ? [`<li>Access token valid until ${esc(done.accessTokenExpiresAt)}</li>`]
      : []),
    '</ul>',
    ...(done.warnings.length
      ? ['<h2>Please check</h2><ul>', ...done.warnings.map((w) => `<li>${esc(w)}</li>`), '</ul>']
      : []),
  ];
  // a mailbox's consent opened in the same tab (no script) goes back to its page from here
  const mailbox = done.owner.startsWith('mailbox:') ? /^mailbox "(.+)"$/.exec(done.label)?.[1] : undefined;
  if (mailbox)
    lines.push(`<p><a href="/mailboxes/${esc(encodeURIComponent(mailbox))}">Back to the mailbox</a></p>`);
  return page('Authorized', true, lines.join('\n'));
}

export function failedPage(code: string, message: string): string {
  return page(
    'Authorization failed',
    false,
    `<p data-code="${esc(code)}"><strong>${esc(code)}</strong></p>\n<p>${esc(message)}</p>`,
  );
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
