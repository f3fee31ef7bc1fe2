import { HTTPS_MAX_ATTEMPTS, HTTPS_MAX_TOTAL_WAIT_MS, HTTPS_REQUEST_TIMEOUT_MS } from '../kernel/limits.js';
import type { Logger } from '../kernel/logger.js';
import type { AccessTokenSource } from '../oauth/token-source.js';

// What the two HTTPS mail APIs (Graph and EWS, both Exchange) share: the options they take, their request
// limits (Exchange gives both the same throttling advice), and how a Retry-After is read.

export interface RequestTimeouts {
  /** Silence on a request (connect, headers or body) before giving up. Default 60 s. */
  requestMs: number;
}

export interface RetryLimits {
  /** Attempts per request, the first included. Default 5. */
  maxAttempts: number;
  /** Longest total wait for one request across its retries. Default 120 s. */
  maxTotalWaitMs: number;
}

export const DEFAULT_REQUEST_TIMEOUTS: RequestTimeouts = { requestMs: HTTPS_REQUEST_TIMEOUT_MS };
export const DEFAULT_RETRY_LIMITS: RetryLimits = {
  maxAttempts: HTTPS_MAX_ATTEMPTS,
  maxTotalWaitMs: HTTPS_MAX_TOTAL_WAIT_MS,
};

/** The options of an HTTPS connector besides the mailbox's settings. */
export interface HttpsApiOptions {
  logger?: Logger;
  /** A private CA (PEM) to trust in addition to the system's. Overrides settings.caFile. */
  ca?: Buffer;
  /** How the connector waits before a retry; tests pass one that records and returns at once. */
  sleep?: (ms: number) => Promise<void>;
  timeouts?: Partial<RequestTimeouts>;
  retry?: Partial<RetryLimits>;
  /** Where OAuth 2.0 access tokens come from; required when `settings.auth` is "oauth2", unused otherwise. */
  tokens?: AccessTokenSource;
}

/** The real wait between retries (tests pass `sleep` instead). */
export const sleepFor = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Retry-After in milliseconds: delta-seconds (what Graph sends) or an HTTP date. Unparseable → undefined
 * (the caller backs off on its own). A negative or absurd value must not become "retry at once, forever".
 */
export function retryAfterMs(header: string | null, now: () => number = Date.now): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // only an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"): Date.parse('-5') would read a year
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now());
}
