import { CrabboxError } from "../../core/errors.ts";
import { decodeExecFrames } from "../../protocol/frames.ts";
import { decodeExecEvents } from "../../protocol/ndjson.ts";
import {
  EXEC_FRAMES_MEDIA_TYPE,
  EXEC_NDJSON_MEDIA_TYPE,
  type ExecEvent,
  type ExecRequest,
  type ManifestResponse,
  type SyncEncoding,
  type SyncResult,
} from "../../protocol/types.ts";
import {
  type BodySource,
  createDataPlaneClient,
  type DataPlaneClient,
  type DataPlaneClientOptions,
  type DataPlaneResponse,
  expectStatus,
  readTextPrefix,
} from "./http.ts";

/**
 * Typed calls to the in-VM runner (protocol v1, docs/protocol.md) over the data-plane client.
 * Every method maps one endpoint; failures are `aws-lambda-microvm runner <op> failed: …` errors,
 * with the runner's ErrorBody code/fingerprint on RunnerHttpError for callers that branch on them
 * (409 base_mismatch → re-read the manifest).
 */

/** `/health` as reported; `protocol` is absent on the upstream Go runner. */
export interface RunnerHealth {
  status: string;
  version?: string;
  protocol?: number;
}

export interface FilesQuery {
  /** Relative to the workdir; files, directories or globs (`**` allowed). */
  paths: readonly string[];
  /** Only files modified after this time (ms, runner clock). */
  sinceMs?: number;
}

export interface RunnerClient {
  readonly http: DataPlaneClient;
  health(options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<RunnerHealth>;
  manifest(workdir: string, options?: { unsynced?: boolean }): Promise<ManifestResponse>;
  /** POST /v1/sync. `body` is the (compressed) tar stream, or a factory for a replayable one. */
  sync(workdir: string, base: string, body: BodySource, encoding: SyncEncoding): Promise<SyncResult>;
  /** Starts (or, with a repeated execId, reattaches to) a command; yields its events as they arrive. */
  exec(request: ExecRequest, options?: { signal?: AbortSignal }): AsyncGenerator<ExecEvent>;
  /** Resumes an exec's event stream after the given seq. */
  events(execId: string, after: number, options?: { signal?: AbortSignal }): AsyncGenerator<ExecEvent>;
  /**
   * Streams the command's stdin; the end of `stream` closes it. No header timeout: the runner answers
   * once the child has taken everything, which a slow reader may take long to do.
   */
  stdin(execId: string, stream: BodySource, options?: { signal?: AbortSignal }): Promise<void>;
  signal(execId: string, signal: string): Promise<void>;
  /** DELETE: kills the command's process group now. */
  cancel(execId: string): Promise<void>;
  /** GET /v1/files: a tar stream whose last member is `.crabbox-files.json`. */
  files(
    workdir: string,
    query: FilesQuery,
    options?: { signal?: AbortSignal },
  ): Promise<ReadableStream<Uint8Array>>;
  close(): void;
}

/** The exec stream ended (connection lost or runner died) before its exit event. */
export class RunnerStreamError extends CrabboxError {
  /** The last event seq received, for `events(execId, lastSeq)`. */
  readonly lastSeq: number;

  constructor(message: string, lastSeq: number, cause?: unknown) {
    super(message, { cause });
    this.lastSeq = lastSeq;
  }
}

const JSON_HEADERS = { "content-type": "application/json", accept: "application/json" };
/**
 * Exec streams: binary frames if the runner knows them (output raw, no base64), else NDJSON, which
 * is all an older runner (or upstream's) answers; the answer's Content-Type says which it is.
 */
const EXEC_ACCEPT = `${EXEC_FRAMES_MEDIA_TYPE}, ${EXEC_NDJSON_MEDIA_TYPE};q=0.5`;

function decodeStream(response: DataPlaneResponse): AsyncGenerator<ExecEvent> {
  const type = String(response.headers["content-type"] ?? "");
  const frames = type.split(";")[0]?.trim().toLowerCase() === EXEC_FRAMES_MEDIA_TYPE;
  return frames ? decodeExecFrames(response.body) : decodeExecEvents(response.body);
}

async function readJson<T>(op: string, response: DataPlaneResponse): Promise<T> {
  const text = await readTextPrefix(response.body, 512 * 1024 * 1024);
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new CrabboxError(`aws-lambda-microvm runner ${op} failed: invalid JSON response`);
  }
}

