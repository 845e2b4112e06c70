/**
 * Exec sessions: one remote command, its process group, and its numbered event log.
 *
 * The command is written to a temp script and run as `/bin/sh <script>` in a new session (so its
 * own process group), never through argv and never on its stdin. Output is read eagerly into a
 * bounded log (the last EVENT_BUFFER_BYTES of events) that any number of streams read from: the
 * first POST, a retried POST with the same execId, or GET …/events?after=N — each as NDJSON or
 * as binary frames, whichever its request accepts (the log keeps frames, output raw; an NDJSON
 * reader gets output base64-encoded as it reads it). While a client is attached and behind, the
 * runner stops reading the child's pipes (the child blocks, as on a slow terminal) instead of
 * dropping output. When the last client goes away the command keeps running for the detach
 * grace, then its group is killed.
 */
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  encodeFrame,
  encodeFrameInto,
  FRAME_EVENT,
  FRAME_HEADER_BYTES,
  FRAME_STDERR,
  FRAME_STDOUT,
} from "../src/protocol/frames.ts";
import { encodeEventBytes, toBase64 } from "../src/protocol/ndjson.ts";
import { cwdProblem } from "../src/protocol/paths.ts";
import {
  DEFAULT_DETACH_GRACE_SECONDS,
  EVENT_BUFFER_BYTES,
  EXEC_FRAMES_MEDIA_TYPE,
  EXEC_ID_HEADER,
  EXEC_NDJSON_MEDIA_TYPE,
  type ExecEvent,
  type ExecRequest,
  MAX_EXEC_TIMEOUT_SECONDS,
  MAX_OUTPUT_CHUNK_BYTES,
} from "../src/protocol/types.ts";
import { badRequest, RunnerError } from "./errors.ts";
import type { RunnerPaths } from "./paths.ts";

/** The emulator's marker variable: every child inherits it, no request may set it. */
export const EMULATOR_VM_ENV = "CRABBOX_EMULATOR_VM";
/** Between SIGTERM and SIGKILL when a group is stopped. */
export const KILL_GRACE_MS = 2000;
/** How long, in total, the runner waits on pipes still held open after the shell exited. */
export const PIPE_DRAIN_BUDGET_MS = 1000;
/** Finished sessions stay attachable this long (and at most MAX_FINISHED of them). */
const RETAIN_MS = 10 * 60 * 1000;
const MAX_FINISHED = 64;
const EXEC_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SIGNALS = new Set([
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGTERM",
  "SIGKILL",
  "SIGUSR1",
  "SIGUSR2",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGWINCH",
]);

type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>;
const SHELL_EXITED = Symbol("shell exited");
const DRAIN_TIMEOUT = Symbol("drain timeout");

type ExitReason = "exited" | "signaled" | "timeout" | "canceled";
type ExitEvent = Extract<ExecEvent, { type: "exit" }>;
/** Events other than output (output is recorded raw, see emitOutput). */
type EventBody =
  | Omit<Extract<ExecEvent, { type: "started" }>, "seq">
  | Omit<Extract<ExecEvent, { type: "heartbeat" }>, "seq">
  | Omit<ExitEvent, "seq">;

/** How an exec stream is written: NDJSON (protocol v1's own) or binary frames, if the client asks. */
export type StreamEncoding = "ndjson" | "frames";

export interface ValidExecRequest {
  execId: string | undefined;
  command: string;
  workdir: string;
  cwd: string;
  env: Record<string, string>;
  stdin: boolean;
  timeoutSeconds: number | undefined;
  expectedFingerprint: string | undefined;
  detachGraceSeconds: number;
}

