/**
 * Runner wire protocol v1: every shape the CLI, the runner and the emulator exchange, typed once.
 * The prose contract is docs/protocol.md; keep the two in step.
 */

export const PROTOCOL_VERSION = 1;
/** The oldest runner protocol this CLI can drive. */
export const MIN_PROTOCOL_VERSION = 1;
export const RUNNER_PORT = 8080;

export interface HealthResponse {
  status: "ok";
  version: string;
  protocol: number;
}

/** One synced path, as both sides describe it. Paths are relative, `/`-separated, no `.`/`..`. */
export type ManifestEntry =
  | { path: string; type: "file"; mode: number; size: number; sha256: string }
  | { path: string; type: "symlink"; target: string; size: number; sha256: string };

export interface ManifestResponse {
  workdir: string;
  fingerprint: string;
  entries: ManifestEntry[];
  /** Present with `unsynced=1`: files in the workdir crabbox did not sync. */
  unsynced?: { count: number; bytes: number };
}

/** `empty` stands for a workdir with no manifest yet. */
export const EMPTY_FINGERPRINT = "empty";

export const SYNC_META_NAME = ".crabbox-sync.json";
export const FILES_META_NAME = ".crabbox-files.json";

export interface SyncMeta {
  version: 1;
  deletes: string[];
  /** The fingerprint the workdir must have once the archive is applied. */
  expect: string;
  /** Remove unsynced files not matching `keep` before applying. */
  clean?: { keep: string[] };
}

export interface SyncResult {
  fingerprint: string;
  written: number;
  deleted: number;
  removedUnsynced: number;
  bytesIn: number;
}

export type SyncEncoding = "gzip" | "zstd" | "identity";

export interface ExecRequest {
  /** Client-chosen id; a repeated id reattaches instead of running the command twice. */
  execId?: string;
  command: string;
  workdir: string;
  /** Relative to workdir, default `.`. */
  cwd?: string;
  env?: Record<string, string>;
  /** When true the runner waits for POST /v1/exec/{id}/stdin; otherwise stdin is empty. */
  stdin?: boolean;
  timeoutSeconds?: number;
  expectedFingerprint?: string;
  detachGraceSeconds?: number;
}

export type ExecEvent =
  | { seq: number; type: "started"; execId: string; pid: number; startedAtMs: number }
  | { seq: number; type: "stdout"; data: string }
  | { seq: number; type: "stderr"; data: string }
  | { seq: number; type: "heartbeat" }
  | {
      seq: number;
      type: "exit";
      exitCode: number | null;
      signal: string | null;
      reason: "exited" | "signaled" | "timeout" | "canceled";
      durationMs: number;
    };

export type ErrorCode =
  | "base_mismatch"
  | "fingerprint_mismatch"
  | "busy"
  | "expect_mismatch"
  | "unknown_exec"
  | "unsafe_path"
  | "bad_request"
  | "too_large"
  | "not_found"
  | "internal";

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  fingerprint?: string;
}

export interface FilesMeta {
  stale: string[];
  unmatched: string[];
}

export const MAX_EXEC_JSON_BYTES = 1024 * 1024;
export const MAX_SYNC_BODY_BYTES = 2 * 1024 * 1024 * 1024;
export const MAX_EVENT_LINE_BYTES = 1024 * 1024;
export const MAX_OUTPUT_CHUNK_BYTES = 64 * 1024;
export const HEARTBEAT_INTERVAL_MS = 10_000;
export const DEFAULT_DETACH_GRACE_SECONDS = 60;
/** The longest `timeoutSeconds` an exec may ask for (and `run --timeout` may give): 30 days. */
export const MAX_EXEC_TIMEOUT_SECONDS = 30 * 24 * 3600;
export const EVENT_BUFFER_BYTES = 8 * 1024 * 1024;

/** The final event of every exec stream. */
export type ExecExitEvent = Extract<ExecEvent, { type: "exit" }>;

/** Request header of POST /v1/sync: the fingerprint the delta was built on (or EMPTY_FINGERPRINT). */
export const SYNC_BASE_HEADER = "x-crabbox-sync-base";
/** Response header of exec streams: the exec id (client-chosen or generated). */
export const EXEC_ID_HEADER = "x-crabbox-exec-id";

/** DELETE /v1/exec/{id}: the exit event once the group is gone (null if it outlived the wait). */
export interface ExecDeleteResponse {
  execId: string;
  exit: ExecExitEvent | null;
}

/** POST /v1/exec/{id}/signal `{signal}` answer. */
export interface ExecSignalResponse {
  execId: string;
  signal: string;
  delivered: boolean;
}

/** POST /v1/exec/{id}/stdin answer: bytes handed to the child before its stdin was closed. */
export interface ExecStdinResponse {
  execId: string;
  bytes: number;
}

/** The exec stream as NDJSON: what every runner answers, and all an older runner knows. */
export const EXEC_NDJSON_MEDIA_TYPE = "application/x-ndjson";
/**
 * The exec stream as binary frames (src/protocol/frames.ts): a client lists it in `Accept`, a runner
 * that knows it answers with this Content-Type. Same events, same seqs; output travels raw.
 */
export const EXEC_FRAMES_MEDIA_TYPE = "application/vnd.crabbox.exec-frames";
