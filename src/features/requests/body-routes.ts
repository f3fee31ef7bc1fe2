import { Readable } from 'node:stream';
import type { Env, Hono } from 'hono';
import { MailintakeError } from '../../kernel/errors.js';
import { contentDisposition, downloadContentType } from '../shared/download.js';
import type { RequestsService } from './service.js';

/**
 * The mail body frame of the console (issue 12 §6, the second layer): a mail's sanitised HTML, or its plain text
 * as HTML, served as a document of its own, for the request page to show in
 * `<iframe sandbox="allow-popups allow-popups-to-escape-sandbox">` (no allow-scripts, no allow-same-origin;
 * allow-popups lets the mail's links, all `target="_blank"`, open outside the frame).
 *
 * The document carries its own CSP: no script, no connection, no form, no base, images only from our origin
 * (the inline `cid:` parts) and `data:` (plus http and https with `?images=1`, the per-mail "show images"),
 * framed only by our origin.
 */

export const BODY_CSP =
  "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";
export const BODY_CSP_WITH_IMAGES =
  "default-src 'none'; img-src 'self' data: https: http:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/** Console paths (no /api prefix), stable so the request page can build them. */
export const bodyPath = (requestId: number, conversationId: number | null): string =>
  conversationId === null
    ? `/requests/${requestId}/body`
    : `/requests/${requestId}/conversations/${conversationId}/body`;
export const inlinePath = (requestId: number, attachmentId: number): string =>
  `/requests/${requestId}/inline/${attachmentId}`;

const FRAME_STYLE =
  'html,body{margin:0;padding:0}body{padding:12px;font:14px/1.45 system-ui,sans-serif;color:#111;background:#fff;' +
  'overflow-wrap:anywhere}img{max-width:100%;height:auto}table{max-width:100%}pre{white-space:pre-wrap}';

const frameDocument = (fragment: string): string =>
  `<!doctype html>\n<html><head><meta charset="utf-8"><style>${FRAME_STYLE}</style></head><body>${fragment}</body></html>\n`;

const commonHeaders = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'private, no-store',
};

const id = '{[0-9]+}';
/** A path id; one no row can have (0, beyond 2^53) is simply not found. */
const idOf = (raw: string | undefined, what: string): number => {
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new MailintakeError('NOT_FOUND', `no ${what} #${raw}`);
  return n;
};

/**
 * `inlineImages: 'embedded'` (what the console uses) carries the mail's inline images in the document as
 * `data:` URLs. The frame is sandboxed without allow-same-origin, so its origin is opaque and every request it
 * makes is cross-site: the session cookie (SameSite=Lax) does not go with them, and an image linked to the
 * inline route would meet the sign-in redirect. 'linked' (the default) points them at the inline route, for a
 * caller that authorizes those requests some other way.
 */
export const EMBEDDED_IMAGE_LIMITS = { maxBytes: 5 * 1024 * 1024, maxTotalBytes: 20 * 1024 * 1024 };

/**
 * Mounts `GET /requests/{id}/body` (the request's first mail), `GET /requests/{id}/conversations/{cid}/body`
 * (`?images=1` shows remote images) and `GET /requests/{id}/inline/{attachmentId}` (an inline part: its stored
 * type when that is an image type, else application/octet-stream as an attachment; always nosniff).
 *
 * SECURITY: these routes check nothing about who asks. Mount them only behind the console's session check (and
 * its portal scoping for technicians): whoever reaches them reads any request's mail. Errors (NOT_FOUND for an
 * unknown request, conversation or attachment) are thrown as MailintakeError for the console's error handler.
 */
export function mountRequestBodyRoutes<E extends Env>(
  app: Hono<E>,
  services: { requests: RequestsService },
  options: { inlineImages?: 'linked' | 'embedded' } = {},
): void {
  const body = async (requestId: number, conversationId: number | null, images: boolean) => {
    const view = await services.requests.body({
      requestId,
      conversationId,
      remoteImages: images,
      inlineUrl: (attachmentId) => inlinePath(requestId, attachmentId),
      ...(options.inlineImages === 'embedded' ? { embedImages: EMBEDDED_IMAGE_LIMITS } : {}),
    });
    return new Response(frameDocument(view.html), {
      status: 200,
      headers: {
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Security-Policy': images ? BODY_CSP_WITH_IMAGES : BODY_CSP,
        'X-Frame-Options': 'SAMEORIGIN',
        'X-Blocked-Remote-Images': String(view.blockedRemoteImages),
        ...commonHeaders,
      },
    });
  };
  app.get(`/requests/:id${id}/body`, (c) =>
    body(idOf(c.req.param('id'), 'request'), null, c.req.query('images') === '1'),
  );
  app.get(`/requests/:id${id}/conversations/:cid${id}/body`, (c) =>
    body(
      idOf(c.req.param('id'), 'request'),
      idOf(c.req.param('cid'), 'conversation'),
      c.req.query('images') === '1',
    ),
  );
  app.get(`/requests/:id${id}/inline/:attachmentId${id}`, async (c) => {
    const { meta, open } = await services.requests.inlinePart(
      idOf(c.req.param('id'), 'request'),
      idOf(c.req.param('attachmentId'), 'attachment'),
    );
    const type = downloadContentType(meta.contentType);
    const image = type.startsWith('image/');
    return new Response(Readable.toWeb(open()) as unknown as ReadableStream<Uint8Array>, {
      status: 200,
      headers: {
        'Content-Type': image ? type : 'application/octet-stream',
        'Content-Disposition': image ? 'inline' : contentDisposition(meta.filename),
        'Content-Length': String(meta.size),
        'Content-Security-Policy': "default-src 'none'; sandbox",
        ...commonHeaders,
      },
    });
  });
}
