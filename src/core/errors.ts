/**
 * Exit codes are part of the CLI contract (docs/exit-codes.md). Scripts and agents branch on them,
 * so they match upstream Crabbox's table; a remote command's own code passes through unchanged.
 */
export const ExitCode = {
  ok: 0,
  generic: 1,
  usage: 2,
  imageNotConfigured: 3,
  leaseNotFound: 4,
  notReady: 5,
  sync: 6,
  /** `run --require-artifact`: a `--download` matched nothing, or only files older than the run. */
  artifactMissing: 7,
  timeout: 124,
  interrupted: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * The one error users see. The message says what went wrong, the hint what to do about it.
 * Everything that reaches the top-level funnel as something else is a bug or an unclassified
 * provider error (exit 1).
 */
export class CrabboxError extends Error {
  override readonly name = "CrabboxError";
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(message: string, options: { exitCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options.exitCode ?? ExitCode.generic;
    this.hint = options.hint;
  }
}

export function usageError(message: string, hint?: string): CrabboxError {
  return new CrabboxError(message, { exitCode: ExitCode.usage, hint });
}

export function isCrabboxError(error: unknown): error is CrabboxError {
  return error instanceof CrabboxError;
}

/** A short, single-line description of any thrown value, for the funnel and for logs. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