/** Validates the known fields of an exec request; unknown fields are ignored (forward compatible). */
export function parseExecRequest(value: unknown): ValidExecRequest {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest("exec request must be a JSON object");
  }
  const body = value as Partial<Record<keyof ExecRequest, unknown>>;
  const {
    execId,
    command,
    workdir,
    cwd,
    env,
    stdin,
    timeoutSeconds,
    expectedFingerprint,
    detachGraceSeconds,
  } = body;
  if (execId !== undefined && (typeof execId !== "string" || !EXEC_ID_PATTERN.test(execId))) {
    throw badRequest("execId must be 1-128 characters of [A-Za-z0-9._:-], starting alphanumeric");
  }
  if (typeof command !== "string" || command.trim() === "" || command.includes("\0")) {
    throw badRequest("command is required (a non-blank string without NUL)");
  }
  if (typeof workdir !== "string") throw badRequest("workdir is required");
  if (cwd !== undefined && typeof cwd !== "string") throw badRequest("cwd must be a string");
  const cwdIssue = cwdProblem(cwd ?? ".");
  if (cwdIssue) throw new RunnerError("unsafe_path", `cwd ${JSON.stringify(cwd)}: ${cwdIssue}`);
  const cleanEnv: Record<string, string> = {};
  if (env !== undefined) {
    if (typeof env !== "object" || env === null || Array.isArray(env))
      throw badRequest("env must be an object");
    for (const [name, entry] of Object.entries(env)) {
      if (!ENV_NAME_PATTERN.test(name) || typeof entry !== "string" || entry.includes("\0")) {
        throw badRequest(`invalid environment entry ${JSON.stringify(name)}`);
      }
      if (name === EMULATOR_VM_ENV) throw badRequest(`${EMULATOR_VM_ENV} is reserved and cannot be set`);
      cleanEnv[name] = entry;
    }
  }
  if (stdin !== undefined && typeof stdin !== "boolean") throw badRequest("stdin must be a boolean");
  if (
    timeoutSeconds !== undefined &&
    (typeof timeoutSeconds !== "number" || !(timeoutSeconds > 0) || timeoutSeconds > MAX_EXEC_TIMEOUT_SECONDS)
  ) {
    throw badRequest("timeoutSeconds must be a positive number of seconds");
  }
  if (expectedFingerprint !== undefined && typeof expectedFingerprint !== "string") {
    throw badRequest("expectedFingerprint must be a string");
  }
  if (
    detachGraceSeconds !== undefined &&
    (typeof detachGraceSeconds !== "number" || !(detachGraceSeconds >= 0) || detachGraceSeconds > 24 * 3600)
  ) {
    throw badRequest("detachGraceSeconds must be between 0 and 86400");
  }
  return {
    execId,
    command,
    workdir,
    cwd: cwd ?? ".",
    env: cleanEnv,
    stdin: stdin ?? false,
    timeoutSeconds,
    expectedFingerprint,
    detachGraceSeconds: detachGraceSeconds ?? DEFAULT_DETACH_GRACE_SECONDS,
  };
}

interface LoggedEvent {
  seq: number;
  type: ExecEvent["type"];
  /** The event as a frame: output raw, anything else its JSON. */
  frame: Uint8Array;
  /** The recycled slab the frame lives in, if it does (see emitOutput). */
  slab: Uint8Array | undefined;
  /** A JSON event's NDJSON line; an output event's line is built when an NDJSON reader reads it. */
  line: Uint8Array | undefined;
  /**
   * Its length as an NDJSON line. The buffer and the lag are counted in these whatever the readers'
   * encodings, so both replay exactly the same events (the last EVENT_BUFFER_BYTES of NDJSON).
   */
  size: number;
  /** Cumulative `size` of the log up to and including this event. */
  end: number;
}

/** The NDJSON line of an output event with `length` raw bytes: `{"seq":N,"type":T,"data":"…"}\n`. */
export function outputLineBytes(seq: number, type: "stdout" | "stderr", length: number): number {
  return `{"seq":${seq},"type":"${type}","data":""}\n`.length + 4 * Math.ceil(length / 3);
}

