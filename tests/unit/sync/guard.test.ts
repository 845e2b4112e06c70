import { describe, expect, test } from "bun:test";
import { CrabboxError, ExitCode } from "../../../src/core/errors.ts";
import { checkSyncSize, DEFAULT_SYNC_LIMITS, topDirs } from "../../../src/sync/guard.ts";

const files = [
  { path: "one.txt", size: 4 },
  { path: "two.txt", size: 4 },
];

function failure(fn: () => unknown): CrabboxError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CrabboxError);
    return error as CrabboxError;
  }
  throw new Error("expected the guard to fail");
}

describe("checkSyncSize", () => {
  test("always reports the candidate line", () => {
    expect(checkSyncSize(files, DEFAULT_SYNC_LIMITS)).toMatchObject({
      files: 2,
      bytes: 8,
      candidateLine: "sync candidate: 2 files, 8 B",
      warnings: [],
      notes: [],
    });
  });

  test("failFiles reached → exit 6 with upstream's message (upstream test: 2 files, limit 2)", () => {
    const error = failure(() => checkSyncSize(files, { ...DEFAULT_SYNC_LIMITS, failFiles: 2, failBytes: 0 }));
    expect(error.exitCode).toBe(ExitCode.sync);
    expect(error.message).toBe(
      "sync candidate too large: 2 files >= limit 2; use --force-sync-large or CRABBOX_SYNC_ALLOW_LARGE=1",
    );
    expect(error.hint).toContain(".:8 B/2 files");
  });

  test("failBytes=1 → the bytes variant", () => {
    const error = failure(() => checkSyncSize(files, { ...DEFAULT_SYNC_LIMITS, failBytes: 1 }));
    expect(error.message).toBe(
      "sync candidate too large: 8 B >= limit 1 B; use --force-sync-large or CRABBOX_SYNC_ALLOW_LARGE=1",
    );
  });

  test("allowLarge lets it through; 0 disables a limit", () => {
    expect(checkSyncSize(files, { ...DEFAULT_SYNC_LIMITS, failFiles: 1, allowLarge: true }).files).toBe(2);
    expect(checkSyncSize(files, { ...DEFAULT_SYNC_LIMITS, failFiles: 0, failBytes: 0 }).files).toBe(2);
  });

  test("warning thresholds print a warning, the top dirs and the hint", () => {
    const report = checkSyncSize(
      [
        { path: "vendor/a", size: 5000 },
        { path: "vendor/b", size: 5000 },
        { path: "src/c", size: 10 },
      ],
      { ...DEFAULT_SYNC_LIMITS, warnFiles: 3 },
    );
    expect(report.warnings).toEqual(["large sync candidate: 3 files >= warning threshold 3"]);
    expect(report.notes[0]).toBe("sync top dirs: vendor:9.8 KiB/2 files, src:10 B/1 files");
    expect(report.notes[1]).toStartWith("sync hint: add generated paths to .crabboxignore");
    const bytes = checkSyncSize(files, { ...DEFAULT_SYNC_LIMITS, warnBytes: 8 });
    expect(bytes.warnings).toEqual(["large sync candidate: 8 B >= warning threshold 8 B"]);
  });

  test("top dirs: largest bytes first, at most five, ties by name", () => {
    const many = ["f", "e", "d", "c", "b", "a"].map((dir) => ({ path: `${dir}/x`, size: 1 }));
    expect(topDirs(many).map((d) => d.dir)).toEqual(["a", "b", "c", "d", "e"]);
  });
});
