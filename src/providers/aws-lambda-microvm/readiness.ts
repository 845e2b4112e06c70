import { CrabboxError, ExitCode } from "../../core/errors.ts";
import { MIN_PROTOCOL_VERSION } from "../../protocol/types.ts";
import type { ControlPlane, Microvm } from "./control-plane.ts";
import { DataPlanePolicyError, RunnerHttpError } from "./http.ts";
import type { RunnerClient, RunnerHealth } from "./runner-client.ts";

/**
 * When a new MicroVM can take work: GetMicrovm says RUNNING (its state is eventually consistent,
 * so that alone proves nothing), then the runner answers `/health` through the data plane. The
 * proxy answers 502 for a while after launch — about a third of real launches — so 502s and
 * dropped connections are retried; each probe has its own timeout so one hung connection cannot
 * eat the whole budget.
 */

export const READY_TIMEOUT_MS = 5 * 60_000;
export const HEALTH_PROBE_TIMEOUT_MS = 10_000;
/** Scaled readiness never drops below this: booting is real time even when the emulator's clock is not. */
const MIN_SCALED_TIMEOUT_MS = 60_000;
const POLL_MS = [0, 200, 400, 800, 1500, 2000];

export interface ReadinessOptions {
  leaseId: string;
  signal: AbortSignal;
  /** Progress text for the spinner (`waiting for MicroVM … (PENDING)`). */
  onProgress?: (text: string) => void;
  timeoutMs?: number;
}

export interface Ready {
  vm: Microvm;
  health: RunnerHealth & { protocol: number };
}

/** Resolves after `ms`, or rejects with the abort reason when `signal` fires first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Rejects with the abort reason as soon as `signal` fires; the raced promise is left to settle. */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function terminal(state: string): boolean {
  return state === "TERMINATED" || state === "TERMINATING";
}

/** A MicroVM that ended while crabbox waited for it: exit 5 with AWS's reason. */
export function enteredTerminal(vm: Microvm): CrabboxError {
  return new CrabboxError(
    `AWS Lambda MicroVM ${vm.microvmId} entered ${vm.state}: ${vm.stateReason ?? "no reason given"}`,
    {
      exitCode: ExitCode.notReady,
      hint: "the image's runner may have failed to start; check the image build and its lifecycle hooks",
    },
  );
}

/**
 * The runner protocol a `/health` answer proves, or the error that refuses the runner: one without
 * `protocol` is the upstream Go runner, which cannot sync deltas or reattach.
 */
export function checkRunnerProtocol(leaseId: string, health: RunnerHealth): number {
  const hint = "rebuild the image from this crabbox's runner (see runner/README.md), or stop the lease";
  if (typeof health.protocol !== "number") {
    throw new CrabboxError(
      `lease ${leaseId} runs the upstream Go runner (no runner protocol); rebuild the image or stop it`,
      { exitCode: ExitCode.notReady, hint },
    );
  }
  if (health.protocol < MIN_PROTOCOL_VERSION) {
    throw new CrabboxError(
      `lease ${leaseId} runs runner protocol ${health.protocol}; rebuild the image or stop it`,
      {
        exitCode: ExitCode.notReady,
        hint,
      },
    );
  }
  return health.protocol;
}

function retryableProbeError(error: unknown): boolean {
  // A refused redirect is the endpoint misbehaving, not warming up: waiting cannot fix it.
  if (error instanceof DataPlanePolicyError) return false;
  if (error instanceof RunnerHttpError)
    return error.status === 502 || error.status === 503 || error.status === 504;
  // Transport failures (reset, refused, header timeout) while the proxy warms up.
  return error instanceof CrabboxError && !(error instanceof RunnerHttpError);
}

/** Polls until RUNNING and healthy, or fails: terminal state or deadline → exit 5, Ctrl-C → its reason. */
export async function waitReady(
  plane: ControlPlane,
  first: Microvm,
  runner: RunnerClient,
  options: ReadinessOptions,
): Promise<Ready> {
  const { signal } = options;
  const budget = options.timeoutMs ?? Math.max(READY_TIMEOUT_MS * plane.timeScale, MIN_SCALED_TIMEOUT_MS);
  const deadline = performance.now() + budget;
  const timedOut = () =>
    new CrabboxError(`timed out waiting for AWS Lambda MicroVM ${first.microvmId} runner readiness`, {
      exitCode: ExitCode.notReady,
      hint: "the MicroVM did not become healthy in time; check the image and retry",
    });
  let vm = first;
  let attempt = 0;
  const pause = async () => {
    const ms = POLL_MS[Math.min(attempt, POLL_MS.length - 1)] as number;
    attempt++;
    if (performance.now() + ms > deadline) throw timedOut();
    await sleep(ms, signal);
  };

  // 1. The control plane says RUNNING.
  while (vm.state !== "RUNNING") {
    if (terminal(vm.state)) throw enteredTerminal(vm);
    options.onProgress?.(`waiting for MicroVM ${vm.microvmId} (${vm.state.toLowerCase()})`);
    await pause();
    vm = await plane.getMicrovm(vm.microvmId, signal);
  }

  // 2. The runner answers through the data plane.
  attempt = 0;
  let lastError: unknown;
  for (;;) {
    options.onProgress?.(`waiting for the runner on ${vm.microvmId}`);
    const remaining = deadline - performance.now();
    if (remaining <= 0)
      throw lastError instanceof CrabboxError ? withTimeout(timedOut(), lastError) : timedOut();
    try {
      const health = await runner.health({
        timeoutMs: Math.min(HEALTH_PROBE_TIMEOUT_MS, Math.max(1, remaining)),
        signal,
      });
      return { vm, health: { ...health, protocol: checkRunnerProtocol(options.leaseId, health) } };
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (!retryableProbeError(error)) throw error;
      lastError = error;
    }
    // A MicroVM that died while its runner was probed will never answer.
    const current = await plane.getMicrovm(vm.microvmId, signal);
    if (terminal(current.state)) throw enteredTerminal(current);
    await pause();
  }
}

function withTimeout(timeout: CrabboxError, last: CrabboxError): CrabboxError {
  return new CrabboxError(`${timeout.message} (last probe: ${last.message})`, {
    exitCode: timeout.exitCode,
    hint: timeout.hint,
  });
}
