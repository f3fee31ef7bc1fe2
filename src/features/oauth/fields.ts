import type { OAuthTokenView } from './tokens.js';

/** The token state as `label: value` lines (mailbox oauth, smtp oauth): never a token. */
export function tokenStateFields(t: OAuthTokenView): [string, string][] {
  return [
    ['status', t.status],
    ['flow', t.flow],
    ['account', t.account ?? '-'],
    ['scope granted', t.grantedScope ?? '-'],
    ['access token until', t.accessTokenExpiresAt ?? '-'],
    ['refresh token', t.refreshTokenSet ? 'stored (never shown)' : 'none'],
    ['authorized at', t.obtainedAt ?? '-'],
    ['last refresh', t.lastRefreshAt ? `${t.lastRefreshAt} (${t.refreshCount} refreshes)` : 'never'],
    ['last error', t.lastError ? `${t.lastError.code}: ${t.lastError.message}` : '-'],
    [
      'pending consent',
      t.pending
        ? `started ${t.pending.startedAt} by ${t.pending.startedBy}, valid until ${t.pending.expiresAt}`
        : '-',
    ],
  ];
}
