// Errors: expected outcomes are values (Result); unexpected failures are SeigoError subclasses
// with a stable `code`, an HTTP status and `retryable`, rendered as RFC 9457 problem+json.

export type Result<T, E = string> = { ok: true; value: T } | { ok: false; error: E };
export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E>(error: E): Result<never, E> => ({ ok: false, error });

export class SeigoError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
    readonly retryable = false,
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequestError extends SeigoError {
  constructor(code: string, message: string, detail?: Record<string, unknown>) {
    super(code, message, 400, false, detail);
  }
}
export class UnauthorizedError extends SeigoError {
  constructor(code: string, message: string) {
    super(code, message, 401, false);
  }
}
export class NotFoundError extends SeigoError {
  constructor(code: string, message: string) {
    super(code, message, 404, false);
  }
}
export class ConfigError extends SeigoError {
  constructor(message: string) {
    super('invalid_config', message, 500, false);
  }
}

/** RFC 9457 problem details; `code` is our stable machine-readable extension member. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  [extension: string]: unknown;
}

export function problem(status: number, code: string, detail?: string, extra?: Record<string, unknown>): Problem {
  return {
    type: `https://seigo.dev/problems/${code.replaceAll('_', '-')}`,
    title: code.replaceAll('_', ' '),
    status,
    code,
    ...(detail === undefined ? {} : { detail }),
    ...extra,
  };
}