function ndjsonLine(event: LoggedEvent): Uint8Array {
  if (event.line) return event.line;
  const type = event.type === "stderr" ? "stderr" : "stdout";
  return encodeEventBytes({ seq: event.seq, type, data: toBase64(event.frame.subarray(FRAME_HEADER_BYTES)) });
}

/** Output chunks this big or bigger are framed in recycled slabs, smaller ones in fresh buffers. */
const SLAB_MIN_BYTES = 32 * 1024;
const SLAB_BYTES = FRAME_HEADER_BYTES + MAX_OUTPUT_CHUNK_BYTES;
const MAX_SPARE_SLABS = 8;

interface Subscriber {
  /** Last seq delivered. */
  cursor: number;
  /**
   * Last seq the stream's consumer had read when it asked for more. A response stream is pulled
   * only once its queue is empty, so everything up to here left the stream for Bun's socket writer.
   */
  taken: number;
  wake: () => void;
}

/** A running or finished command. Guards its process group, log, subscribers and timers. */
export class ExecSession {
  readonly id: string;
  readonly request: ValidExecRequest;
  readonly pid: number;
  private readonly process: Bun.Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  /** Events still buffered are log[head..]; older slots are released. */
  private readonly log: LoggedEvent[] = [];
  /** Slabs of events that left the log, oldest first, for emitOutput to reuse. */
  private readonly spareSlabs: { seq: number; slab: Uint8Array }[] = [];
  private head = 0;
  private logBytes = 0;
  private totalBytes = 0;
  private nextSeq = 1;
  private readonly subscribers = new Set<Subscriber>();
  private readonly roomWaiters = new Set<() => void>();
  private exitEvent: ExitEvent | undefined;
  private readonly exitWaiters = new Set<(event: ExitEvent) => void>();
  private stopReason: ExitReason | undefined;
  private shellExited = false;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private timeoutTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly heartbeatTimer: ReturnType<typeof setInterval>;
  private lastEventAt = Date.now();
  /** The pumps' current waits for the shell's exit (see shellExitWait). */
  private readonly shellExitWaits = new Set<() => void>();
  private stdinState: "none" | "waiting" | "streaming" | "closed";
  finishedAt: number | undefined;

