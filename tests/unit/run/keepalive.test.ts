import { expect, test } from "bun:test";
import {
  KEEPALIVE_MIN_MS,
  keepAliveDisabled,
  keepAliveIntervalMs,
  startKeepAlive,
} from "../../../src/providers/aws-lambda-microvm/keepalive.ts";

test("every idle/4, at least 10 s, both scaled", () => {
  expect(keepAliveIntervalMs(30 * 60_000, 1)).toBe(7.5 * 60_000);
  expect(keepAliveIntervalMs(60_000, 1)).toBe(15_000);
  expect(keepAliveIntervalMs(20_000, 1)).toBe(KEEPALIVE_MIN_MS);
  expect(keepAliveIntervalMs(60_000, 0.02)).toBe(300);
  expect(keepAliveIntervalMs(20_000, 0.02)).toBe(200);
});

test("the test knob works only in emulator mode", () => {
  const env = { CRABBOX_TEST_DISABLE_KEEPALIVE: "1" };
  expect(keepAliveDisabled({ emulator: true }, env)).toBe(true);
  expect(keepAliveDisabled({ emulator: false }, env)).toBe(false);
  expect(keepAliveDisabled({ emulator: true }, {})).toBe(false);
});

test("probes repeat until stopped; a hung probe does not silence the others; stop aborts probes", async () => {
  const signals: AbortSignal[] = [];
  let resolved = 0;
  let reachedFive: () => void = () => {};
  const five = new Promise<void>((resolve) => {
    reachedFive = resolve;
  });
  const errors: unknown[] = [];
  const stop = startKeepAlive({
    intervalMs: 5,
    probe: ({ signal }) => {
      signals.push(signal);
      // The first probe hangs until aborted; the rest answer at once.
      if (signals.length === 1) {
        return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
      }
      resolved++;
      if (resolved === 5) reachedFive();
      return Promise.resolve();
    },
    onError: (error) => errors.push(error),
  });
  await five;
  stop();
  const count = signals.length;
  expect(signals[0]?.aborted).toBe(true);
  await Bun.sleep(30);
  expect(signals.length).toBe(count);
  // The aborted hung probe is not reported: stopping is not a failure.
  expect(errors).toEqual([]);
});
