/**
 * A portal patch that switches the per-sender limit off (README "the per-sender limit"): for suites that take in
 * many mails of one sender (the kit's default customer@example.test) to prove something else — exactly once, a
 * crash, an outage — where the 21st mail of the hour going to the error route would only hide what they test.
 */
export const NO_SENDER_LIMIT = { mailSettings: { rateLimit: { maxRequests: 0 } } };
