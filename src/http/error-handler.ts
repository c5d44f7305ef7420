import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, ErrorCodes, invalidJson, invalidRequest, routeNotFound } from '../errors.js';

/** The one place that turns errors into JSON bodies: {code, error, message[, details]}. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((raw: FastifyError | AppError, req, reply) => {
    let err: AppError;
    if (raw instanceof AppError) err = raw;
    else if (raw.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || raw instanceof SyntaxError) err = invalidJson('the body is not valid JSON');
    else if (raw.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') err = invalidRequest('send the body as application/json');
    else if (raw.code === 'FST_ERR_CTP_BODY_TOO_LARGE') err = new AppError(ErrorCodes.INVALID_REQUEST, 'INVALID_REQUEST', 413, 'the body is too large');
    else if (raw.statusCode && raw.statusCode >= 400 && raw.statusCode < 500) err = invalidRequest(raw.message);
    else err = new AppError(ErrorCodes.INTERNAL, 'INTERNAL', 500, 'internal error; see the service log');

    if (err.statusCode >= 500) req.log.error({ err: raw }, err.message);
    else req.log.info({ code: err.error }, err.message);
    if (err.details?.allow) void reply.header('allow', String(err.details.allow));
    return reply.status(err.statusCode).send({
      code: err.code,
      error: err.error,
      message: err.message,
      ...(err.details ? { details: err.details } : {}),
    });
  });
  app.setNotFoundHandler((req, reply) => {
    const err = routeNotFound(`no endpoint ${req.method} ${req.url.split('?')[0]}; see README for the API`);
    return reply.status(404).send({ code: err.code, error: err.error, message: err.message });
  });
}
