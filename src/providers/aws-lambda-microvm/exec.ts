import { CrabboxError, describeError } from "../../core/errors.ts";
import { interruptSignalOf } from "../../core/interrupt.ts";
import { signalExitCode } from "../../core/run-summary.ts";
import { FrameError } from "../../protocol/frames.ts";
import { NdjsonError, outputPieces } from "../../protocol/ndjson.ts";
import type { ExecEvent, ExecRequest } from "../../protocol/types.ts";
import type { Reporter } from "../provider.ts";
import type { ControlPlane } from "./control-plane.ts";
import { DataPlanePolicyError, RunnerHttpError } from "./http.ts";
import { startKeepAlive } from "./keepalive.ts";
import { sleep } from "./readiness.ts";
import { type RunnerClient, RunnerStreamError } from "./runner-client.ts";

/**
 * One remote command, streamed: stdout and stderr chunks go to the reporter byte for byte as they
 * arrive. The exec id is chosen here, so a dropped stream (or a POST lost to a proxy 502) reattaches
 * to the same command from the last event seen instead of running it twice.
 *
 * While it runs: local stdin (when attached) is streamed in once the command started, keep-alive
 * probes stop AWS from suspending a quiet MicroVM, and the runner enforces `timeoutSeconds` (with a
 * local backstop in case the runner cannot say so). An interrupt (Ctrl-C, SIGTERM, SIGHUP) is
 * forwarded to the remote process group as the same signal; after a short grace the group is
 * cancelled (SIGTERM, SIGKILL), and once the command is gone whatever it left in its group goes too.
 */

export interface ExecOptions {
  runner: RunnerClient;
  /** Must carry `execId`; `stdin: true` when `stdin` is given. */
  request: ExecRequest & { execId: string };
  report: Reporter;
  /** Ctrl-C / SIGTERM / SIGHUP: interrupt the remote command. */
  signal: AbortSignal;
  /** How long an interrupted command gets to exit on its signal before it is cancelled. */
  interruptGraceMs?: number;
  /** Fed to the command's stdin once it started; its end is the command's EOF. */
  stdin?: ReadableStream<Uint8Array>;
  /** Keep-alive probe interval while the command runs; undefined = no probes. */
  keepAliveMs?: number;
  /** Past `timeoutSeconds` plus this, crabbox cancels the command itself (the runner did not). */
  timeoutBackstopMs?: number;
}

export interface ExecOutcome {
  /** The remote exit code; 128+n when a signal killed it; 130 when crabbox interrupted it. */
  exitCode: number;
  /** The code the command exited with by itself; null when a signal ended it or it never ended. */
  remoteExitCode: number | null;
  signal: string | null;
  reason: Extract<ExecEvent, { type: "exit" }>["reason"] | "interrupted";
  /** Runner clock, from the `started` event: artifacts older than this are stale. */
  startedAtMs: number | undefined;
  durationMs: number;
  interrupted: boolean;
  /** The command ran past `timeoutSeconds` and was stopped. */
  timedOut: boolean;
}

const MAX_REATTACH = 5;
const INTERRUPT_GRACE_MS = 2000;
/** After an interrupt, stop waiting for the exit event after this long (the VM is terminated anyway). */
const INTERRUPT_GIVE_UP_MS = 10_000;
/** The runner's DELETE waits for the group; crabbox waits this long for its answer when tidying up. */
const TIDY_WAIT_MS = 3000;
const TIMEOUT_BACKSTOP_MS = 10_000;
const INTERRUPTED_EXIT = 130;

/**
 * Errors after which the same exec can be picked up again: the stream or the proxy hiccuped. A
 * stream that breaks the protocol (a malformed or oversized line or frame) and a refused redirect
 * are not hiccups: asking again would get the same answer.
 */
function reattachable(error: unknown): boolean {
  if (error instanceof RunnerHttpError)
    return error.status === 502 || error.status === 503 || error.status === 504;
  if (violation(error)) return false;
  return error instanceof CrabboxError;
}

