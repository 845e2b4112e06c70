import { resolve } from "node:path";
import { MAX_EXEC_TIMEOUT_SECONDS } from "../protocol/types.ts";
import { type DownloadSpec, parseDownloadSpec } from "./artifacts.ts";
import { parseDuration } from "./duration.ts";
import { usageError } from "./errors.ts";

/**
 * The options that make `crabbox run` behave like a local command — stdin, `--timeout`,
 * `--download`, `--json-summary`, `--clean` — checked together before anything touches AWS, so a
 * combination that cannot work is exit 2 and costs no MicroVM.
 */

const MAX_TIMEOUT_MS = MAX_EXEC_TIMEOUT_SECONDS * 1000;

export interface RunOptionArgs {
  stdin?: boolean;
  timeout?: string;
  "artifact-dir"?: string;
  "require-artifact"?: boolean;
  "json-summary"?: string;
  clean?: boolean;
  sync?: boolean;
  "sync-only"?: boolean;
}

export interface RunOptions {
  /** `--stdin` / `--no-stdin`; undefined = attach a FIFO or regular file only. */
  stdin: boolean | undefined;
  timeoutMs: number | undefined;
  downloads: DownloadSpec[];
  /** Absolute. */
  artifactDir: string | undefined;
  requireArtifacts: boolean;
  /** Absolute. */
  summaryFile: string | undefined;
  clean: boolean;
}

/** `downloads` are the raw `--download` values in order (the flag is repeatable). */
export function parseRunOptions(args: RunOptionArgs, downloads: readonly string[], cwd: string): RunOptions {
  let timeoutMs: number | undefined;
  if (args.timeout !== undefined) {
    timeoutMs = parseDuration(args.timeout);
    if (timeoutMs === undefined) throw usageError(`invalid duration "${args.timeout}" for --timeout`);
    if (timeoutMs <= 0) throw usageError("--timeout must be positive", "e.g. --timeout 10m");
    // The runner's own bound; a MicroVM lives at most 8 h anyway.
    if (timeoutMs > MAX_TIMEOUT_MS) throw usageError("--timeout must be at most 720h");
  }
  const specs = downloads.map(parseDownloadSpec);
  const syncOnly = args["sync-only"] === true;
  if (syncOnly && (specs.length > 0 || timeoutMs !== undefined)) {
    throw usageError("--sync-only runs no command: --download and --timeout do not apply");
  }
  if (specs.length === 0 && args["artifact-dir"] !== undefined) {
    throw usageError("--artifact-dir needs --download", "e.g. --download coverage --artifact-dir out");
  }
  if (specs.length === 0 && args["require-artifact"]) {
    throw usageError("--require-artifact needs --download", "e.g. --download dist/app.js --require-artifact");
  }
  if (args.clean && args.sync === false) {
    throw usageError("--clean cleans the workdir as part of the sync; it cannot be combined with --no-sync");
  }
  const dir = args["artifact-dir"]?.trim();
  if (dir === "") throw usageError("--artifact-dir needs a directory");
  const summary = args["json-summary"]?.trim();
  if (summary === "") throw usageError("--json-summary needs a file name");
  return {
    stdin: args.stdin,
    timeoutMs,
    downloads: specs,
    artifactDir: dir === undefined ? undefined : resolve(cwd, dir),
    requireArtifacts: args["require-artifact"] === true,
    summaryFile: summary === undefined ? undefined : resolve(cwd, summary),
    clean: args.clean === true,
  };
}
