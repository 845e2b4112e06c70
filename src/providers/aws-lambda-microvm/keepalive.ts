import type { ControlPlane } from "./control-plane.ts";
import { HEALTH_PROBE_TIMEOUT_MS } from "./readiness.ts";

/**
 * Keep-alive while a command runs. AWS suspends a MicroVM that receives no inbound request for its
 * idle timeout — even mid-command, and an open response stream is not inbound traffic — so a quiet
 * `sleep 1800` would be frozen mid-way. While the exec is live the CLI sends `GET /health` every
 * idle/4 (at least 10 s; both scaled by CRABBOX_TIME_SCALE in emulator mode), stopping when the
 * exec ends. Probes do not wait for each other (at most two in flight), so one hung probe cannot
 * silence the rest; a failed probe is only a debug line — the exec stream is what decides the run.
 */

export const KEEPALIVE_MIN_MS = 10_000;
const MAX_IN_FLIGHT = 2;

/** idle/4, at least 10 s, times the time scale (1 outside emulator mode). */
export function keepAliveIntervalMs(idleMs: number, timeScale: number): number {
  return Math.max(idleMs / 4, KEEPALIVE_MIN_MS) * timeScale;
}

/**
 * `CRABBOX_TEST_DISABLE_KEEPALIVE=1` switches keep-alive off — a test knob, honoured only in
 * emulator mode, so a test can show that without it the MicroVM would have been suspended.
 */
export function keepAliveDisabled(plane: Pick<ControlPlane, "emulator">, env = process.env): boolean {
  return plane.emulator && env.CRABBOX_TEST_DISABLE_KEEPALIVE === "1";
}

export interface KeepAliveOptions {
  intervalMs: number;
  /** One probe; must honour the signal and the timeout. */
  probe(options: { timeoutMs: number; signal: AbortSignal }): Promise<unknown>;
  onError?(error: unknown): void;
}

/** Starts probing after one interval; the returned function stops it and aborts probes in flight. */
export function startKeepAlive(options: KeepAliveOptions): () => void {
  const stopped = new AbortController();
  let inFlight = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    if (stopped.signal.aborted) return;
    if (inFlight < MAX_IN_FLIGHT) {
      inFlight++;
      options
        .probe({ timeoutMs: HEALTH_PROBE_TIMEOUT_MS, signal: stopped.signal })
        .catch((error: unknown) => {
          if (!stopped.signal.aborted) options.onError?.(error);
        })
        .finally(() => {
          inFlight--;
        });
    }
    timer = setTimeout(tick, options.intervalMs);
  };
  timer = setTimeout(tick, options.intervalMs);
  return () => {
    if (timer) clearTimeout(timer);
    stopped.abort();
  };
}
