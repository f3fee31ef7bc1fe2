// Mailintake console, request page: progressive enhancement only. Without this file the page shows each reply's
// delivery as it was when the page was made; with it, a reply still queued or retrying is updated in place
// (Queued → Sent) by asking the page's own JSON for the states. Loaded as a file (the CSP allows no inline script).
'use strict';

(() => {
  const waiting = () =>
    document.querySelectorAll('[data-delivery-state="pending"], [data-delivery-state="retrying"]');
  if (waiting().length === 0) return;
  const url = `${location.pathname.replace(/\/$/, '')}/deliveries`;
  const EVERY_MS = 2000;
  const update = async () => {
    try {
      const res = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!res.ok) return;
      for (const d of await res.json()) {
        const el = document.querySelector(`[data-conversation="${d.conversationId}"]`);
        if (!el || el.dataset.deliveryState === d.state) continue;
        el.dataset.deliveryState = d.state;
        el.className = `delivery-state delivery-${d.state}`;
        el.textContent = d.words;
      }
    } catch {
      // the next round asks again
    }
    if (waiting().length > 0) setTimeout(update, EVERY_MS);
  };
  setTimeout(update, EVERY_MS);
})();
