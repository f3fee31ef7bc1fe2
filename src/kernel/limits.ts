/**
 * Limits shared by the CLI, the API and the services. This module imports nothing, so that the CLI's cheap
 * invocations (`--help`) can read a limit without loading the database drivers.
 */

/** The largest page of any list (requests, intake log, system log, error mails, notifications). */
export const MAX_PAGE = 1000;
