import { afterEach, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { CrabboxError } from "../../../src/core/errors.ts";
import { parseRunOptions } from "../../../src/core/run-options.ts";
import { attachStdin, localStdin, stdinIsData } from "../../../src/core/stdin.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CrabboxError);
    expect((error as CrabboxError).exitCode).toBe(2);
    return (error as CrabboxError).message;
  }
  throw new Error("expected a usage error");
}

test("run options resolve paths and durations", () => {
  const options = parseRunOptions(
    {
      timeout: "1m30s",
      "artifact-dir": "out",
      "json-summary": "s.json",
      "require-artifact": true,
      clean: true,
    },
    ["dist", "a.txt=b.txt"],
    "/repo/sub",
  );
  expect(options).toMatchObject({
    timeoutMs: 90_000,
    artifactDir: "/repo/sub/out",
    summaryFile: "/repo/sub/s.json",
    requireArtifacts: true,
    clean: true,
    stdin: undefined,
  });
  expect(options.downloads.map((spec) => [spec.remote, spec.local])).toEqual([
    ["dist", undefined],
    ["a.txt", "b.txt"],
  ]);
});

test("combinations that cannot work are exit 2 before any MicroVM", () => {
  expect(usage(() => parseRunOptions({ timeout: "soon" }, [], "/"))).toBe(
    'invalid duration "soon" for --timeout',
  );
  expect(usage(() => parseRunOptions({ timeout: "0" }, [], "/"))).toBe("--timeout must be positive");
  expect(usage(() => parseRunOptions({ timeout: "721h" }, [], "/"))).toBe("--timeout must be at most 720h");
  expect(usage(() => parseRunOptions({ "require-artifact": true }, [], "/"))).toContain("needs --download");
  expect(usage(() => parseRunOptions({ "artifact-dir": "x" }, [], "/"))).toContain("needs --download");
  expect(usage(() => parseRunOptions({ clean: true, sync: false }, [], "/"))).toContain("--no-sync");
  expect(usage(() => parseRunOptions({ "sync-only": true }, ["x"], "/"))).toContain("--sync-only");
  expect(usage(() => parseRunOptions({}, ["../x"], "/"))).toContain("'..'");
});

test("stdin: a FIFO or a file is data; flags decide otherwise", () => {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-stdin-"));
  dirs.push(dir);
  writeFileSync(join(dir, "f"), "x");
  const fd = openSync(join(dir, "f"), "r");
  try {
    expect(stdinIsData(fd)).toBe(true);
  } finally {
    closeSync(fd);
  }
  const devNull = openSync("/dev/null", "r");
  try {
    expect(stdinIsData(devNull)).toBe(false);
  } finally {
    closeSync(devNull);
  }
  expect(stdinIsData(987_654)).toBe(false);
  expect(attachStdin(undefined, () => true)).toBe(true);
  expect(attachStdin(undefined, () => false)).toBe(false);
  expect(attachStdin(true, () => false)).toBe(true);
  expect(attachStdin(false, () => true)).toBe(false);
});

test("local stdin streams bytes exactly, strings included", async () => {
  const input = Readable.from([Buffer.from([0, 1, 2]), "é", Buffer.from([255])]);
  const bytes = new Uint8Array(await new Response(localStdin(input)).arrayBuffer());
  expect([...bytes]).toEqual([0, 1, 2, 0xc3, 0xa9, 255]);
});
