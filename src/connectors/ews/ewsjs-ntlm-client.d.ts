/**
 * Types for @ewsjs/ntlm-client 3.0.1 (plain CommonJS, ships none): the two functions Mailintake uses.
 * See node_modules/@ewsjs/ntlm-client/lib/ntlm.js.
 */
declare module '@ewsjs/ntlm-client' {
  /** A decoded CHALLENGE (type 2) message. */
  export interface Type2Message {
    flags: number;
    /** 'ucs2' when the server chose Unicode, 'ascii' for OEM strings. */
    encoding: 'ascii' | 'ucs2';
    /** 2 when the server set NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY: the library then answers NTLMv2. */
    version: 1 | 2;
    challenge: Buffer;
    targetName: string;
    /** Present when the server sent a TargetInfo (AV pairs); `buffer` is copied into the NTLMv2 response. */
    targetInfo?: { parsed: Record<string, string>; buffer: Buffer };
  }

  /** Accepts the base64 token, the whole WWW-Authenticate value, or a response with that header. */
  export function decodeType2Message(token: string): Type2Message;

  /** `NTLM <base64 AUTHENTICATE message>`. `target` is the user's domain ('' for a UPN). */
  export function createType3Message(
    type2: Type2Message,
    username: string,
    password: string,
    workstation?: string,
    target?: string,
  ): string;

  const ntlm: {
    decodeType2Message: typeof decodeType2Message;
    createType3Message: typeof createType3Message;
  };
  export default ntlm;
}
