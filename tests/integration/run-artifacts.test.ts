/**
 * `run --download` (compiled binary, real emulator): artifacts come back after a failing command,
 * into `.crabbox/runs/<run-id>/` (with `.crabbox/.gitignore`), mapped by `=local` and the remote
 * cwd; a file the command writes in its first instant counts; a stale file left by an earlier run on
 * a retained lease is reported and not downloaded, and `--require-artifact` makes that exit 7.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { providerSuite } from "./provider-run-harness.ts";
import { expectNoLiveMicrovms, readSummary, warmLeaseWith } from "./run-support.ts";

const { emu, box } = providerSuite({ binary: "dist" }, { "README.md": "checkout\n" });

test("artifacts are downloaded after a failing command, into .crabbox/runs/<run-id>/", async () => {
  const b = box();
  const summaryFile = join(b.root, "summary.json");
  const result = await b.crabbox([
    "run",
    "--json-summary",
    summaryFile,
    "--download",
    "out",
    "--download",
    "report.xml=reports/junit.xml",
    "--download",
    "**/*.log=logs",
    "--",
    "sh",
    "-c",
    "mkdir -p out/sub deep/er; echo a > out/a.txt; echo b > out/sub/b.txt; echo r > report.xml; echo l > deep/er/t.log; exit 3",
  ]);
  expect(result.code).toBe(3);
  const summary = readSummary(summaryFile);
  expect(summary).toMatchObject({ status: "failed", exitCode: 3, exitCodeSource: "remote" });
  const dir = join(b.repo, ".crabbox", "runs", summary.runId);
  expect(summary.artifacts?.dir).toBe(dir);
  expect(readFileSync(join(b.repo, ".crabbox", ".gitignore"), "utf8")).toBe("*\n");
  expect(readFileSync(join(dir, "out/a.txt"), "utf8")).toBe("a\n");
  expect(readFileSync(join(dir, "out/sub/b.txt"), "utf8")).toBe("b\n");
  expect(readFileSync(join(dir, "reports/junit.xml"), "utf8")).toBe("r\n");
  expect(readFileSync(join(dir, "logs/deep/er/t.log"), "utf8")).toBe("l\n");
  expect(summary.artifacts?.downloads.map((d) => [d.spec, d.status, d.files.length])).toEqual([
    ["out", "downloaded", 2],
    ["report.xml=reports/junit.xml", "downloaded", 1],
    ["**/*.log=logs", "downloaded", 1],
  ]);
  expect(result.stderr).toContain(`downloaded artifact out: 2 files (4 B) to .crabbox/runs/${summary.runId}`);
  // The checkout's own file was synced before the command: it is older than this run.
  await expectNoLiveMicrovms(emu());
});

test("a file written in the command's first instant counts as this run's", async () => {
  const b = box();
  // One shell writing at once: before the runner took the start from the exec script's mtime, about
  // one run in five saw its own file as older than its start (the kernel's file clock lags).
  for (let i = 0; i < 5; i++) {
    const dir = join(b.root, `art-${i}`);
    const result = await b.crabbox([
      "run",
      "--no-sync",
      "--download",
      "quick.txt",
      "--artifact-dir",
      dir,
      "--require-artifact",
      "--shell",
      "echo x > quick.txt",
    ]);
    expect(result.stderr).not.toContain("error:");
    expect(result.code).toBe(0);
    expect(readFileSync(join(dir, "quick.txt"), "utf8")).toBe("x\n");
  }
  // --artifact-dir given: no .crabbox/ is created in the checkout.
  expect(existsSync(join(b.repo, ".crabbox"))).toBe(false);
});

test("a stale artifact from a previous run on the lease is not downloaded; --require-artifact is exit 7", async () => {
  const b = box();
  await warmLeaseWith(b, "arts", "mkdir -p out; echo old > out/result.txt");

  const summaryFile = join(b.root, "stale.json");
  const stale = await b.crabbox([
    "run",
    "--id",
    "arts",
    "--json-summary",
    summaryFile,
    "--download",
    "out/result.txt",
    "--",
    "true",
  ]);
  expect(stale.code).toBe(0);
  expect(stale.stderr).toContain(
    "warning: artifact out/result.txt: only stale matches, not modified by this run: out/result.txt",
  );
  const summary = readSummary(summaryFile);
  expect(summary.artifacts?.downloads[0]).toMatchObject({
    status: "stale",
    files: [],
    stale: ["out/result.txt"],
  });
  const runDir = join(b.repo, ".crabbox", "runs", summary.runId);
  expect(existsSync(join(runDir, "out/result.txt"))).toBe(false);

  const requiredFile = join(b.root, "required.json");
  const required = await b.crabbox([
    "run",
    "--id",
    "arts",
    "--json-summary",
    requiredFile,
    "--download",
    "out/result.txt",
    "--download",
    "never-made.txt",
    "--require-artifact",
    "--",
    "true",
  ]);
  expect(required.code).toBe(7);
  expect(required.stderr).toContain(
    "error: required artifacts missing or stale: out/result.txt (stale), never-made.txt (missing)",
  );
  expect(readSummary(requiredFile)).toMatchObject({
    status: "failed",
    exitCode: 7,
    exitCodeSource: "crabbox",
    remoteExitCode: 0,
    leaseKept: true,
  });

  // Rewritten by this run, the same file counts again.
  const fresh = await b.crabbox([
    "run",
    "--id",
    "arts",
    "--download",
    "out/result.txt=result.txt",
    "--require-artifact",
    "--artifact-dir",
    join(b.root, "fresh"),
    "--",
    "sh",
    "-c",
    "echo new > out/result.txt",
  ]);
  expect(fresh.code).toBe(0);
  expect(readFileSync(join(b.root, "fresh", "result.txt"), "utf8")).toBe("new\n");
  expect((await b.crabbox(["stop", "arts"])).code).toBe(0);
});

test("downloads are relative to the remote cwd: run from a subdirectory", async () => {
  const b = box();
  b.write("pkg/api/index.txt", "api\n");
  const dir = join(b.root, "art");
  mkdirSync(dir);
  const result = await b.crabbox(
    [
      "run",
      "--download",
      "dist=build",
      "--artifact-dir",
      dir,
      "--",
      "sh",
      "-c",
      "mkdir -p dist; cp index.txt dist/",
    ],
    { cwd: join(b.repo, "pkg/api") },
  );
  expect(result.code).toBe(0);
  expect(readdirSync(join(dir, "build"))).toEqual(["index.txt"]);
  expect(readFileSync(join(dir, "build/index.txt"), "utf8")).toBe("api\n");
});
