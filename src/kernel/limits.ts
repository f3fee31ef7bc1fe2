/**
 * Limits shared by the CLI, the API and the services. This module imports nothing, so that the CLI's cheap
 * invocations (`--help`) can read a limit without loading the database drivers.
 */

/** The largest page of any list (requests, intake log, system log, error mails, notifications). */
export const MAX_PAGE = 1000;

/** Values per `IN (…)` list of one SQL statement (intake-log look-ups by server identity). */
export const SQL_IN_LIST_MAX = 500;
/** Small mails are fetched several at a time (one round trip); larger ones stream one by one. */
export const BATCH_MAIL_MAX_BYTES = 1024 * 1024;
export const BATCH_MAX_BYTES = 16 * 1024 * 1024;
export const BATCH_MAX_COUNT = 100;
/** Mails of one batch parsed at the same time (their sources are in memory already). */
export const PREPARE_CONCURRENCY = 4;
