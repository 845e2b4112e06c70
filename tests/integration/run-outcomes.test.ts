/**
 * What a run ends with (compiled binary, real emulator): `--json-summary` on success, failure,
 * timeout and crabbox's own errors, each validated against docs/run-summary.schema.json (cancel is
 * in run-signals.test.ts); `--timeout` → 124 with a line saying so; a stream cut mid-run reattaches
 * with no gap and no duplicate; `--clean` on a retained lease.
 */
import { expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { microvmIdOf, providerSuite, setFaults } from "./provider-run-harness.ts";
import { expectNoLiveMicrovms, expectNoVmProcesses, readSummary, warmLeaseWith } from "./run-support.ts";

const { emu, box } = providerSuite({ binary: "dist", testApi: true }, { "src/main.txt": "hello\n" });

test("success: the summary says succeeded, from the remote, with the lease, timings and sync", async () => {
  const b = box();
  const file = join(b.root, "out", "summary.json");
  const result = await b.crabbox(["run", "--json-summary", file, "--", "cat", "src/main.txt"]);
  expect(result.code).toBe(0);
  expect(result.stdout).toBe("hello\n");
  const summary = readSummary(file);
  expect(summary).toMatchObject({
    status: "succeeded",
    exitCode: 0,
    exitCodeSource: "remote",
    remoteExitCode: 0,
    provider: "aws-lambda-microvm",
    region: "us-east-1",
    microvmId: microvmIdOf(result.stderr),
    command: "'cat' 'src/main.txt'",
    leaseKept: false,
    error: null,
    artifacts: null,
  });
  expect(summary.sync).toMatchObject({
    uploaded: true,
    filesWritten: 1,
    filesDeleted: 0,
    removedUnsynced: null,
  });
  expect(summary.sync?.bytesSent).toBeGreaterThan(0);
  for (const phase of ["prepareMs", "provisionMs", "syncMs", "commandMs", "teardownMs"] as const) {
    expect(typeof summary.timings[phase]).toBe("number");
  }
  expect(summary.timings.artifactsMs).toBeNull();
});

test("failure: the remote's code passes through and the summary says so", async () => {
  const b = box();
  const file = join(b.root, "summary.json");
  const result = await b.crabbox(["run", "--no-sync", "--json-summary", file, "--", "sh", "-c", "exit 6"]);
  expect(result.code).toBe(6);
  // The same 6 as a sync failure: exitCodeSource tells them apart.
  expect(readSummary(file)).toMatchObject({
    status: "failed",
    exitCode: 6,
    exitCodeSource: "remote",
    remoteExitCode: 6,
    sync: null,
  });
});

test("--timeout: the command is stopped, exit 124 with a line saying so", async () => {
  const b = box();
  const file = join(b.root, "summary.json");
  const result = await b.crabbox([
    "run",
    "--no-sync",
    "--timeout",
    "1s",
    "--json-summary",
    file,
    "--",
    "sh",
    "-c",
    "echo started; sleep 30; echo never",
  ]);
  expect(result.code).toBe(124);
  expect(result.stdout).toBe("started\n");
  expect(result.stderr).toContain("error: command timed out after 1s (--timeout) and was stopped");
  expect(readSummary(file)).toMatchObject({
    status: "timed-out",
    exitCode: 124,
    exitCodeSource: "crabbox",
    remoteExitCode: null,
    signal: "SIGTERM",
  });
  await expectNoLiveMicrovms(emu());
  await expectNoVmProcesses(emu());
});

test("crabbox's own errors: provider-error with crabbox's code, before and after a lease", async () => {
  const b = box();
  const usage = join(b.root, "usage.json");
  const bad = await b.crabbox(["run", "--timeout", "soon", "--json-summary", usage, "--", "true"]);
  expect(bad.code).toBe(2);
  expect(readSummary(usage)).toMatchObject({
    status: "provider-error",
    exitCode: 2,
    exitCodeSource: "crabbox",
    provider: null,
    leaseId: null,
    error: { message: 'invalid duration "soon" for --timeout', hint: null },
  });

  const unreachable = join(b.root, "unreachable.json");
  const down = await b.crabbox(["run", "--no-sync", "--json-summary", unreachable, "--", "true"], {
    env: { CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: "http://127.0.0.1:9" },
  });
  expect(down.code).toBe(1);
  expect(readSummary(unreachable)).toMatchObject({
    status: "provider-error",
    exitCode: 1,
    provider: "aws-lambda-microvm",
    command: null,
  });

  await setFaults(emu(), ["runner-crash@/v1/exec,count=1"]);
  const crashed = join(b.root, "crashed.json");
  const lost = await b.crabbox(["run", "--no-sync", "--json-summary", crashed, "--", "sleep", "5"]);
  expect(lost.code).toBe(1);
  const summary = readSummary(crashed);
  expect(summary).toMatchObject({ status: "provider-error", exitCode: 1, exitCodeSource: "crabbox" });
  expect(summary.leaseId).toMatch(/^cbx_/);
  await expectNoLiveMicrovms(emu());
});

test("a stream cut mid-run reattaches: every byte once, in order, the command run once", async () => {
  const b = box();
  await setFaults(emu(), ["cut-stream-after=20000@/v1/exec,count=1"]);
  const file = join(b.root, "summary.json");
  const result = await b.crabbox([
    "run",
    "--no-sync",
    "--json-summary",
    file,
    "--",
    "sh",
    "-c",
    // 20,000 numbered lines (about 170 KiB), then how many times this command ran.
    "seq 1 20000; echo ran >> .ran; wc -l < .ran",
  ]);
  expect(result.code).toBe(0);
  const lines = result.stdout.trim().split("\n");
  expect(lines.length).toBe(20001);
  const expected = Array.from({ length: 20000 }, (_, i) => String(i + 1)).join("\n");
  expect(createHash("sha256").update(lines.slice(0, 20000).join("\n")).digest("hex")).toBe(
    createHash("sha256").update(expected).digest("hex"),
  );
  expect(lines[20000]?.trim()).toBe("1");
  const microvmId = microvmIdOf(result.stderr);
  const exec = emu()
    .records()
    .filter((r) => r.plane === "data" && r.microvmId === microvmId && r.path.startsWith("/v1/exec"));
  // One POST, cut by the fault; then one reattach from the last event seen (the log keeps no query).
  expect(exec.map((r) => [r.path.replace(/run_[a-f0-9]{12}/, "<run>"), r.error ?? null])).toEqual([
    ["/v1/exec", "cut-stream-after"],
    ["/v1/exec/<run>/events", null],
  ]);
  expect(readSummary(file)).toMatchObject({ status: "succeeded", exitCode: 0 });
});

test("--clean removes what crabbox did not sync, except sync.keep, even for an unchanged tree", async () => {
  const b = box();
  b.write("crabbox.yaml", "sync:\n  keep: [node_modules, .cache]\n");
  await warmLeaseWith(
    b,
    "tidy",
    "mkdir -p node_modules/m .cache build; echo 1 > node_modules/m/i.js; echo 2 > .cache/c; echo 3 > build/out; echo 4 > junk",
  );
  const file = join(b.root, "summary.json");
  const clean = await b.crabbox([
    "run",
    "--id",
    "tidy",
    "--clean",
    "--json-summary",
    file,
    "--",
    "find",
    ".",
    "-type",
    "f",
  ]);
  expect(clean.code).toBe(0);
  expect(clean.stdout.trim().split("\n").sort()).toEqual(
    ["./.cache/c", "./crabbox.yaml", "./node_modules/m/i.js", "./src/main.txt"].sort(),
  );
  expect(clean.stderr).toContain("clean: removed 2 unsynced files (kept node_modules, .cache)");
  expect(readSummary(file).sync).toMatchObject({ uploaded: true, filesWritten: 0, removedUnsynced: 2 });
  const refused = await b.crabbox(["run", "--id", "tidy", "--clean", "--no-sync", "--", "true"]);
  expect(refused.code).toBe(2);
  expect((await b.crabbox(["stop", "tidy"])).code).toBe(0);
});
