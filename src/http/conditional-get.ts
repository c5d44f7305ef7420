import type { FastifyInstance } from 'fastify';
import { noneMatch } from './conditional.js';

/**
 * If-None-Match on any GET or HEAD whose answer has an ETag: when a tag matches (weak comparison,
 * RFC 9110 13.1.2), 304 Not Modified with the 200's ETag, Cache-Control and Vary and no body,
 * so no Content-Type and no Content-Length. Routes that know their ETag before doing the work
 * (the listing) answer 304 themselves; this covers the rest.
 */
export function registerConditionalGet(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode !== 200 || (req.method !== 'GET' && req.method !== 'HEAD')) return payload;
    const etag = reply.getHeader('etag');
    if (typeof etag !== 'string' || !noneMatch(req.headers['if-none-match'], etag)) return payload;
    reply.code(304).removeHeader('content-type').removeHeader('content-length');
    return null;
  });
}
