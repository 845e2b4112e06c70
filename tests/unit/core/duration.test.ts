import { describe, expect, test } from "bun:test";
import { formatDuration, humanBytes, parseDuration, wholeSeconds } from "../../../src/core/duration.ts";

describe("parseDuration", () => {
  test.each([
    ["90m", 5_400_000],
    ["1h30m", 5_400_000],
    ["45s", 45_000],
    ["500ms", 500],
    ["1.5h", 5_400_000],
    ["2h0m10s", 7_210_000],
    ["1m30s250ms", 90_250],
    ["0", 0],
    ["0s", 0],
    [" 8h ", 28_800_000],
  ])("%p is %p ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(["", "90", "5 minutes", "-5m", "1d", "m", "1h 30m", "abc", "1.h"])(
    "%p is not a duration",
    (text) => {
      expect(parseDuration(text)).toBeUndefined();
    },
  );
});

describe("formatDuration (Go's Duration.String after rounding to ms)", () => {
  test.each([
    [0, "0s"],
    [0.4, "0s"],
    [850, "850ms"],
    [1234, "1.234s"],
    [1200, "1.2s"],
    [62_500, "1m2.5s"],
    [3_600_000, "1h0m0s"],
    [1_800_000, "30m0s"],
    [5_400_000, "1h30m0s"],
    [-1500, "-1.5s"],
  ])("%p ms prints %p", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe("humanBytes", () => {
  test.each([
    [0, "0 B"],
    [1, "1 B"],
    [1023, "1023 B"],
    [1024, "1.0 KiB"],
    [1536, "1.5 KiB"],
    [1280, "1.2 KiB"], // 1.25 is a tie: Go's %.1f rounds it to even
    [1792, "1.8 KiB"], // 1.75 → 1.8 (even)
    [5 * 1024 ** 3, "5.0 GiB"],
    [20 * 1024 ** 3, "20.0 GiB"],
    [3 * 1024 ** 5, "3.0 PiB"],
    [2048 * 1024 ** 5, "2048.0 PiB"],
  ])("%p bytes is %p", (bytes, text) => {
    expect(humanBytes(bytes)).toBe(text);
  });
});

test("wholeSeconds truncates and never goes negative", () => {
  expect(wholeSeconds(5_400_999)).toBe(5400);
  expect(wholeSeconds(0)).toBe(0);
  expect(wholeSeconds(-10)).toBe(0);
});
