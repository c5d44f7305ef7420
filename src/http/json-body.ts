import type { FastifyInstance } from 'fastify';
import { invalidJson } from '../errors.js';
import { parseJsonBounded } from '../resources/json-depth.js';

/**
 * Request bodies: an empty body is {} ("no options"); anything else must be JSON, whatever its
 * content type, so `curl -d '{...}'` (form-encoded by default) works too. A body that is not
 * JSON, or nests deeper than MAX_JSON_DEPTH (resources/json-depth.ts), answers 400 INVALID_JSON.
 */
export function registerJsonBody(app: FastifyInstance): void {
  const parseJson = (_req: unknown, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) => {
    const text = String(body).trim();
    if (text === '') return done(null, undefined);
    let value: unknown;
    try {
      value = parseJsonBounded(text);
    } catch (e) {
      return done(invalidJson(e instanceof SyntaxError ? 'the body is not valid JSON' : `the body is ${(e as Error).message}`), undefined);
    }
    done(null, value);
  };
  // No body at all is the same as {} (Fastify would hand validators null, as for a JSON null).
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined && req.routeOptions.schema?.body) req.body = {};
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson);
  app.addContentTypeParser('*', { parseAs: 'string' }, parseJson);
}
