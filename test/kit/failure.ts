import { expect } from 'vitest';
import { MailintakeError } from '../../src/kernel/errors.js';

/** The MailintakeError a promise rejects with; the test fails when it resolves or rejects with anything else. */
export async function failure(p: Promise<unknown>): Promise<MailintakeError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MailintakeError);
  return err as MailintakeError;
}
