/**
 * restJson1 as the real SDK reads it (reference §1.1, §1.5): JSON bodies, epoch-second numbers,
 * `x-amzn-RequestId` on every answer, and errors selected by the `x-amzn-ErrorType` header — the SDK
 * never picks an exception class from the HTTP status alone, so the header is what matters.
 */

export interface ApiErrorOptions {
  /** Extra modelled members (resourceId, quotaCode, ...), sent in the body by their member names. */
  members?: Record<string, string>;
  /** Seconds for the `Retry-After` header (Throttling and InternalServer read it as retryAfterSeconds). */
  retryAfter?: number;
  /** AccessDenied for an unsupported region carries no message at all (measured). */
  noMessage?: boolean;
}

/** A modelled AWS error: the handler throws it, the router turns it into the wire shape. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly type: string,
    readonly status: number,
    message: string,
    readonly options: ApiErrorOptions = {},
  ) {
    super(message);
  }
}

export const notFound = (resourceType: string, resourceId: string, message: string) =>
  new ApiError("ResourceNotFoundException", 404, message, { members: { resourceType, resourceId } });

export const conflict = (message: string, resourceType?: string, resourceId?: string) =>
  new ApiError("ConflictException", 409, message, {
    members: { ...(resourceType ? { resourceType } : {}), ...(resourceId ? { resourceId } : {}) },
  });

export const validation = (message: string) => new ApiError("ValidationException", 400, message);

export const accessDenied = (message?: string) =>
  new ApiError("AccessDeniedException", 403, message ?? "", { noMessage: message === undefined });

export function requestId(): string {
  return crypto.randomUUID();
}

/** AWS timestamps on this API are epoch seconds (with a fraction); ISO strings break the SDK. */
export function epochSeconds(ms: number): number {
  return Math.round(ms) / 1000;
}

/** Drop undefined members: the real service omits absent members instead of sending null. */
export function compact<T extends Record<string, unknown>>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value)) if (member !== undefined) out[key] = member;
  return out as T;
}

export function jsonResponse(status: number, body: unknown, id: string): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "x-amzn-RequestId": id },
  });
}

export function errorResponse(error: ApiError, id: string): Response {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-amzn-RequestId": id,
    "x-amzn-ErrorType": error.type,
  };
  if (error.options.retryAfter !== undefined) headers["Retry-After"] = String(error.options.retryAfter);
  // No body `code`: it would shadow the header if the two ever disagreed.
  const body = error.options.noMessage
    ? { ...error.options.members }
    : { message: error.message, ...error.options.members };
  return new Response(JSON.stringify(body), { status: error.status, headers });
}
