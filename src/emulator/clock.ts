/**
 * `--time-scale F` multiplies the durations a MicroVM lives by (idle, suspended, maximum duration,
 * hook and boot timeouts) so tests can use valid API values (maxIdle >= 60 s) and still finish in
 * seconds. Token lifetimes and fault values stay in real time.
 */
export interface Clock {
  readonly scale: number;
  /** Real milliseconds for `seconds` of API time. */
  ms(seconds: number): number;
  /**
   * Real milliseconds for a timeout: scaled, but never below `floorSeconds` real seconds (or the
   * unscaled value, if smaller). A 10 s hook scaled by 0.01 would otherwise fail spuriously on a
   * loaded 2-core CI machine while the runner is merely slow.
   */
  timeoutMs(seconds: number, floorSeconds: number): number;
}

export function createClock(scale: number): Clock {
  return {
    scale,
    ms: (seconds) => seconds * 1000 * scale,
    timeoutMs: (seconds, floorSeconds) =>
      Math.max(seconds * 1000 * scale, Math.min(seconds, floorSeconds) * 1000),
  };
}
