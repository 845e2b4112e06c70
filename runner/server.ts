/**
 * The runner's HTTP surface (protocol v1, docs/protocol.md): routing, body limits, and the exec
 * endpoints. Sync and files live in their own modules.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  type ExecDeleteResponse,
  type ExecSignalResponse,
  type ExecStdinResponse,
  type HealthResponse,
  MAX_EXEC_JSON_BYTES,
  MAX_SYNC_BODY_BYTES,
  PROTOCOL_VERSION,
} from "../src/protocol/types.ts";
import { badRequest, errorResponse, jsonResponse, RunnerError } from "./errors.ts";
import {
  ExecRegistry,
  type ExecSession,
  execStreamResponse,
  isKnownSignal,
  KILL_GRACE_MS,
  parseExecRequest,
} from "./exec.ts";
import { handleFiles } from "./files.ts";
import { manifestFingerprint } from "./manifest.ts";
import { runnerPaths } from "./paths.ts";
import { startOrphanReaper } from "./reaper.ts";
import type { RunnerState } from "./state.ts";
import { syncingOverlap } from "./state.ts";
import { currentManifest, handleManifest, handleSync } from "./sync.ts";
import { checkWorkdir, ensureWorkdir } from "./workdir.ts";

export type ListenAddress = { kind: "tcp"; hostname: string; port: number } | { kind: "unix"; path: string };

export interface RunnerOptions {
  listen: ListenAddress;
  /** Host directory every in-VM path resolves under (emulator isolation `none`). */
  root: string | undefined;
  version: string;
  testEcho: boolean;
  heartbeatMs: number;
}

export interface RunningRunner {
  state: RunnerState;
  /** `http://host:port` or `unix:/path`. */
  address: string;
  stop(): Promise<void>;
}

const HOOKS = new Set(["ready", "validate", "run", "resume", "suspend", "terminate"]);
const HOOK_PREFIX = "/aws/lambda-microvms/runtime/v1/";
const EXEC_PATH = /^\/v1\/exec\/([^/]+)(\/events|\/stdin|\/signal)?$/;

/**
 * Test echo only (`--test-echo`): `head -c <bytes> /dev/zero` with its stdout as the raw response
 * body. The bench's baseline for exec stdout throughput: the same bytes through the same pipe and
 * proxy, without the NDJSON and base64 of /v1/exec.
 */
function rawOutput(url: URL): Response {
  const bytes = url.searchParams.get("bytes") ?? "";
  if (!/^[0-9]{1,12}$/.test(bytes)) throw badRequest("bytes must be a non-negative integer");
  const child = Bun.spawn(["head", "-c", bytes, "/dev/zero"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
  });
  return new Response(child.stdout, { headers: { "content-type": "application/octet-stream" } });
}

export async function startRunner(options: RunnerOptions): Promise<RunningRunner> {
  const paths = runnerPaths(options.root);
  const state: RunnerState = {
    paths,
    version: options.version,
    syncing: new Set(),
    execs: new ExecRegistry({ paths, heartbeatMs: options.heartbeatMs }),
  };
  if (options.root !== undefined) await mkdir(options.root, { recursive: true });
  const stopReaper = await startOrphanReaper((pid) => state.execs.owns(pid));

  const route = async (request: Request, server: Bun.Server<undefined>): Promise<Response> => {
    const url = new URL(request.url);
    const { pathname } = url;
    const method = request.method;
    // Long uploads and streams must not hit Bun's 10 s idle timeout; short requests keep it.
    const longLived = () => server.timeout(request, 0);

    if (pathname === "/health" && method === "GET") {
      const body: HealthResponse = { status: "ok", version: state.version, protocol: PROTOCOL_VERSION };
      return jsonResponse(body);
    }
    if (
      pathname.startsWith(HOOK_PREFIX) &&
      method === "POST" &&
      HOOKS.has(pathname.slice(HOOK_PREFIX.length))
    ) {
      // Idempotent no-ops: anyone holding a token can reach these through the proxy, so they do nothing.
      await request.body?.cancel().catch(() => {});
      return new Response(null, { status: 200 });
    }
    if (pathname === "/v1/sync/manifest" && method === "GET") return handleManifest(state, url);
    if (pathname === "/v1/sync" && method === "POST") {
      longLived();
      return handleSync(state, request, url);
    }
    if (pathname === "/v1/files" && method === "GET") {
      longLived();
      return handleFiles(state, url);
    }
    if (pathname === "/v1/exec" && method === "POST") {
      longLived();
      return postExec(state, request);
    }
    const execMatch = EXEC_PATH.exec(pathname);
    if (execMatch) {
      const session = state.execs.get(decodeURIComponent(execMatch[1] as string));
      const action = execMatch[2];
      if (!session)
        throw new RunnerError("unknown_exec", `no exec ${JSON.stringify(execMatch[1])} on this runner`);
      if (action === "/events" && method === "GET") {
        longLived();
        return execStreamResponse(session, parseAfter(url.searchParams.get("after")), accept(request));
      }
      if (action === "/stdin" && method === "POST") {
        longLived();
        const body: ExecStdinResponse = { execId: session.id, bytes: await session.feedStdin(request.body) };
        return jsonResponse(body);
      }
      if (action === "/signal" && method === "POST") return postSignal(session, request);
      if (action === undefined && method === "DELETE") {
        longLived();
        return deleteExec(session);
      }
    }
    if (options.testEcho && pathname === "/_echo/raw" && method === "GET") {
      longLived();
      return rawOutput(url);
    }
    if (options.testEcho && pathname === "/_echo" && (method === "GET" || method === "POST")) {
      return jsonResponse({
        method,
        path: `${pathname}${url.search}`,
        headers: Object.fromEntries(request.headers),
      });
    }
    throw new RunnerError("not_found", `no route ${method} ${pathname}`);
  };

  const common = {
    development: false,
    // Sync bodies may be up to 2 GiB; every endpoint enforces its own, smaller limit.
    maxRequestBodySize: MAX_SYNC_BODY_BYTES + 1024 * 1024,
    async fetch(request: Request, server: Bun.Server<undefined>) {
      try {
        return await route(request, server);
      } catch (error) {
        return errorResponse(error);
      }
    },
    error(error: Error) {
      return errorResponse(error);
    },
  };
  const server =
    options.listen.kind === "unix"
      ? Bun.serve({ ...common, unix: options.listen.path })
      : Bun.serve({ ...common, hostname: options.listen.hostname, port: options.listen.port });
  const address =
    options.listen.kind === "unix"
      ? `unix:${options.listen.path}`
      : `http://${formatHost(options.listen.hostname)}:${server.port}`;
  return {
    state,
    address,
    async stop() {
      await state.execs.stopAll(1000);
      stopReaper?.();
      await server.stop(true);
    },
  };
}

