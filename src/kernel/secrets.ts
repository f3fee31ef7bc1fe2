/**
 * Which values of a settings body (API) or file (CLI) are secrets, so that both front doors cut the same ones
 * out of what they print or answer: a mailbox's or the SMTP server's password, a static access token (a Graph
 * mailbox's), an OAuth client secret.
 */

/** Shorter secrets are not cut out: replacing "ab" everywhere would mangle the text, not protect anything. */
export const MIN_REDACTED_LENGTH = 4;

/** The secrets in a settings object, long enough to be cut out (see MIN_REDACTED_LENGTH). */
export function secretsIn(value: unknown): string[] {
  if (!value || typeof value !== 'object') return [];
  const v = value as { password?: unknown; accessToken?: unknown; oauth?: { clientSecret?: unknown } | null };
  return [v.password, v.accessToken, v.oauth?.clientSecret].filter(
    (s): s is string => typeof s === 'string' && s.length >= MIN_REDACTED_LENGTH,
  );
}
