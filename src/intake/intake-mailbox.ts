import type { AttachmentPolicy } from '../mail/attachment-checks.js';

/** The mailbox a mail came in through, as the store knows it. */
export interface IntakeMailbox {
  id: number;
  name: string;
  portalId: number;
  headerThreading: boolean;
  /** The portal's attachment policy, loaded once per round. Absent: the defaults (DEFAULT_ATTACHMENT_POLICY). */
  attachmentPolicy?: AttachmentPolicy;
  /**
   * Enabled when the round started. Such a round stops at its next batch when the mailbox gets disabled
   * meanwhile (paused to save settings, stopped by the error folder, disabled by an admin). A manual round of a
   * disabled mailbox (`fetch --once --mailbox`) leaves it out and runs to the end.
   */
  enabled?: boolean;
  /**
   * What recognises a per-request reply address (mail/reply-address.ts) sent to this mailbox: its own
   * addresses, and the keys (current first). Absent: no mail threads by a reply address.
   */
  replyAddresses?: { own: string[]; keys: Buffer[] };
  /** The mailbox's address (its first): what we send from on its requests' behalf (acknowledgements). */
  sendFrom?: string;
}