function formatHost(hostname: string): string {
  const shown = hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  return shown.includes(":") ? `[${shown}]` : shown;
}

function parseAfter(text: string | null): number {
  if (text === null || text === "") return 0;
  if (!/^[0-9]+$/.test(text)) throw badRequest("after must be a non-negative integer");
  return Number(text);
}

/** Reads a small request body, refusing more than `max` bytes before buffering them. */
async function readLimited(request: Request, max: number, what: string): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > max) throw new RunnerError("too_large", `${what} of ${declared} bytes exceeds ${max} bytes`);
  if (!request.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of request.body) {
    total += chunk.length;
    if (total > max) throw new RunnerError("too_large", `${what} exceeds ${max} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

async function readJson(request: Request, max: number, what: string): Promise<unknown> {
  const bytes = await readLimited(request, max, what);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw badRequest(`invalid ${what}: malformed JSON`);
  }
}

const accept = (request: Request) => request.headers.get("accept");

async function postExec(state: RunnerState, request: Request): Promise<Response> {
  const exec = parseExecRequest(await readJson(request, MAX_EXEC_JSON_BYTES, "exec request"));
  if (exec.execId !== undefined) {
    const existing = state.execs.get(exec.execId);
    if (existing) {
      const same =
        existing.request.command === exec.command &&
        existing.request.workdir === exec.workdir &&
        existing.request.cwd === exec.cwd;
      if (!same) throw badRequest(`execId ${exec.execId} already names a different command`);
      // A retried POST (after a 502 or a reset) reattaches: the command never runs twice.
      return execStreamResponse(existing, 0, accept(request));
    }
  }
  const hostWorkdir = checkWorkdir(state.paths, exec.workdir);
  const checkNotSyncing = () => {
    const active = syncingOverlap(state, exec.workdir);
    if (active) throw new RunnerError("busy", `a sync into ${active} is in progress; exec refused`);
  };
  checkNotSyncing();
  if (exec.expectedFingerprint !== undefined) {
    const current = manifestFingerprint(await currentManifest(state, exec.workdir, hostWorkdir));
    if (current !== exec.expectedFingerprint) {
      throw new RunnerError(
        "fingerprint_mismatch",
        `workdir ${exec.workdir} has fingerprint ${current}, the exec expected ${exec.expectedFingerprint}`,
        current,
      );
    }
  }
  await ensureWorkdir(hostWorkdir, exec.workdir);
  const hostCwd = exec.cwd === "." ? hostWorkdir : join(hostWorkdir, exec.cwd);
  await mkdir(hostCwd, { recursive: true });
  // A concurrent POST with the same id may have won the race while we awaited.
  const raced = exec.execId === undefined ? undefined : state.execs.get(exec.execId);
  if (raced) return execStreamResponse(raced, 0, accept(request));
  checkNotSyncing();
  const session = await state.execs.start(exec, hostCwd, checkNotSyncing);
  return execStreamResponse(session, 0, accept(request));
}

async function postSignal(session: ExecSession, request: Request): Promise<Response> {
  const body = (await readJson(request, 4096, "signal request")) as { signal?: unknown } | null;
  const raw = typeof body?.signal === "string" ? body.signal.toUpperCase() : "";
  const signal = raw.startsWith("SIG") ? raw : `SIG${raw}`;
  if (!isKnownSignal(signal)) throw badRequest(`unsupported signal ${JSON.stringify(body?.signal)}`);
  const answer: ExecSignalResponse = {
    execId: session.id,
    signal,
    delivered: !session.finished && session.signal(signal),
  };
  return jsonResponse(answer);
}

async function deleteExec(session: ExecSession): Promise<Response> {
  session.stop("canceled");
  const exit = await Promise.race([
    session.waitForExit(),
    Bun.sleep(KILL_GRACE_MS + 3000).then(() => undefined),
  ]);
  const answer: ExecDeleteResponse = { execId: session.id, exit: exit ?? null };
  return jsonResponse(answer);
}
