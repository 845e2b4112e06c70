/**
 * Every non-2xx answer of the runner is `{code, message, fingerprint?}` (docs/protocol.md). Handlers
 * throw RunnerError; the server turns it (and anything unexpected) into that body.
 */
import type { ErrorBody, ErrorCode } from "../src/protocol/types.ts";

const STATUS: Record<ErrorCode, number> = {
  base_mismatch: 409,
  fingerprint_mismatch: 409,
  busy: 409,
  expect_mismatch: 422,
  unknown_exec: 404,
  unsafe_path: 400,
  bad_request: 400,
  too_large: 413,
  not_found: 404,
  internal: 500,
};

export class RunnerError extends Error {
  override readonly name = "RunnerError";
  readonly code: ErrorCode;
  readonly fingerprint: string | undefined;

  constructor(code: ErrorCode, message: string, fingerprint?: string) {
    super(message);
    this.code = code;
    this.fingerprint = fingerprint;
  }

  get status(): number {
    return STATUS[this.code];
  }
}

export const badRequest = (message: string) => new RunnerError("bad_request", message);
export const unsafePath = (message: string) => new RunnerError("unsafe_path", message);

export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

export function errorResponse(error: unknown): Response {
  if (error instanceof RunnerError) {
    const body: ErrorBody = { code: error.code, message: error.message };
    if (error.fingerprint !== undefined) body.fingerprint = error.fingerprint;
    return jsonResponse(body, error.status);
  }
  const message = error instanceof Error ? error.message : String(error);
  return jsonResponse({ code: "internal", message } satisfies ErrorBody, 500);
}
