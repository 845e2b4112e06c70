/**
 * The pieces of the one-request warm rerun that need no MicroVM: what a claim vouches for, which
 * failures send crabbox to AWS, and the exec guarded by the workdir fingerprint (409 → resync).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Claim } from "../../../src/core/claims.ts";
import { CrabboxError, ExitCode } from "../../../src/core/errors.ts";
import { fingerprint, symlinkEntry } from "../../../src/protocol/fingerprint.ts";
import type { ManifestEntry, ManifestResponse, SyncResult } from "../../../src/protocol/types.ts";
import { ControlPlaneError } from "../../../src/providers/aws-lambda-microvm/control-plane.ts";
import type { ExecOutcome } from "../../../src/providers/aws-lambda-microvm/exec.ts";
import { RunnerHttpError } from "../../../src/providers/aws-lambda-microvm/http.ts";
import type { Progress } from "../../../src/providers/aws-lambda-microvm/progress.ts";
import { claimedMicrovm, isDataPlaneFailure } from "../../../src/providers/aws-lambda-microvm/reuse.ts";
import {
  type RunnerClient,
  RunnerStreamError,
} from "../../../src/providers/aws-lambda-microvm/runner-client.ts";
import {
  execOnSyncedWorkdir,
  MAX_EXEC_RESYNCS,
  mergeSyncStats,
  type SyncContext,
  type SyncTarget,
  syncWorkdir,
} from "../../../src/providers/aws-lambda-microvm/sync.ts";
import type { Reporter } from "../../../src/providers/provider.ts";
import { loadRemembered, saveRemembered } from "../../../src/sync/remembered.ts";
import { symlinkSnapshot } from "./symlink-snapshot.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function claim(fields: Partial<Claim> = {}): Claim {
  return {
    leaseID: "cbx_0123456789ab",
    revision: "r",
    slug: "blue-crab",
    provider: "aws-lambda-microvm",
    cloudID: "microvm-1",
    providerScope: "us-east-1",
    repoRoot: "/repo",
    claimedAt: "2026-01-01T00:00:00Z",
    lastUsedAt: "2026-01-01T00:00:00Z",
    state: "ready",
    runner: { protocol: 1, version: "0.1.0" },
    labels: { endpoint: "abc.lambda-microvm.us-east-1.on.aws", image_arn: "arn:img", image_version: "1.0" },
    ...fields,
  };
}

describe("what a claim vouches for", () => {
  test("a ready claim with a recorded runner, endpoint and image: no GetMicrovm needed", () => {
    expect(claimedMicrovm(claim())).toEqual({
      microvmId: "microvm-1",
      endpoint: "abc.lambda-microvm.us-east-1.on.aws",
      imageArn: "arn:img",
      imageVersion: "1.0",
      runner: { protocol: 1, version: "0.1.0" },
    });
  });

  test("anything less is verified with AWS first", () => {
    expect(claimedMicrovm(claim({ state: "provisioning" }))).toBeUndefined();
    expect(claimedMicrovm(claim({ state: "recovery" }))).toBeUndefined();
    expect(claimedMicrovm(claim({ runner: undefined }))).toBeUndefined();
    expect(claimedMicrovm(claim({ labels: { image_arn: "arn:img" } }))).toBeUndefined();
    expect(claimedMicrovm(claim({ labels: { endpoint: "x.on.aws" } }))).toBeUndefined();
    // An upstream Go claim: no state, no runner.
    expect(claimedMicrovm(claim({ state: undefined, runner: undefined }))).toBeUndefined();
  });
});

describe("which failures send crabbox to AWS", () => {
  const proxy = (status: number) => new RunnerHttpError("exec", status, "Bad Gateway");
  const runner = (status: number, code: string) =>
    new RunnerHttpError("exec", status, JSON.stringify({ code, message: "m" }));

  test("the way to the runner failed: proxy answers, transport errors, a token that cannot be minted", () => {
    // exec gives up on a POST that never got through as a lost stream with no event seen.
    const lost = new RunnerStreamError("stream ended without an exit event", 0, proxy(502));
    expect(isDataPlaneFailure(lost)).toBe(true);
    expect(isDataPlaneFailure(new RunnerStreamError("explained", 0, lost))).toBe(true);
    expect(isDataPlaneFailure(proxy(502))).toBe(true);
    expect(isDataPlaneFailure(proxy(404))).toBe(true);
    expect(isDataPlaneFailure(proxy(403))).toBe(true);
    expect(isDataPlaneFailure(new CrabboxError("aws-lambda-microvm runner exec failed: ECONNREFUSED"))).toBe(
      true,
    );
    expect(
      isDataPlaneFailure(
        new ControlPlaneError("CreateMicrovmAuthToken", "microvm-1", "ResourceNotFoundException", "gone", {}),
      ),
    ).toBe(true);
  });

  test("the runner itself answered, or the command already ran: no verification", () => {
    expect(isDataPlaneFailure(runner(409, "fingerprint_mismatch"))).toBe(false);
    expect(isDataPlaneFailure(runner(404, "not_found"))).toBe(false);
    expect(isDataPlaneFailure(runner(400, "bad_request"))).toBe(false);
    expect(isDataPlaneFailure(new RunnerStreamError("stream ended without an exit event", 7))).toBe(false);
    expect(
      isDataPlaneFailure(new RunnerStreamError("stream ended without an exit event", 7, proxy(502))),
    ).toBe(false);
    expect(isDataPlaneFailure(new CrabboxError("create sync archive: gone", { exitCode: 6 }))).toBe(false);
    expect(isDataPlaneFailure(new Error("boom"))).toBe(false);
  });
});

// Symlink-only snapshots: the archive writes their targets from the plan, no files needed.
const local: ManifestEntry[] = [symlinkEntry("a", "one"), symlinkEntry("b", "two")];
const snapshot = (entries: ManifestEntry[] = local) => symlinkSnapshot(entries);

const silent: Reporter = { info() {}, warn() {}, debug() {}, stdout() {}, stderr() {} };
const progress: Progress = { report: silent, phase() {}, update() {}, stop() {} };

function context(lines: string[] = []): SyncContext {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-warm-"));
  dirs.push(dir);
  return {
    stateDir: dir,
    report: { ...silent, info: (line) => lines.push(line) },
    signal: new AbortController().signal,
    progress,
  };
}

const target: SyncTarget = {
  microvmId: "microvm-1",
  workdir: "/workspace/crabbox",
  fresh: false,
  persist: true,
  compression: { encoding: "gzip" },
};

/** A runner whose workdir is whatever `disk` says; every call is logged. */
function fakeRunner(disk: { entries: ManifestEntry[] }, calls: string[]): RunnerClient {
  const client = {
    async manifest(): Promise<ManifestResponse> {
      calls.push("manifest");
      return { workdir: target.workdir, fingerprint: fingerprint(disk.entries), entries: disk.entries };
    },
    async sync(_workdir: string, base: string, body: unknown): Promise<SyncResult> {
      calls.push(`sync base=${base === fingerprint(disk.entries) ? "current" : "stale"}`);
      if (typeof body === "function") await new Response(body()).arrayBuffer();
      disk.entries = local;
      return { fingerprint: fingerprint(local), written: 1, deleted: 0, removedUnsynced: 0, bytesIn: 1 };
    },
  };
  return client as unknown as RunnerClient;
}

