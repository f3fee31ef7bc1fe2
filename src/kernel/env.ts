import path from 'node:path';
import { z } from 'zod';
import {
  DEFAULT_LEASE_SECONDS,
  DEFAULT_MAX_MAIL_MB,
  MAX_LEASE_SECONDS,
  MAX_MAIL_MB_CEILING,
  MIN_LEASE_SECONDS,
} from './limits.js';
import { ConfigError, DEFAULT_DATA_DIR } from './store-location.js';

export { ConfigError };

/**
 * The environment, read once at start. Everything else receives the parsed `AppConfig` as an argument.
 * An invalid value stops the process with every problem listed (not just the first).
 */
const envSchema = z.object({
  MAILINTAKE_DATA_DIR: z.string().min(1).default(DEFAULT_DATA_DIR),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// connection string')
    .optional(),
  /** 32 bytes, base64: the key that seals passwords and tokens. Without it, DATA_DIR/secret.key is used. */
  MAILINTAKE_SECRET_KEY: z.string().optional(),
  /**
   * Key rotation: earlier keys (base64, comma-separated) that only open data sealed before the rotation, until
   * `mailintake secret-key reseal` has sealed it again with MAILINTAKE_SECRET_KEY. Nothing new is sealed with them.
   */
  MAILINTAKE_SECRET_KEY_PREVIOUS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    )
    .optional(),
  /**
   * Largest mail taken in, in MB (default DEFAULT_MAX_MAIL_MB, 100); a larger one fails with MAIL_TOO_LARGE (error folder). -1:
   * unlimited. 0 or a fraction is refused: it must not silently switch the protection against mail bombs off.
   */
  MAILINTAKE_MAX_MAIL_MB: z.coerce
    .number()
    .int('a whole number of MB')
    .refine(
      (n) => n === -1 || (n >= 1 && n <= MAX_MAIL_MB_CEILING),
      `from 1 to ${MAX_MAIL_MB_CEILING}, or -1 for unlimited`,
    )
    .default(DEFAULT_MAX_MAIL_MB),
  MAILINTAKE_PORT: z.coerce.number().int().min(1).max(65535).default(8025),
  MAILINTAKE_HOST: z.string().min(1).default('127.0.0.1'),
  /**
   * The address admins and OAuth providers reach this service at (https://helpdesk.example.com, behind a proxy).
   * The OAuth redirect URL is this + /oauth/callback. Default http://localhost:MAILINTAKE_PORT.
   */
  MAILINTAKE_PUBLIC_URL: z
    .string()
    .trim()
    .refine((v) => {
      try {
        const u = new URL(v);
        return (u.protocol === 'https:' || u.protocol === 'http:') && !u.search && !u.hash && !u.username;
      } catch {
        return false;
      }
    }, 'must be an http(s):// base URL such as https://helpdesk.example.com, without query or fragment')
    .optional(),
  /** How long a fetch lease lasts without renewal; a crashed worker's mailbox is free again after this. */
  MAILINTAKE_LEASE_SECONDS: z.coerce
    .number()
    .int()
    .min(MIN_LEASE_SECONDS)
    .max(MAX_LEASE_SECONDS)
    .default(DEFAULT_LEASE_SECONDS),
  MAILINTAKE_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});

export interface AppConfig {
  dataDir: string;
  databaseUrl: string | undefined;
  secretKey: string | undefined;
  /** MAILINTAKE_SECRET_KEY_PREVIOUS: keys that only open data sealed before a key rotation. */
  previousSecretKeys?: string[];
  /** MAILINTAKE_MAX_MAIL_MB: the largest mail taken in, in MB; -1 unlimited. */
  maxMailMb?: number;
  port: number;
  host: string;
  /**
   * MAILINTAKE_PUBLIC_URL without a trailing slash; the OAuth redirect URL is this + /oauth/callback. Unset: the
   * runtime derives it (src/features/oauth/public-url.ts), so that `serve --port` and a CLI command agree.
   */
  publicUrl?: string;
  /** Set by `serve` once it listens: the port the service really answers on (--port, MAILINTAKE_PORT, 0). */
  listeningPort?: number;
  leaseSeconds: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  // An empty variable means "not set": `DATABASE_URL= mailintake serve` must not be an error.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid environment:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    dataDir: path.resolve(e.MAILINTAKE_DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    secretKey: e.MAILINTAKE_SECRET_KEY,
    previousSecretKeys: e.MAILINTAKE_SECRET_KEY_PREVIOUS ?? [],
    maxMailMb: e.MAILINTAKE_MAX_MAIL_MB,
    port: e.MAILINTAKE_PORT,
    ...(e.MAILINTAKE_PUBLIC_URL ? { publicUrl: e.MAILINTAKE_PUBLIC_URL.replace(/\/+$/, '') } : {}),
    host: e.MAILINTAKE_HOST,
    leaseSeconds: e.MAILINTAKE_LEASE_SECONDS,
    logLevel: e.MAILINTAKE_LOG_LEVEL,
  };
}