  constructor(
    id: string,
    request: ValidExecRequest,
    process: Bun.Subprocess<"pipe" | "ignore", "pipe", "pipe">,
    private readonly script: string,
    heartbeatMs: number,
    startedAtMs: number,
  ) {
    this.id = id;
    this.request = request;
    this.process = process;
    this.pid = process.pid;
    this.stdinState = request.stdin ? "waiting" : "none";
    this.emit({ type: "started", execId: id, pid: process.pid, startedAtMs });
    // Checked every quarter interval and fired once the quiet time plus one check could exceed
    // heartbeatMs, so a quiet stream never goes longer than heartbeatMs without an event.
    const check = Math.max(10, Math.floor(heartbeatMs / 4));
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastEventAt >= heartbeatMs - check) this.emit({ type: "heartbeat" });
    }, check);
    if (request.timeoutSeconds !== undefined) {
      this.timeoutTimer = setTimeout(() => this.stop("timeout"), request.timeoutSeconds * 1000);
    }
    void this.supervise(startedAtMs);
  }

  get finished(): boolean {
    return this.exitEvent !== undefined;
  }

  get exit(): ExitEvent | undefined {
    return this.exitEvent;
  }

  private emit(body: EventBody): void {
    if (this.exitEvent) return;
    const event = { seq: this.nextSeq++, ...body } as ExecEvent;
    const line = encodeEventBytes(event);
    const frame = encodeFrame(FRAME_EVENT, event.seq, line.subarray(0, line.length - 1));
    if (event.type === "exit") this.exitEvent = event;
    this.record({
      seq: event.seq,
      type: event.type,
      frame,
      slab: undefined,
      line,
      size: line.length,
      end: 0,
    });
  }

  /**
   * One output chunk (≤ MAX_OUTPUT_CHUNK_BYTES). Big chunks are framed in slabs recycled from events
   * that left the log: with 8 MiB of log alive, a fresh frame per chunk faulted in fresh pages each
   * time (512 MiB of output: ~60k page faults and ~2.1 s of runner CPU, against ~45k and ~1.7 s).
   * A slab holds at most 1.5 times its NDJSON size (chunks under SLAB_MIN_BYTES get exact frames).
   */
  private emitOutput(type: "stdout" | "stderr", bytes: Uint8Array): void {
    if (this.exitEvent) return;
    const seq = this.nextSeq++;
    const kind = type === "stdout" ? FRAME_STDOUT : FRAME_STDERR;
    const slab = bytes.length >= SLAB_MIN_BYTES ? this.takeSlab() : undefined;
    const frame = slab ? encodeFrameInto(slab, kind, seq, bytes) : encodeFrame(kind, seq, bytes);
    const size = outputLineBytes(seq, type, bytes.length);
    this.record({ seq, type, frame, slab, line: undefined, size, end: 0 });
  }

  /**
   * The oldest spare slab once every attached stream's consumer asked for more after taking its
   * event and the one after it (Bun's writer has sent or copied a chunk before it reads on), else
   * a new one. A slab is only ever reused after its event left the log.
   */
  private takeSlab(): Uint8Array {
    const oldest = this.spareSlabs[0];
    let taken = Number.POSITIVE_INFINITY;
    for (const subscriber of this.subscribers) taken = Math.min(taken, subscriber.taken);
    if (oldest && oldest.seq < taken) {
      this.spareSlabs.shift();
      return oldest.slab;
    }
    return new Uint8Array(SLAB_BYTES);
  }

  private minCursor(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const subscriber of this.subscribers) min = Math.min(min, subscriber.cursor);
    return min;
  }

  private record(event: LoggedEvent): void {
    this.totalBytes += event.size;
    event.end = this.totalBytes;
    this.log.push(event);
    this.logBytes += event.size;
    this.lastEventAt = Date.now();
    this.trim();
    for (const subscriber of this.subscribers) subscriber.wake();
  }

  /** Drops the oldest events beyond the buffer size, never ones an attached client has not read. */
  private trim(): void {
    const minCursor = this.minCursor();
    while (this.logBytes > EVENT_BUFFER_BYTES && this.log.length - this.head > 1) {
      const first = this.log[this.head] as LoggedEvent;
      if (first.seq > minCursor) break;
      this.log[this.head] = undefined as unknown as LoggedEvent;
      this.head++;
      this.logBytes -= first.size;
      if (first.slab && this.spareSlabs.length < MAX_SPARE_SLABS && !this.exitEvent) {
        this.spareSlabs.push({ seq: first.seq, slab: first.slab });
      }
    }
    // Compact now and then, so dropping the head stays O(1) amortised.
    if (this.head > 1024 && this.head * 2 > this.log.length) {
      this.log.splice(0, this.head);
      this.head = 0;
    }
  }

  /** The first event with seq > `cursor` still in the log (seqs are contiguous, so O(1)). */
  private eventAfter(cursor: number): LoggedEvent | undefined {
    const first = this.log[this.head];
    if (!first) return undefined;
    return this.log[this.head + Math.max(0, cursor + 1 - first.seq)];
  }

  /** Bytes of the log an attached client has yet to read (the largest such lag). */
  private lag(): number {
    let lag = 0;
    for (const subscriber of this.subscribers) {
      const next = this.eventAfter(subscriber.cursor);
      const delivered = next ? next.end - next.size : this.totalBytes;
      lag = Math.max(lag, this.totalBytes - delivered);
    }
    return lag;
  }

  private async waitForRoom(): Promise<void> {
    while (this.subscribers.size > 0 && this.lag() > EVENT_BUFFER_BYTES) {
      await new Promise<void>((resolve) => this.roomWaiters.add(resolve));
    }
  }

  private progressed(): void {
    this.trim();
    for (const resolve of this.roomWaiters) resolve();
    this.roomWaiters.clear();
  }

  /**
   * A promise for the shell's exit, fresh for each read it is raced with and dropped after it.
   * Racing every read against one long-lived promise would leave a reaction on it per read, each
   * holding that read's chunk until the shell exits: the command's whole output kept in memory (and
   * rescanned by every GC) for as long as it runs — 700 MB of RSS after 512 MiB of output.
   */
  private shellExitWait(): { exited: Promise<typeof SHELL_EXITED>; release(): void } {
    let wake = () => {};
    const exited = new Promise<typeof SHELL_EXITED>((resolve) => {
      wake = () => resolve(SHELL_EXITED);
    });
    this.shellExitWaits.add(wake);
    return { exited, release: () => this.shellExitWaits.delete(wake) };
  }

  private async pump(stream: ReadableStream<Uint8Array>, type: "stdout" | "stderr"): Promise<void> {
    const reader = stream.getReader();
    let budget = PIPE_DRAIN_BUDGET_MS;
    let pending: Promise<ReadResult> | undefined;
    try {
      while (true) {
        await this.waitForRoom();
        pending ??= reader.read();
        let result: ReadResult;
        if (!this.shellExited) {
          const wait = this.shellExitWait();
          const raced = await Promise.race([pending, wait.exited]);
          wait.release();
          if (raced === SHELL_EXITED) continue;
          result = raced;
        } else {
          // The shell is gone: whatever still holds the pipe (a background child) gets a bounded
          // wait in total, so `sleep 60 &` never holds the stream open.
          if (budget <= 0) break;
          const started = Date.now();
          let timer: ReturnType<typeof setTimeout> | undefined;
          const timeout = new Promise<typeof DRAIN_TIMEOUT>((resolve) => {
            timer = setTimeout(resolve, budget, DRAIN_TIMEOUT);
          });
          const raced = await Promise.race([pending, timeout]);
          clearTimeout(timer);
          budget -= Date.now() - started;
          if (raced === DRAIN_TIMEOUT) break;
          result = raced;
        }
        pending = undefined;
        if (result.done) break;
        const chunk = result.value;
        for (let offset = 0; offset < chunk.length; offset += MAX_OUTPUT_CHUNK_BYTES) {
          this.emitOutput(type, chunk.subarray(offset, offset + MAX_OUTPUT_CHUNK_BYTES));
        }
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  private async supervise(startedAtMs: number): Promise<void> {
    const pumps = Promise.all([
      this.pump(this.process.stdout, "stdout"),
      this.pump(this.process.stderr, "stderr"),
    ]);
    const exitCode = await this.process.exited;
    this.shellExited = true;
    for (const wake of this.shellExitWaits) wake();
    this.shellExitWaits.clear();
    await pumps;
    await rm(this.script, { force: true });
    clearInterval(this.heartbeatTimer);
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    const signal = this.process.signalCode === null ? null : String(this.process.signalCode);
    const reason: ExitReason = this.stopReason ?? (signal !== null ? "signaled" : "exited");
    this.emit({
      type: "exit",
      exitCode: signal !== null ? null : exitCode,
      signal,
      reason,
      durationMs: Date.now() - startedAtMs,
    });
    this.finishedAt = Date.now();
    const event = this.exitEvent as ExitEvent;
    for (const resolve of this.exitWaiters) resolve(event);
    this.exitWaiters.clear();
    for (const resolve of this.roomWaiters) resolve();
  }

  /** Resolves with the exit event once the session has one. */
  waitForExit(): Promise<ExitEvent> {
    if (this.exitEvent) return Promise.resolve(this.exitEvent);
    return new Promise((resolve) => this.exitWaiters.add(resolve));
  }

  /** Sends a signal to the whole process group; false when nothing was left to signal. */
  signal(signal: string): boolean {
    try {
      process.kill(-this.pid, signal as NodeJS.Signals);
      return true;
    } catch {
      return false;
    }
  }

  /** SIGTERM to the group, SIGKILL after the grace (for members that ignore TERM). Idempotent. */
  stop(reason: ExitReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    // After the exit, background children may still live in the group: they go too (the exit
    // event stays what it was). Nothing to signal means nothing is left.
    if (!this.signal("SIGTERM")) return;
    setTimeout(() => this.signal("SIGKILL"), KILL_GRACE_MS).unref?.();
  }

  /** A stream of the log after `after`, live until the exit event. */
  subscribe(after: number, encoding: StreamEncoding = "ndjson"): ReadableStream<Uint8Array> {
    const subscriber: Subscriber = { cursor: after, taken: after, wake: () => {} };
    let closed = false;
    const detach = () => {
      if (closed) return;
      closed = true;
      this.subscribers.delete(subscriber);
      this.progressed();
      if (this.subscribers.size === 0 && !this.finished) this.armGrace();
    };
    this.subscribers.add(subscriber);
    if (this.graceTimer) {
      clearTimeout(this.graceTimer);
      this.graceTimer = undefined;
    }
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          subscriber.taken = subscriber.cursor;
          while (true) {
            const next = this.eventAfter(subscriber.cursor);
            if (next) {
              subscriber.cursor = next.seq;
              controller.enqueue(encoding === "frames" ? next.frame : ndjsonLine(next));
              this.progressed();
              if (this.exitEvent && next.seq === this.exitEvent.seq) {
                controller.close();
                detach();
              }
              return;
            }
            await new Promise<void>((resolve) => {
              subscriber.wake = resolve;
            });
          }
        },
        cancel: () => detach(),
      },
      { highWaterMark: 0 },
    );
  }

  private armGrace(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => this.stop("canceled"), this.request.detachGraceSeconds * 1000);
  }

  /** Streams a request body into the child's stdin; EOF of the body closes it. */
  async feedStdin(body: ReadableStream<Uint8Array> | null): Promise<number> {
    if (this.stdinState === "none") throw badRequest(`exec ${this.id} was started without stdin`);
    if (this.stdinState !== "waiting")
      throw new RunnerError("busy", `stdin of exec ${this.id} is already being fed or closed`);
    this.stdinState = "streaming";
    const sink = this.process.stdin as Bun.FileSink;
    let bytes = 0;
    try {
      if (body) {
        for await (const chunk of body) {
          if (this.shellExited) break;
          sink.write(chunk);
          await sink.flush();
          bytes += chunk.length;
        }
      }
    } catch {
      // The child closed its stdin or exited: what it did not read is moot.
    } finally {
      this.stdinState = "closed";
      try {
        await sink.end();
      } catch {
        // Already closed by the child.
      }
    }
    return bytes;
  }
}