const exited: ExecOutcome = {
  exitCode: 0,
  remoteExitCode: 0,
  signal: null,
  reason: "exited",
  startedAtMs: 1,
  durationMs: 1,
  interrupted: false,
} as ExecOutcome;

function mismatch(): RunnerHttpError {
  return new RunnerHttpError(
    "exec",
    409,
    JSON.stringify({ code: "fingerprint_mismatch", message: "changed", fingerprint: "x" }),
  );
}

describe("sync against the remembered manifest, exec guarded by the fingerprint", () => {
  test("unchanged since the remembered sync: no request before the exec", async () => {
    const ctx = context();
    await saveRemembered(ctx.stateDir, target.microvmId, target.workdir, {
      fingerprint: fingerprint(local),
      entries: local,
    });
    const calls: string[] = [];
    const runner = fakeRunner({ entries: local }, calls);
    const stats = await syncWorkdir(ctx, runner, target, snapshot());
    expect(calls).toEqual([]);
    expect(stats.uploads).toBe(0);
    expect(stats.fingerprint).toBe(fingerprint(local));
    expect(stats.phases.map((p) => [p.name, p.skipped === true])).toEqual([
      ["manifest", false],
      ["hash", false],
      ["diff", false],
      ["upload", true],
      ["apply", true],
      ["aws_lambda_microvm_sync", false],
    ]);
    const expected: (string | undefined)[] = [];
    const guarded = await execOnSyncedWorkdir(ctx, runner, target, snapshot(), stats, async (fp) => {
      expected.push(fp);
      return exited;
    });
    expect(guarded.outcome).toBe(exited);
    expect(expected).toEqual([fingerprint(local)]);
  });

  test("nothing remembered: the runner's manifest is read, the delta sent, the result remembered", async () => {
    const ctx = context();
    const calls: string[] = [];
    const stats = await syncWorkdir(
      ctx,
      fakeRunner({ entries: [local[0] as ManifestEntry] }, calls),
      target,
      snapshot(),
    );
    expect(calls).toEqual(["manifest", "sync base=current"]);
    expect(stats.written).toBe(1);
    expect(stats.phases.find((p) => p.name === "apply")).toMatchObject({ changed: 1, deleted: 0 });
    expect(await loadRemembered(ctx.stateDir, target.microvmId, target.workdir)).toEqual({
      fingerprint: fingerprint(local),
      entries: local,
    });
  });

  test("a workdir changed remotely: 409, read the runner's manifest, resync, exec again", async () => {
    const lines: string[] = [];
    const ctx = context(lines);
    await saveRemembered(ctx.stateDir, target.microvmId, target.workdir, {
      fingerprint: fingerprint(local),
      entries: local,
    });
    const calls: string[] = [];
    // Remotely, `b` was rewritten: the runner's manifest says so.
    const disk = { entries: [local[0] as ManifestEntry, symlinkEntry("b", "evil")] };
    const runner = fakeRunner(disk, calls);
    const first = await syncWorkdir(ctx, runner, target, snapshot());
    let attempts = 0;
    const guarded = await execOnSyncedWorkdir(ctx, runner, target, snapshot(), first, async (fp) => {
      attempts++;
      calls.push(`exec ${fp === fingerprint(disk.entries) ? "matches" : "differs"}`);
      if (fp !== fingerprint(disk.entries)) throw mismatch();
      return exited;
    });
    expect(guarded.failure).toBeUndefined();
    expect(attempts).toBe(2);
    expect(calls).toEqual(["exec differs", "manifest", "sync base=current", "exec matches"]);
    expect(lines.some((line) => line.includes("changed remotely since the last sync; resyncing"))).toBe(true);
    expect(guarded.sync?.written).toBe(1);
    expect(guarded.sync?.manifestReads).toBe(1);
  });

  test(`a workdir that keeps changing: ${MAX_EXEC_RESYNCS} resyncs, then exit 6 naming the path`, async () => {
    const ctx = context();
    const calls: string[] = [];
    const disk = { entries: local };
    const runner = fakeRunner(disk, calls);
    const first = await syncWorkdir(ctx, runner, target, snapshot());
    let attempts = 0;
    const guarded = await execOnSyncedWorkdir(ctx, runner, target, snapshot(), first, async () => {
      attempts++;
      // Something in the MicroVM rewrites `b` right after every sync.
      disk.entries = [local[0] as ManifestEntry, symlinkEntry("b", "again")];
      throw mismatch();
    });
    expect(guarded.outcome).toBeUndefined();
    expect(guarded.failure).toBeInstanceOf(CrabboxError);
    expect((guarded.failure as CrabboxError).exitCode).toBe(ExitCode.sync);
    expect((guarded.failure as CrabboxError).message).toContain('"b" keeps changing remotely');
    expect(attempts).toBe(1 + MAX_EXEC_RESYNCS);
    expect(calls.filter((call) => call.startsWith("sync")).length).toBe(MAX_EXEC_RESYNCS);
  });

  test("other exec failures pass through untouched", async () => {
    const ctx = context();
    const boom = new RunnerHttpError("exec", 502, "Bad Gateway");
    const guarded = await execOnSyncedWorkdir(
      ctx,
      fakeRunner({ entries: local }, []),
      target,
      snapshot(),
      undefined,
      async () => {
        throw boom;
      },
    );
    expect(guarded.failure).toBe(boom);
  });

  test("a resync's stats add up with the first sync's", () => {
    const base = {
      ms: 10,
      bytesSent: 100,
      written: 2,
      deleted: 1,
      uploads: 1,
      manifestReads: 0,
      fingerprint: "f1",
      removedUnsynced: undefined,
      phases: [
        { name: "diff", ms: 1 },
        { name: "upload", skipped: true, reason: "unchanged" },
        { name: "apply", ms: 2, changed: 2, deleted: 1 },
      ],
    };
    const merged = mergeSyncStats(base, {
      ...base,
      fingerprint: "f2",
      phases: [
        { name: "diff", ms: 3 },
        { name: "upload", ms: 5, bytes: 100 },
        { name: "apply", ms: 1, changed: 1, deleted: 0 },
      ],
    });
    expect(merged.fingerprint).toBe("f2");
    expect(merged.bytesSent).toBe(200);
    expect(merged.phases).toEqual([
      { name: "diff", ms: 4 },
      { name: "upload", ms: 5, bytes: 100 },
      { name: "apply", ms: 3, changed: 3, deleted: 1 },
    ]);
  });
});