function violation(error: unknown): boolean {
  return (
    error instanceof DataPlanePolicyError ||
    (error instanceof RunnerStreamError &&
      (error.cause instanceof NdjsonError || error.cause instanceof FrameError))
  );
}

/** The stream was lost and could not be picked up again: the command's end was never seen. */
const STREAM_ENDED = "aws-lambda-microvm runner stream ended without an exit event";

function streamLost(lastSeq: number, error: unknown): RunnerStreamError {
  return new RunnerStreamError(
    `${STREAM_ENDED}; reattaching failed: ${describeError(error)}`,
    lastSeq,
    error,
  );
}

/** "MicroVM X is terminated: <AWS's reason>" when AWS says the MicroVM ended, else undefined. */
export async function microvmEnded(plane: ControlPlane, microvmId: string): Promise<string | undefined> {
  const vm = await plane.getMicrovm(microvmId, AbortSignal.timeout(10_000)).catch(() => undefined);
  if (!vm || (vm.state !== "TERMINATED" && vm.state !== "TERMINATING")) return undefined;
  return `MicroVM ${microvmId} is ${vm.state.toLowerCase()}${vm.stateReason ? `: ${vm.stateReason}` : ""}`;
}

/**
 * A stream lost for good on a MicroVM that AWS says has ended (its maximum duration, a crash): that
 * is the news, so the error says it. Any other error, or a MicroVM still alive, is returned as is.
 */
export async function explainLostStream(
  plane: ControlPlane,
  microvmId: string,
  error: unknown,
): Promise<unknown> {
  if (!(error instanceof RunnerStreamError)) return error;
  const ended = await microvmEnded(plane, microvmId);
  if (!ended) return error;
  // How the reattach then failed (a 502 from a proxy with no VM behind it) is noise next to this.
  const head = error.message.startsWith(STREAM_ENDED) ? STREAM_ENDED : error.message;
  return new RunnerStreamError(`${head}; ${ended}`, error.lastSeq, error);
}

/** Waits for `promise` at most `ms`; the answer does not matter, only that it was asked. */
async function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

