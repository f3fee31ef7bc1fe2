/**
 * The statuses a request can have (migration 0009 made every row one of them; a new request is open), in the order a technician moves through them. Import-free, so the CLI's --help (which
 * lists them) loads no schema library.
 */
export const REQUEST_STATUSES = ['open', 'in-progress', 'on-hold', 'resolved', 'closed'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];
