import { writeFileSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import { basename, dirname, join } from "node:path";
import { randomHex } from "./crypto.ts";
import { CrabboxError, describeError, ExitCode } from "./errors.ts";
import { interruptSignalOf } from "./interrupt.ts";

/**
 * `run --json-summary <file>`: one JSON object that says what a run did, written on every outcome
 * (success, failure, timeout, Ctrl-C, crabbox's own errors) so agents never scrape stderr. The
 * backend records facts as they happen; `finish` decides status and exit code from them. The shape
 * is documented by docs/run-summary.schema.json and docs/json-outputs.md; change all three together.
 */

const SUMMARY_SCHEMA_VERSION = 1;

export type SummaryStatus = "succeeded" | "failed" | "timed-out" | "canceled" | "provider-error";

export type SummaryPhase = "prepare" | "provision" | "sync" | "command" | "artifacts" | "teardown";

const SUMMARY_PHASES: readonly SummaryPhase[] = [
  "prepare",
  "provision",
  "sync",
  "command",
  "artifacts",
  "teardown",
];

export interface SummarySync {
  /** False when the tree was unchanged and nothing was uploaded. */
  uploaded: boolean;
  /** Compressed bytes sent. */
  bytesSent: number;
  filesWritten: number;
  filesDeleted: number;
  /** `--clean` removed this many unsynced files (null without --clean). */
  removedUnsynced: number | null;
}

export interface SummaryArtifactFile {
  /** Relative to the remote workdir. */
  remote: string;
  /** Relative to the artifact dir. */
  local: string;
  type: "file" | "symlink";
  bytes: number;
}

export interface SummaryDownload {
  /** The `--download` value as given. */
  spec: string;
  /** `downloaded`: at least one file of this run; `stale`: only older files matched; `missing`: nothing did. */
  status: "downloaded" | "stale" | "missing" | "failed";
  files: SummaryArtifactFile[];
  /** Matches older than the command's start (remote paths): left on the MicroVM. */
  stale: string[];
  /** Entries crabbox refused to write (unsafe path, link out of the dir, unsupported type). */
  refused: { remote: string; reason: string }[];
  error: string | null;
}

export interface SummaryArtifacts {
  /** Absolute local directory. */
  dir: string;
  required: boolean;
  downloads: SummaryDownload[];
}

export interface RunSummary {
  schemaVersion: 1;
  runId: string;
  /** null when the run failed before a provider was selected. */
  provider: string | null;
  leaseId: string | null;
  slug: string | null;
  microvmId: string | null;
  region: string | null;
  /** The script the runner executed; null when no command ran (`--sync-only`, or it never started). */
  command: string | null;
  status: SummaryStatus;
  /** crabbox's own process exit code. */
  exitCode: number;
  /** `remote`: the command's own code (or 128+n for a signal); `crabbox`: crabbox decided it. */
  exitCodeSource: "remote" | "crabbox";
  /** The remote command's exit code when it exited by itself (null if killed or never finished). */
  remoteExitCode: number | null;
  /** The signal that ended the remote command, e.g. `SIGTERM` (null when it exited by itself). */
  signal: string | null;
  /** The local signal that interrupted crabbox (null when none did). */
  interrupt: string | null;
  /** Whether the lease is still there after the run (`--keep`, `--id`, `--keep-on-failure`). */
  leaseKept: boolean | null;
  error: { message: string; hint: string | null } | null;
  startedAt: string;
  finishedAt: string;
  /** Milliseconds per phase; null for a phase that did not happen. */
  timings: Record<`${SummaryPhase}Ms`, number | null> & { totalMs: number };
  /** null when nothing was synced (`--no-sync`, or the run ended before). */
  sync: SummarySync | null;
  /** null without `--download`. */
  artifacts: SummaryArtifacts | null;
}

/** What the remote command's exec ended with, as the backend saw it. */
export interface RecordedExec {
  exitCode: number | null;
  signal: string | null;
  reason: "exited" | "signaled" | "timeout" | "canceled" | "interrupted";
}

/** The backend's side: facts as they happen. Every method may be called at most once per fact. */
export interface RunRecorder {
  readonly runId: string;
  lease(info: { leaseId: string; slug: string; microvmId: string; region: string }): void;
  /** A phase's duration; the last call wins (a resync reports the merged sync phase again). */
  phase(name: SummaryPhase, ms: number): void;
  command(script: string): void;
  sync(sync: SummarySync): void;
  exec(exec: RecordedExec): void;
  artifacts(artifacts: SummaryArtifacts): void;
  leaseKept(kept: boolean): void;
  /** Marks a required-artifact failure (the run failed although the command did not). */
  artifactsRequiredFailed(): void;
}

export interface SummaryFinish {
  /** The selected provider, once known. */
  provider?: string;
  /** The exit code crabbox is about to return when the backend returned normally. */
  exitCode?: number;
  /** What the backend (or anything before it) threw. */
  error?: unknown;
  /** The command's abort signal: aborted means the user interrupted. */
  signal?: AbortSignal;
}

export interface SummaryCollector extends RunRecorder {
  /** The summary as it stands, for a given outcome. Call as often as needed. */
  finish(outcome: SummaryFinish): RunSummary;
}

export function newRunId(): string {
  return `run_${randomHex(6)}`;
}

export function createRunSummary(options: { runId?: string; now?: () => number } = {}): SummaryCollector {
  const now = options.now ?? Date.now;
  const started = now();
  const runId = options.runId ?? newRunId();
  const phases = new Map<SummaryPhase, number>();
  let lease: { leaseId: string; slug: string; microvmId: string; region: string } | undefined;
  let script: string | null = null;
  let sync: SummarySync | null = null;
  let exec: RecordedExec | undefined;
  let artifacts: SummaryArtifacts | null = null;
  let kept: boolean | null = null;
  let requiredFailed = false;

  return {
    runId,
    lease(info) {
      lease = { ...info };
    },
    phase(name, ms) {
      phases.set(name, Math.max(0, ms));
    },
    command(text) {
      script = text;
    },
    sync(value) {
      sync = { ...value };
    },
    exec(value) {
      exec = { ...value };
    },
    artifacts(value) {
      artifacts = value;
    },
    leaseKept(value) {
      kept = value;
    },
    artifactsRequiredFailed() {
      requiredFailed = true;
    },
    finish(outcome) {
      const finished = now();
      const interrupted = outcome.signal?.aborted === true;
      const error = outcome.error;
      const errorCode = error instanceof CrabboxError ? error.exitCode : ExitCode.generic;
      let status: SummaryStatus;
      let exitCode: number;
      let source: "remote" | "crabbox" = "crabbox";
      if (interrupted || exec?.reason === "interrupted") {
        status = "canceled";
        exitCode = ExitCode.interrupted;
      } else if (exec?.reason === "timeout") {
        status = "timed-out";
        exitCode = ExitCode.timeout;
      } else if (error !== undefined) {
        status = requiredFailed ? "failed" : "provider-error";
        exitCode = errorCode;
      } else if (exec) {
        exitCode = outcome.exitCode ?? exec.exitCode ?? signalExitCode(exec.signal);
        status = exitCode === 0 ? "succeeded" : "failed";
        source = "remote";
      } else {
        exitCode = outcome.exitCode ?? ExitCode.ok;
        status = exitCode === 0 ? "succeeded" : "provider-error";
      }
      const timings = {} as RunSummary["timings"];
      for (const phase of SUMMARY_PHASES) {
        const ms = phases.get(phase);
        timings[`${phase}Ms`] = ms === undefined ? null : Math.round(ms);
      }
      timings.totalMs = Math.max(0, Math.round(finished - started));
      return {
        schemaVersion: SUMMARY_SCHEMA_VERSION,
        runId,
        provider: outcome.provider ?? null,
        leaseId: lease?.leaseId ?? null,
        slug: lease?.slug || null,
        microvmId: lease?.microvmId || null,
        region: lease?.region ?? null,
        command: script,
        status,
        exitCode,
        exitCodeSource: source,
        remoteExitCode: exec?.exitCode ?? null,
        signal: exec?.signal ?? null,
        interrupt: interruptSignalOf(outcome.signal?.reason) ?? (interrupted ? "SIGINT" : null),
        leaseKept: kept,
        error:
          error === undefined
            ? null
            : {
                message: describeError(error),
                hint: error instanceof CrabboxError ? (error.hint ?? null) : null,
              },
        startedAt: new Date(started).toISOString(),
        finishedAt: new Date(finished).toISOString(),
        timings,
        sync,
        artifacts,
      };
    },
  };
}

/**
 * A shell's view of a command a signal ended: 128+n (`SIGKILL` or `KILL` → 137); 1 with no signal,
 * or one this platform has no number for. The exec's exit code and the summary's agree through it.
 */
export function signalExitCode(signal: string | null): number {
  if (signal === null) return ExitCode.generic;
  const name = (signal.startsWith("SIG") ? signal : `SIG${signal}`) as keyof typeof constants.signals;
  const number = constants.signals[name];
  return typeof number === "number" ? 128 + number : ExitCode.generic;
}

function serialize(summary: RunSummary): string {
  return `${JSON.stringify(summary, null, 2)}\n`;
}

/** Writes the summary atomically (temp + rename), so a reader never sees half of it. */
export async function writeRunSummary(file: string, summary: RunSummary): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(file)}.tmp-${randomHex(6)}`);
  try {
    await writeFile(temp, serialize(summary), { mode: 0o644 });
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => {});
    throw error;
  }
}

/** The same, synchronously: a forced exit (second Ctrl-C) cannot wait for promises. */
export function writeRunSummarySync(file: string, summary: RunSummary): void {
  writeFileSync(file, serialize(summary), { mode: 0o644 });
}
