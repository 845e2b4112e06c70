import { constants } from "node:os";
import { CrabboxError } from "../../core/errors.ts";
import { fromBase64 } from "../../protocol/ndjson.ts";
import type { ExecEvent, ExecRequest } from "../../protocol/types.ts";
import type { Reporter } from "../provider.ts";
import { RunnerHttpError } from "./http.ts";
import { sleep } from "./readiness.ts";
import type { RunnerClient } from "./runner-client.ts";

/**
 * One remote command, streamed: stdout and stderr chunks go to the reporter byte for byte as they
 * arrive. The exec id is chosen here, so a dropped stream (or a POST lost to a proxy 502) reattaches
 * to the same command from the last event seen instead of running it twice. Ctrl-C sends SIGINT to
 * the remote process group, gives it a moment, then cancels it (SIGTERM, SIGKILL).
 */

export interface ExecOptions {
  runner: RunnerClient;
  /** Must carry `execId`. */
  request: ExecRequest & { execId: string };
  report: Reporter;
  /** Ctrl-C / SIGTERM: interrupt the remote command. */
  signal: AbortSignal;
  /** How long an interrupted command gets to exit on SIGINT before it is cancelled. */
  interruptGraceMs?: number;
}

export interface ExecOutcome {
  /** The remote exit code; 128+n when a signal killed it; 130 when crabbox interrupted it. */
  exitCode: number;
  signal: string | null;
  reason: Extract<ExecEvent, { type: "exit" }>["reason"] | "interrupted";
  /** Runner clock, from the `started` event. */
  startedAtMs: number | undefined;
  durationMs: number;
  interrupted: boolean;
}

const MAX_REATTACH = 5;
const INTERRUPT_GRACE_MS = 2000;
/** After an interrupt, stop waiting for the exit event after this long (the VM is terminated anyway). */
const INTERRUPT_GIVE_UP_MS = 10_000;
const INTERRUPTED_EXIT = 130;

function signalExitCode(signal: string | null): number {
  if (signal === null) return 1;
  const name = (signal.startsWith("SIG") ? signal : `SIG${signal}`) as keyof typeof constants.signals;
  const number = constants.signals[name];
  return typeof number === "number" ? 128 + number : 1;
}

/** Errors after which the same exec can be picked up again: the stream or the proxy hiccuped. */
function reattachable(error: unknown): boolean {
  if (error instanceof RunnerHttpError)
    return error.status === 502 || error.status === 503 || error.status === 504;
  return error instanceof CrabboxError;
}

export async function execCommand(options: ExecOptions): Promise<ExecOutcome> {
  const { runner, request, report } = options;
  const execId = request.execId;
  const local = new AbortController();
  let lastSeq = 0;
  let startedAtMs: number | undefined;
  let exit: Extract<ExecEvent, { type: "exit" }> | undefined;
  let interrupted = false;
  const timers: ReturnType<typeof setTimeout>[] = [];

  const interrupt = () => {
    if (interrupted) return;
    interrupted = true;
    void runner.signal(execId, "INT").catch(() => {});
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

  try {
    let attempts = 0;
    let stream = runner.exec(request, { signal: local.signal });
    while (exit === undefined) {
      try {
        for await (const event of stream) {
          if (event.seq <= lastSeq) continue;
          lastSeq = event.seq;
          if (event.type === "stdout") report.stdout(fromBase64(event.data));
          else if (event.type === "stderr") report.stderr(fromBase64(event.data));
          else if (event.type === "started") startedAtMs = event.startedAtMs;
          else if (event.type === "exit") exit = event;
        }
        break;
      } catch (error) {
        if (local.signal.aborted) break;
        if (!reattachable(error) || attempts >= MAX_REATTACH) throw error;
        attempts++;
        report.debug(
          `exec ${execId}: stream lost after seq ${lastSeq} (${(error as Error).message}); reattaching`,
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
    local.abort();
  }

  if (interrupted) {
    return {
      exitCode: INTERRUPTED_EXIT,
      signal: exit?.signal ?? null,
      reason: "interrupted",
      startedAtMs,
      durationMs: exit?.durationMs ?? 0,
      interrupted: true,
    };
  }
  if (!exit) throw new CrabboxError("aws-lambda-microvm runner stream ended without an exit event");
  return {
    exitCode: exit.exitCode ?? signalExitCode(exit.signal),
    signal: exit.signal,
    reason: exit.reason,
    startedAtMs,
    durationMs: exit.durationMs,
    interrupted: false,
  };
}