export interface ExecOptions {
  paths: RunnerPaths;
  heartbeatMs: number;
}

/** All exec sessions of this runner. */
export class ExecRegistry {
  private readonly sessions = new Map<string, ExecSession>();

  constructor(private readonly options: ExecOptions) {}

  get(id: string): ExecSession | undefined {
    this.sweep();
    return this.sessions.get(id);
  }

  /**
   * Starts a command. `hostCwd` already exists; the caller validated everything. `guard` runs
   * synchronously right before the spawn (the sync lock check), so nothing can slip in between.
   */
  async start(
    request: ValidExecRequest,
    hostCwd: string,
    guard: () => void = () => {},
  ): Promise<ExecSession> {
    const id = request.execId ?? crypto.randomUUID();
    await mkdir(this.options.paths.tmpDir, { recursive: true });
    const script = join(this.options.paths.tmpDir, `crabbox-exec-${crypto.randomUUID()}.sh`);
    await writeFile(script, request.command, { mode: 0o600 });
    // `startedAtMs` is what GET /v1/files?since= compares file mtimes with. File times come from the
    // kernel's coarse clock (up to a tick behind Date.now()), so a file the command writes in its
    // first milliseconds could look older than a Date.now() taken after the spawn. The script's own
    // mtime, written just before, is on that same clock: nothing the command writes is older.
    const scriptMtimeMs = Math.floor((await stat(script)).mtimeMs);
    const startedAtMs = Math.min(scriptMtimeMs, Date.now());
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env)) if (value !== undefined) env[name] = value;
    Object.assign(env, request.env);
    const vmMarker = process.env[EMULATOR_VM_ENV];
    if (vmMarker !== undefined) env[EMULATOR_VM_ENV] = vmMarker;
    let child: Bun.Subprocess<"pipe" | "ignore", "pipe", "pipe">;
    try {
      guard();
      const existing = request.execId === undefined ? undefined : this.sessions.get(request.execId);
      if (existing) {
        await rm(script, { force: true });
        return existing;
      }
      child = Bun.spawn(["/bin/sh", script], {
        cwd: hostCwd,
        env,
        stdin: request.stdin ? "pipe" : "ignore",
        stdout: "pipe",
        stderr: "pipe",
        // setsid(): the shell leads a new session and process group, so kill(-pid) reaches
        // every child it starts (unless one of them calls setsid itself).
        detached: true,
      });
    } catch (error) {
      await rm(script, { force: true });
      throw error;
    }
    const session = new ExecSession(id, request, child, script, this.options.heartbeatMs, startedAtMs);
    this.sessions.set(id, session);
    this.sweep();
    return session;
  }

  /** Forgets finished sessions older than the retention, and the oldest beyond the cap. */
  private sweep(): void {
    const now = Date.now();
    const finished = [...this.sessions.values()].filter((session) => session.finishedAt !== undefined);
    finished.sort((a, b) => (a.finishedAt as number) - (b.finishedAt as number));
    finished.forEach((session, index) => {
      const old = now - (session.finishedAt as number) > RETAIN_MS;
      if (old || finished.length - index > MAX_FINISHED) this.sessions.delete(session.id);
    });
  }

  /** Whether `pid` is the shell of a session whose exit Bun has not reported yet. */
  owns(pid: number): boolean {
    for (const session of this.sessions.values()) if (session.pid === pid && !session.finished) return true;
    return false;
  }

  /** Stops every group, lingering background children of finished execs included (runner shutdown). */
  async stopAll(graceMs: number): Promise<void> {
    const sessions = [...this.sessions.values()];
    const running = sessions.filter((session) => !session.finished);
    for (const session of sessions) session.stop("canceled");
    const all = Promise.all(running.map((session) => session.waitForExit()));
    await Promise.race([all, Bun.sleep(graceMs)]);
    for (const session of sessions) session.signal("SIGKILL");
    await Promise.race([all, Bun.sleep(500)]);
  }
}

/** Frames when `Accept` lists their media type (without `q=0`), else NDJSON. */
export function streamEncoding(accept: string | null): StreamEncoding {
  for (const range of (accept ?? "").split(",")) {
    const [type = "", ...params] = range.split(";").map((part) => part.replace(/\s+/g, "").toLowerCase());
    if (type !== EXEC_FRAMES_MEDIA_TYPE) continue;
    if (params.some((param) => /^q=0(\.0*)?$/.test(param))) continue;
    return "frames";
  }
  return "ndjson";
}

/** The answer to an exec stream request: the session's events after `after`, as the request accepts. */
export function execStreamResponse(session: ExecSession, after: number, accept: string | null): Response {
  const encoding = streamEncoding(accept);
  const type = encoding === "frames" ? EXEC_FRAMES_MEDIA_TYPE : EXEC_NDJSON_MEDIA_TYPE;
  return new Response(session.subscribe(after, encoding), {
    headers: { "content-type": type, [EXEC_ID_HEADER]: session.id },
  });
}

export function isKnownSignal(signal: string): boolean {
  return SIGNALS.has(signal);
}
