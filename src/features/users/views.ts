import { z } from '@hono/zod-openapi';
import type { ConsoleUser } from '../shared/console-kit.js';

export const ROLES = ['admin', 'technician'] as const;
export type Role = (typeof ROLES)[number];

/** What `user list` and the console's user list show of a person: never the password hash. */
export const userViewSchema = z.object({
  id: z.number().int(),
  email: z.string(),
  role: z.enum(ROLES),
  /** The technician's portal; null for admins. */
  portal: z.string().nullable(),
  /** Whether a password is set (false until a --link is used). */
  passwordSet: z.boolean(),
  createdAt: z.string(),
  disabledAt: z.string().nullable(),
});
export type UserView = z.infer<typeof userViewSchema>;

/** The signed-in person a console page acts for (the console kit's type, named here for the users feature). */
export type SessionUser = ConsoleUser;