export async function execCommand(options: ExecOptions): Promise<ExecOutcome> {
  const { runner, request, report } = options;
  const execId = request.execId;
  const local = new AbortController();
  let lastSeq = 0;
  let startedAtMs: number | undefined;
  let exit: Extract<ExecEvent, { type: "exit" }> | undefined;
  let interrupted = false;
  let backstopFired = false;
  let stdinFed = false;
  const timers: ReturnType<typeof setTimeout>[] = [];

  const interrupt = () => {
    if (interrupted) return;
    interrupted = true;
    const forwarded = interruptSignalOf(options.signal.reason) ?? "SIGINT";
    void runner.signal(execId, forwarded).catch(() => {});
    timers.push(
      setTimeout(
        () => void runner.cancel(execId).catch(() => {}),
        options.interruptGraceMs ?? INTERRUPT_GRACE_MS,
      ),
      setTimeout(() => local.abort(), INTERRUPT_GIVE_UP_MS),
    );
  };
  if (options.signal.aborted) interrupt();
  options.signal.addEventListener("abort", interrupt, { once: true });

  if (request.timeoutSeconds !== undefined) {
    // The runner owns the timeout (its clock, no network in between). If it cannot tell us — a
    // frozen stream, a runner in trouble — crabbox cancels and finally stops waiting itself.
    const margin = options.timeoutBackstopMs ?? TIMEOUT_BACKSTOP_MS;
    const backstop = request.timeoutSeconds * 1000 + margin;
    timers.push(
      setTimeout(() => {
        backstopFired = true;
        void runner.cancel(execId).catch(() => {});
      }, backstop),
      setTimeout(() => local.abort(), backstop + margin),
    );
  }

  const stopKeepAlive =
    options.keepAliveMs === undefined
      ? () => {}
      : startKeepAlive({
          intervalMs: options.keepAliveMs,
          probe: ({ timeoutMs, signal }) => runner.health({ timeoutMs, signal }),
          onError: (error) => report.debug(`keep-alive /health failed: ${describeError(error)}`),
        });

  const feedStdin = () => {
    const stream = options.stdin;
    if (!stream || stdinFed) return;
    stdinFed = true;
    runner.stdin(execId, stream, { signal: local.signal }).catch((error: unknown) => {
      // Once the command ended, whatever it did not read is moot.
      if (!local.signal.aborted && exit === undefined) {
        report.warn(`stdin was not fully delivered to the remote command: ${describeError(error)}`);
      }
    });
  };

  try {
    let attempts = 0;
    let stream = runner.exec(request, { signal: local.signal });
    while (exit === undefined) {
      try {
        for await (const event of stream) {
          if (event.seq <= lastSeq) continue;
          lastSeq = event.seq;
          if (event.type === "stdout") for (const piece of outputPieces(event)) report.stdout(piece);
          else if (event.type === "stderr") for (const piece of outputPieces(event)) report.stderr(piece);
          else if (event.type === "started") {
            startedAtMs = event.startedAtMs;
            feedStdin();
          } else if (event.type === "exit") exit = event;
        }
        break;
      } catch (error) {
        if (local.signal.aborted) break;
        if (!reattachable(error) || attempts >= MAX_REATTACH) {
          // After a lost stream, what failed last is the reattach; the user must hear that the
          // command's outcome was never seen. A first answer (a 409) is passed on as is.
          const lost = attempts > 0 && !violation(error) && (lastSeq > 0 || reattachable(error));
          throw lost ? streamLost(lastSeq, error) : error;
        }
        attempts++;
        report.debug(
          `exec ${execId}: stream lost after seq ${lastSeq} (${describeError(error)}); reattaching`,
        );
        await sleep(250 * attempts, local.signal).catch(() => {});
        if (local.signal.aborted) break;
        // Before any event the POST itself may be lost: repeating it with the same id reattaches.
        stream =
          lastSeq === 0
            ? runner.exec(request, { signal: local.signal })
            : runner.events(execId, lastSeq, { signal: local.signal });
      }
    }
  } finally {
    options.signal.removeEventListener("abort", interrupt);
    for (const timer of timers) clearTimeout(timer);
    stopKeepAlive();
    local.abort();
  }

  if (interrupted) {
    // The command is gone (or given up on); what it started in the background goes too, so a
    // retained lease is left with nothing of this run still running.
    await bounded(runner.cancel(execId), TIDY_WAIT_MS);
    return {
      exitCode: INTERRUPTED_EXIT,
      remoteExitCode: exit?.exitCode ?? null,
      signal: exit?.signal ?? null,
      reason: "interrupted",
      startedAtMs,
      durationMs: exit?.durationMs ?? 0,
      interrupted: true,
      timedOut: false,
    };
  }
  if (!exit && backstopFired) {
    return {
      exitCode: signalExitCode("SIGKILL"),
      remoteExitCode: null,
      signal: null,
      reason: "timeout",
      startedAtMs,
      durationMs: (request.timeoutSeconds ?? 0) * 1000,
      interrupted: false,
      timedOut: true,
    };
  }
  if (!exit) throw new CrabboxError("aws-lambda-microvm runner stream ended without an exit event");
  const timedOut = exit.reason === "timeout" || (backstopFired && exit.reason === "canceled");
  return {
    exitCode: exit.exitCode ?? signalExitCode(exit.signal),
    remoteExitCode: exit.exitCode,
    signal: exit.signal,
    reason: timedOut ? "timeout" : exit.reason,
    startedAtMs,
    durationMs: exit.durationMs,
    interrupted: false,
    timedOut,
  };
}