function query(params: Record<string, string | number | undefined | readonly string[]>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) search.append(key, String(item));
    else search.set(key, String(value));
  }
  const text = search.toString();
  return text === "" ? "" : `?${text}`;
}

async function* eventStream(op: string, response: DataPlaneResponse): AsyncGenerator<ExecEvent> {
  await expectStatus(op, response, [200]);
  let lastSeq = 0;
  let sawExit = false;
  try {
    for await (const event of decodeStream(response)) {
      lastSeq = event.seq;
      yield event;
      if (event.type === "exit") {
        sawExit = true;
        return;
      }
    }
  } catch (error) {
    if (error instanceof CrabboxError) throw error;
    throw new RunnerStreamError(
      `read aws-lambda-microvm runner stream: ${error instanceof Error ? error.message : String(error)}`,
      lastSeq,
      error,
    );
  } finally {
    if (!sawExit) await response.body.cancel().catch(() => {});
  }
  throw new RunnerStreamError("aws-lambda-microvm runner stream ended without an exit event", lastSeq);
}

export function createRunnerClient(options: DataPlaneClientOptions): RunnerClient {
  const client = createDataPlaneClient(options);
  const execPath = (execId: string, suffix = "") => `/v1/exec/${encodeURIComponent(execId)}${suffix}`;

  return {
    http: client,

    async health(opts = {}) {
      const response = await client.request({
        op: "health",
        method: "GET",
        path: "/health",
        headers: { accept: "application/json" },
        headerTimeoutMs: opts.timeoutMs,
        signal: opts.signal,
      });
      return readJson<RunnerHealth>("health", await expectStatus("health", response));
    },

    async manifest(workdir, opts = {}) {
      const response = await client.request({
        op: "manifest",
        method: "GET",
        path: `/v1/sync/manifest${query({ workdir, unsynced: opts.unsynced ? "1" : undefined })}`,
        headers: { accept: "application/json" },
      });
      return readJson<ManifestResponse>("manifest", await expectStatus("manifest", response));
    },

    async sync(workdir, base, body, encoding) {
      const response = await client.request({
        op: "sync",
        method: "POST",
        path: `/v1/sync${query({ workdir })}`,
        headers: {
          "content-type": "application/x-tar",
          "content-encoding": encoding,
          "x-crabbox-sync-base": base,
          accept: "application/json",
        },
        body,
      });
      return readJson<SyncResult>("sync", await expectStatus("sync", response));
    },

    async *exec(request, opts = {}) {
      const response = await client.request({
        op: "exec",
        method: "POST",
        path: "/v1/exec",
        headers: { ...JSON_HEADERS, accept: EXEC_ACCEPT },
        body: JSON.stringify(request),
        signal: opts.signal,
      });
      yield* eventStream("exec", response);
    },

    async *events(execId, after, opts = {}) {
      const response = await client.request({
        op: "events",
        method: "GET",
        path: execPath(execId, `/events${query({ after })}`),
        headers: { accept: EXEC_ACCEPT },
        signal: opts.signal,
      });
      yield* eventStream("events", response);
    },

    async stdin(execId, stream, opts = {}) {
      const response = await client.request({
        op: "stdin",
        method: "POST",
        path: execPath(execId, "/stdin"),
        headers: { "content-type": "application/octet-stream" },
        body: stream,
        headerTimeoutMs: 0,
        signal: opts.signal,
      });
      await expectStatus("stdin", response, [200, 204]);
      await response.body.cancel().catch(() => {});
    },

    async signal(execId, signal) {
      const response = await client.request({
        op: "signal",
        method: "POST",
        path: execPath(execId, "/signal"),
        headers: JSON_HEADERS,
        body: JSON.stringify({ signal }),
      });
      await expectStatus("signal", response, [200, 202, 204]);
      await response.body.cancel().catch(() => {});
    },

    async cancel(execId) {
      const response = await client.request({ op: "cancel", method: "DELETE", path: execPath(execId) });
      await expectStatus("cancel", response, [200, 202, 204]);
      await response.body.cancel().catch(() => {});
    },

    async files(workdir, filesQuery, opts = {}) {
      const response = await client.request({
        op: "files",
        method: "GET",
        path: `/v1/files${query({ workdir, path: filesQuery.paths, since: filesQuery.sinceMs })}`,
        headers: { accept: "application/x-tar" },
        signal: opts.signal,
      });
      return (await expectStatus("files", response)).body;
    },

    close() {
      client.close();
    },
  };
}
