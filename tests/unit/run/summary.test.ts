import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CrabboxError, ExitCode } from "../../../src/core/errors.ts";
import { InterruptError } from "../../../src/core/interrupt.ts";
import { createRunSummary, type RunSummary } from "../../../src/core/run-summary.ts";
import { unsupportedKeywords, validate } from "../../support/json-schema.ts";

const schema = JSON.parse(
  readFileSync(join(import.meta.dir, "../../../docs/run-summary.schema.json"), "utf8"),
) as Record<string, never>;

function collector() {
  let clock = 1_700_000_000_000;
  const summary = createRunSummary({ runId: "run_0123456789ab", now: () => (clock += 250) });
  summary.lease({
    leaseId: "cbx_0123456789ab",
    slug: "blue-crab",
    microvmId: "microvm-1",
    region: "us-east-1",
  });
  summary.phase("provision", 800.4);
  summary.phase("sync", 30);
  summary.sync({ uploaded: true, bytesSent: 120, filesWritten: 2, filesDeleted: 0, removedUnsynced: null });
  summary.command("'bun' 'test'");
  return summary;
}

function expectValid(summary: RunSummary): RunSummary {
  expect(validate(schema, summary)).toEqual([]);
  return summary;
}

describe("the schema", () => {
  test("uses only keywords the test validator implements", () => {
    expect(unsupportedKeywords(schema)).toEqual([]);
  });

  test("the validator catches what the schema forbids", () => {
    const good = collector().finish({ provider: "aws-lambda-microvm", exitCode: 0 });
    expect(validate(schema, good)).toEqual([]);
    expect(validate(schema, { ...good, status: "ok" })).toEqual([
      '$.status: "ok" is not one of ["succeeded","failed","timed-out","canceled","provider-error"]',
    ]);
    expect(validate(schema, { ...good, extra: 1 })).toEqual(["$: unexpected property extra"]);
    const { exitCode: _, ...missing } = good;
    expect(validate(schema, missing)).toEqual(["$: missing exitCode"]);
    expect(validate(schema, { ...good, timings: { ...good.timings, syncMs: -1 } })).toEqual([
      "$.timings.syncMs: below 0",
    ]);
    expect(validate(schema, { ...good, runId: "x" })[0]).toContain("does not match");
    expect(validate(schema, { ...good, sync: { uploaded: true } })[0]).toContain("oneOf");
  });
});

describe("status and exit code come from what happened", () => {
  test("succeeded: the remote exit 0", () => {
    const summary = collector();
    summary.exec({ exitCode: 0, signal: null, reason: "exited" });
    summary.phase("command", 120);
    const out = expectValid(summary.finish({ provider: "aws-lambda-microvm", exitCode: 0 }));
    expect(out).toMatchObject({
      status: "succeeded",
      exitCode: 0,
      exitCodeSource: "remote",
      remoteExitCode: 0,
      leaseId: "cbx_0123456789ab",
      error: null,
    });
    expect(out.timings).toEqual({
      prepareMs: null,
      provisionMs: 800,
      syncMs: 30,
      commandMs: 120,
      artifactsMs: null,
      teardownMs: null,
      totalMs: 250,
    });
  });

  test("failed: the remote's own code, or 128+n for a signal", () => {
    const failed = collector();
    failed.exec({ exitCode: 3, signal: null, reason: "exited" });
    expect(expectValid(failed.finish({ provider: "p", exitCode: 3 }))).toMatchObject({
      status: "failed",
      exitCode: 3,
      exitCodeSource: "remote",
    });
    const killed = collector();
    killed.exec({ exitCode: null, signal: "SIGKILL", reason: "signaled" });
    expect(expectValid(killed.finish({ provider: "p" }))).toMatchObject({
      status: "failed",
      exitCode: 137,
      exitCodeSource: "remote",
      remoteExitCode: null,
      signal: "SIGKILL",
    });
  });

  test("timed-out: 124 from crabbox", () => {
    const summary = collector();
    summary.exec({ exitCode: null, signal: "SIGTERM", reason: "timeout" });
    const error = new CrabboxError("command timed out", { exitCode: ExitCode.timeout });
    expect(expectValid(summary.finish({ provider: "p", error }))).toMatchObject({
      status: "timed-out",
      exitCode: 124,
      exitCodeSource: "crabbox",
      signal: "SIGTERM",
      error: { message: "command timed out", hint: null },
    });
  });

  test("canceled: 130, naming the signal", () => {
    const summary = collector();
    const controller = new AbortController();
    controller.abort(new InterruptError("SIGTERM"));
    summary.exec({ exitCode: null, signal: "SIGTERM", reason: "interrupted" });
    expect(
      expectValid(
        summary.finish({ provider: "p", error: controller.signal.reason, signal: controller.signal }),
      ),
    ).toMatchObject({ status: "canceled", exitCode: 130, exitCodeSource: "crabbox", interrupt: "SIGTERM" });
  });

  test("provider-error: crabbox's own error and code, even before a provider was chosen", () => {
    const early = createRunSummary({ runId: "run_0123456789ab" });
    const out = expectValid(
      early.finish({ error: new CrabboxError("bad flag", { exitCode: 2, hint: "see --help" }) }),
    );
    expect(out).toMatchObject({
      status: "provider-error",
      exitCode: 2,
      exitCodeSource: "crabbox",
      provider: null,
      leaseId: null,
      command: null,
      sync: null,
      artifacts: null,
      error: { message: "bad flag", hint: "see --help" },
    });
    const plain = expectValid(collector().finish({ provider: "p", error: new Error("boom") }));
    expect(plain).toMatchObject({ status: "provider-error", exitCode: 1 });
  });

  test("a required artifact that is missing fails a successful command with exit 7", () => {
    const summary = collector();
    summary.exec({ exitCode: 0, signal: null, reason: "exited" });
    summary.artifacts({
      dir: "/tmp/a",
      required: true,
      downloads: [{ spec: "out.txt", status: "missing", files: [], stale: [], refused: [], error: null }],
    });
    summary.artifactsRequiredFailed();
    const error = new CrabboxError("required artifacts missing or stale", {
      exitCode: ExitCode.artifactMissing,
    });
    expect(expectValid(summary.finish({ provider: "p", error }))).toMatchObject({
      status: "failed",
      exitCode: 7,
      exitCodeSource: "crabbox",
      remoteExitCode: 0,
    });
  });
});
