// The one catalogue of API errors (after fastify/fastify lib/errors.js): every non-2xx answer of /api and of
// unknown routes is `{ "error": { "code", "message", "details"? } }` with a code from here, whether a route
// threw it, fastify's schema validation rejected the request, or something failed inside.

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DatabaseUnavailableError, isConnectionError } from '../store/db.ts';

export const API_ERRORS = {
  VALIDATION_FAILED: { status: 400, message: 'The request is invalid' },
  BAD_REQUEST: { status: 400, message: 'Bad request' },
  ACCOUNT_NOT_FOUND: { status: 404, message: 'Account not found' },
  // Accounting (issue 11): tokens, ownership, state conflicts, the node wallet.
  UNAUTHORIZED: { status: 401, message: 'A valid token is required (Authorization: Bearer <token>)' },
  FORBIDDEN: { status: 403, message: 'This token may not do that' },
  NOT_FOUND: { status: 404, message: 'Not found' },
  CONFLICT: { status: 409, message: 'Conflicts with the current state' },
  WALLET_UNAVAILABLE: { status: 503, message: 'The node wallet is unavailable' },
  ROUTE_NOT_FOUND: { status: 404, message: 'Route not found' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'Request body too large' },
  URI_TOO_LONG: { status: 414, message: 'Request URI too long' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported media type' },
  INTERNAL: { status: 500, message: 'Internal server error' },
  DATABASE_UNAVAILABLE: { status: 503, message: 'The database is unavailable; try again shortly' },
  DATABASE_NOT_MIGRATED: { status: 503, message: 'The database schema is not migrated yet; try again shortly' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ApiErrorCode = keyof typeof API_ERRORS;

export interface ErrorDetail {
  /** Which part of the request: params, querystring, headers, body. */
  in: string;
  /** JSON pointer into that part, e.g. "/limit" ("" for the whole part). */
  path: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ApiErrorCode,
    message: string = API_ERRORS[code].message,
    readonly details?: ErrorDetail[],
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = API_ERRORS[code].status;
  }
}

export function errorBody(code: ApiErrorCode, message: string, details?: ErrorDetail[]) {
  return { error: { code, message, ...(details ? { details } : {}) } };
}

/** JSON schema of the error body, registered once and referenced by every route's 4xx/5xx responses. */
export const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: Object.keys(API_ERRORS) },
        message: { type: 'string' },
        details: {
          type: 'array',
          items: {
            type: 'object',
            required: ['in', 'path', 'message'],
            properties: { in: { type: 'string' }, path: { type: 'string' }, message: { type: 'string' } },
          },
        },
      },
    },
  },
} as const;

/** The `response` entries every route declares for its errors. */
export const errorResponses = {
  400: { description: 'Invalid request (VALIDATION_FAILED)', $ref: 'Error#' },
  500: { description: 'Internal error', $ref: 'Error#' },
  503: { description: 'The database is unavailable (DATABASE_UNAVAILABLE) or not migrated yet (DATABASE_NOT_MIGRATED); Retry-After says when to try again', $ref: 'Error#' },
} as const;

/** Seconds a client is asked to wait (Retry-After) when the database is unavailable. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

function fromFastifyError(err: FastifyError): ApiError {
  if (err instanceof ApiError) return err;
  // A database outage is not a bug of ours: 503 with a code naming the database (the cause goes to the log only).
  if (err instanceof DatabaseUnavailableError) return new ApiError(err.reason === 'not-migrated' ? 'DATABASE_NOT_MIGRATED' : 'DATABASE_UNAVAILABLE');
  if (isConnectionError(err)) return new ApiError('DATABASE_UNAVAILABLE');
  if (err.validation) {
    const where = err.validationContext ?? 'request';
    const details = err.validation.map((v) => ({ in: where, path: v.instancePath, message: v.message ?? 'invalid' }));
    const first = details[0];
    const message = first ? `${where}${first.path.replaceAll('/', '.')} ${first.message}` : API_ERRORS.VALIDATION_FAILED.message;
    return new ApiError('VALIDATION_FAILED', message, details);
  }
  const status = err.statusCode ?? 500;
  if (status === 413) return new ApiError('PAYLOAD_TOO_LARGE');
  if (status === 414) return new ApiError('URI_TOO_LONG');
  if (status === 415) return new ApiError('UNSUPPORTED_MEDIA_TYPE');
  // Fastify's other client errors (bad URL, malformed JSON, …) carry a safe message of their own.
  if (status >= 400 && status < 500) return new ApiError('BAD_REQUEST', err.message);
  return new ApiError('INTERNAL');
}

function send(req: FastifyRequest, reply: FastifyReply, err: FastifyError): FastifyReply {
  const api = fromFastifyError(err);
  if (api.status === 503) {
    req.log.warn({ err: err.message, code: api.code, reqId: req.id }, 'request failed: database unavailable');
    reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
  } else if (api.status >= 500) {
    // The client gets a generic message; the log keeps the cause, tied to the request id it can quote.
    req.log.error({ err, reqId: req.id }, 'request failed');
  }
  return reply.status(api.status).send(errorBody(api.code, api.message, api.details));
}

/**
 * For Fastify's `frameworkErrors` option: errors the router raises before any route or error handler runs
 * (a malformed URL, a path parameter over maxParamLength) would otherwise answer in Fastify's own format.
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  send(req, reply, err);
}

/** Route every error and every unknown route into the catalogue format. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => send(req, reply, err));
  app.setNotFoundHandler((req, reply) => {
    const path = (req.url.split('?')[0] ?? '').slice(0, 200);
    return reply.status(404).send(errorBody('ROUTE_NOT_FOUND', `No route ${req.method} ${path}`));
  });
}
