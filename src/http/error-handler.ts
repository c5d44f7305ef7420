import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { KnownRoutes } from './contract.js';
import { AppError, appError, asAppError, errorBody, invalidJson, methodNotAllowed, invalidName, invalidRequest, missingField, bodyTooLarge, retryAfterFor, routeNotFound, uriTooLong } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The error name this request was answered with (the audit trail records it). */
    errorName?: string;
  }
}

interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params?: { keys?: string[] };
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A failed schema validation, with each field's problem in details.fields. */
function validationError(raw: FastifyError, req: FastifyRequest): AppError {
  const e = validationErrorOf(raw, req);
  const issues = (raw.validation ?? []) as ValidationIssue[];
  const fields = issues.map((i) => ({
    field: i.instancePath.split('/').filter(Boolean).join('.') || (raw.validationContext ?? 'body'),
    message: i.keyword === 'unrecognized_keys' ? `unknown: ${(i.params?.keys ?? []).join(', ')}` : (i.message ?? 'invalid'),
  }));
  return new AppError(e.code, e.error, e.statusCode, e.message, { ...e.details, fields });
}

function validationErrorOf(raw: FastifyError, req: FastifyRequest): AppError {
  const issues = (raw.validation ?? []) as ValidationIssue[];
  const where = raw.validationContext ?? 'body';
  const text = issues
    .map((i) => {
      const path = i.instancePath.split('/').filter(Boolean).join('.');
      const at = path ? `${path}: ` : where === 'body' ? '' : `${where}: `;
      if (i.keyword === 'unrecognized_keys') return `${at}unknown ${path ? 'option' : where === 'body' ? 'field' : 'parameter'}(s) ${(i.params?.keys ?? []).join(', ')}`;
      return `${at}${i.message ?? 'invalid'}`;
    })
    .join('; ');
  if (where === 'params') return invalidName(text);
  if (where === 'body') {
    // The original API's codes: 10001 for a body that is not a JSON object, 10002 for a
    // missing required field.
    if (req.body !== undefined && !isObject(req.body)) return invalidJson(`the body must be a JSON object (${text})`);
    const missing = issues.find((i) => {
      const path = i.instancePath.split('/').filter(Boolean);
      return i.keyword === 'invalid_type' && path.length === 1 && isObject(req.body) && req.body[path[0]!] === undefined;
    });
    if (missing) return missingField(`${missing.instancePath.slice(1)} is required; ${text}`);
    if (req.body === undefined) return invalidJson(`send a JSON body: ${text}`);
  }
  return invalidRequest(text);
}

/**
 * Seconds a client should wait before trying again: the error's own figure (409 BUSY: what is
 * left of the holder's lease), else the catalogue's (BUSY, IDEMPOTENCY_IN_PROGRESS,
 * TOO_MANY_STREAMS, the gateway's 503s), else 5 for any other 503.
 */
function retryAfterOf(err: AppError): number | null {
  return err.retryAfter ?? retryAfterFor(err.error) ?? (err.statusCode === 503 ? 5 : null);
}

/** Our body for any error: {code, error, message[, details], requestId}. */
function send(reply: FastifyReply, err: AppError) {
  reply.request.errorName = err.error;
  if (err.details?.allow) void reply.header('allow', String(err.details.allow));
  const retry = retryAfterOf(err);
  if (retry !== null) void reply.header('retry-after', String(retry));
  return reply
    .status(err.statusCode)
    .type('application/json; charset=utf-8')
    .send(JSON.stringify({ ...errorBody(err), requestId: reply.request.id }));
}

/** Fastify's `frameworkErrors`: what the router refuses before any route runs. */
export function frameworkErrors(raw: FastifyError, _req: FastifyRequest, reply: FastifyReply) {
  if (raw.code === 'FST_ERR_MAX_PARAM_LENGTH') return send(reply, uriTooLong('a path parameter is too long (names are at most 48 characters)'));
  if (raw.code === 'FST_ERR_BAD_URL') return send(reply, invalidRequest('the URL is not valid (bad percent-encoding)'));
  return send(reply, invalidRequest(raw.message));
}

/** Fastify's `clientErrorHandler`: a request that is not valid HTTP still gets our body. */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket) {
  if (err.code === 'ECONNRESET' || !socket.writable) return socket.destroy();
  const e =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? appError('HEADERS_TOO_LARGE', 'the request headers are too large (at most 16 KiB)')
      : // API_HEADERS_TIMEOUT_MS / API_REQUEST_TIMEOUT_MS passed before the request was in.
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? appError('REQUEST_TIMEOUT', 'the request did not arrive in time')
        : invalidRequest('the request is not valid HTTP');
  const body = JSON.stringify(errorBody(e));
  const reason = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }[e.statusCode as 400 | 408 | 431];
  socket.end(`HTTP/1.1 ${e.statusCode} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** The one place that turns errors into JSON bodies: {code, error, message[, details]}. */
export function registerErrorHandling(app: FastifyInstance, known: KnownRoutes): void {
  app.setErrorHandler((raw: FastifyError | AppError, req, reply) => {
    let err: AppError;
    if (raw instanceof AppError) err = raw;
    else if (raw.validation) err = validationError(raw, req);
    else if (raw.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || raw instanceof SyntaxError) err = invalidJson('the body is not valid JSON');
    else if (raw.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') err = invalidRequest('send the body as application/json');
    else if (raw.code === 'FST_ERR_CTP_BODY_TOO_LARGE') err = bodyTooLarge('the body is too large (at most 1 MiB)');
    else if (raw.statusCode && raw.statusCode >= 400 && raw.statusCode < 500) err = invalidRequest(raw.message);
    else err = asAppError(raw);

    if (err.statusCode >= 500) req.log.error({ err: raw }, err.message);
    else req.log.info({ code: err.error }, err.message);
    return send(reply, err);
  });
  // A path the API serves, with a method it does not take: 405 with Allow (RFC 9110 15.5.6).
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const allowed = known.allowed(path);
    if (allowed.length) return send(reply, methodNotAllowed(allowed.join(', ')));
    return send(reply, routeNotFound(`no endpoint ${req.method} ${path.slice(0, 200)}; see /docs for the API`));
  });
}
