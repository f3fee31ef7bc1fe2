import type { Readable } from 'node:stream';
import { HEADER_BYTES, type SecretBox } from '../../kernel/secret-box.js';
import type { BlobStore } from '../../store/blobs/blob-store.js';
import type { Store } from '../../store/db.js';
import { systemLog } from '../../store/system-log.js';
import { withTransaction } from '../../store/tx.js';
import { createSealedRepo, SEALED_OAUTH_TABLES } from './repo.js';

/** What `secret-key reseal` did. */
export interface ResealResult {
  /** Mailbox passwords and tokens sealed again with the current key / already sealed with it. */
  mailboxSecrets: { resealed: number; current: number; unreadable: string[] };
  /** Sealed fields of instance settings (the outgoing SMTP server's password…), by setting key. */
  instanceSecrets: { resealed: number; current: number; unreadable: string[] };
  /** OAuth tokens (mailboxes, SMTP) and the PKCE verifiers of consents in progress. */
  oauthTokens: { resealed: number; current: number; unreadable: string[] };
  /** Error reports and POP3's kept error mails (blobs) sealed again / already current / not openable. */
  errorMailBlobs: { resealed: number; current: number; unreadable: string[] };
}

export interface SecretKeyService {
  /** Key rotation: seals everything sealed with a previous key again with the current one. */
  reseal(): Promise<ResealResult>;
}

/** Key rotation (see resealAll). */
export function createSecretKeyService(deps: {
  store: Store;
  blobs: BlobStore;
  box: SecretBox;
}): SecretKeyService {
  return { reseal: () => resealAll(deps) };
}

/**
 * Key rotation, second step: seals everything Mailintake sealed with a previous key again with the current
 * one (MAILINTAKE_SECRET_KEY), so the previous key can be dropped from MAILINTAKE_SECRET_KEY_PREVIOUS.
 * Each value is opened with whichever configured key sealed it, sealed anew, and its row updated in a
 * transaction; a blob's old file is deleted only after the rows point at the new one. Safe to run again: what is
 * sealed with the current key already is left alone. A crash between the row update and the deletion leaves the
 * old file behind, sealed with the old key and named by no row.
 */
export async function resealAll(deps: {
  store: Store;
  blobs: BlobStore;
  box: SecretBox;
}): Promise<ResealResult> {
  const { store, blobs, box } = deps;
  const repo = createSealedRepo(store);
  const result: ResealResult = {
    mailboxSecrets: { resealed: 0, current: 0, unreadable: [] },
    instanceSecrets: { resealed: 0, current: 0, unreadable: [] },
    errorMailBlobs: { resealed: 0, current: 0, unreadable: [] },
    oauthTokens: { resealed: 0, current: 0, unreadable: [] },
  };

  const mailboxes = await repo.mailboxSecrets();
  for (const m of mailboxes) {
    let plain: string;
    try {
      if (box.sealedWithCurrentKey(m.secrets)) {
        result.mailboxSecrets.current++;
        continue;
      }
      plain = box.open(m.secrets);
    } catch {
      // sealed with a key that is not configured: name it, go on with the rest
      result.mailboxSecrets.unreadable.push(m.name);
      continue;
    }
    const resealed = box.seal(plain);
    // compare-and-set: a mailbox updated meanwhile (new password) keeps its new value
    await repo.swapMailboxSecrets(m.id, m.secrets, resealed);
    result.mailboxSecrets.resealed++;
  }

  // Instance settings are JSON; a sealed value is a top-level string field named `…Sealed` (smtp.passwordSealed).
  for (const setting of await repo.instanceSettings()) {
    const value = setting.parsed;
    if (!value || typeof value !== 'object' || Array.isArray(value)) continue;
    const fields = value as Record<string, unknown>;
    let changed = false;
    for (const [field, sealed] of Object.entries(fields)) {
      if (!field.endsWith('Sealed') || typeof sealed !== 'string') continue;
      try {
        if (box.sealedWithCurrentKey(sealed)) {
          result.instanceSecrets.current++;
          continue;
        }
        fields[field] = box.seal(box.open(sealed));
        changed = true;
        result.instanceSecrets.resealed++;
      } catch {
        result.instanceSecrets.unreadable.push(`${setting.key}.${field}`);
      }
    }
    if (changed) {
      await repo.swapInstanceSetting(setting.key, setting.value, JSON.stringify(fields));
    }
  }

  // OAuth tokens: compare-and-set like the mailboxes, so a refresh that saved new tokens meanwhile wins
  for (const t of SEALED_OAUTH_TABLES) {
    for (const { id, sealed } of await repo.sealedOAuth(t)) {
      try {
        if (box.sealedWithCurrentKey(sealed)) {
          result.oauthTokens.current++;
          continue;
        }
        await repo.swapSealedOAuth(t, id, sealed, box.seal(box.open(sealed)));
        result.oauthTokens.resealed++;
      } catch {
        result.oauthTokens.unreadable.push(t.table === 'oauth_tokens' ? id : 'a consent in progress');
      }
    }
  }

  for (const key of await repo.errorMailBlobs()) {
    const index = box.keyIndexOfSealedBytes(await head(blobs.get(key)));
    if (index === 0) {
      result.errorMailBlobs.current++;
      continue;
    }
    if (index < 0) {
      result.errorMailBlobs.unreadable.push(key);
      continue;
    }
    const sealed = blobs.get(key);
    const opener = box.openStream();
    const sealer = box.sealStream();
    sealed.once('error', (err) => opener.destroy(err));
    opener.once('error', (err) => sealer.destroy(err));
    const fresh = (await blobs.put(sealed.pipe(opener).pipe(sealer))).sha256;
    await withTransaction(store, (tx) => repo.repointErrorMailBlob(tx, key, fresh));
    await blobs.remove?.(key);
    result.errorMailBlobs.resealed++;
  }

  await withTransaction(store, (tx) =>
    systemLog(tx, {
      level: 'info',
      category: 'secret-key',
      message: `sealed data resealed with the current key: ${result.mailboxSecrets.resealed} mailbox secrets, ${result.instanceSecrets.resealed} instance secrets, ${result.errorMailBlobs.resealed} error-mail blobs`,
      details: { ...result },
    }),
  );
  return result;
}

/** The first HEADER_BYTES of a blob (its sealed-bytes header), the rest not read. */
async function head(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream) {
      parts.push(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (length >= HEADER_BYTES) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(parts).subarray(0, HEADER_BYTES);
}
