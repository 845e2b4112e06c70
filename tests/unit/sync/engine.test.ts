import { describe, expect, test } from "bun:test";
import { CrabboxError, ExitCode } from "../../../src/core/errors.ts";
import { fingerprint } from "../../../src/protocol/fingerprint.ts";
import type { ManifestEntry, SyncResult } from "../../../src/protocol/types.ts";
import { type SyncRunner, syncToRunner } from "../../../src/sync/engine.ts";
import type { RemoteManifest } from "../../../src/sync/plan.ts";
import { symlinkSnapshot } from "./symlink-snapshot.ts";

const link = (path: string, target: string): ManifestEntry => ({
  path,
  type: "symlink",
  target,
  size: target.length,
  sha256: "0".repeat(64),
});

function conflict(code: string): Error {
  return Object.assign(new Error(code), { code });
}

function fakeRunner(remotes: RemoteManifest[], answers: (SyncResult | Error)[]) {
  const calls = { manifest: 0, sync: [] as string[] };
  const runner: SyncRunner = {
    async manifest() {
      const remote = remotes[Math.min(calls.manifest, remotes.length - 1)] as RemoteManifest;
      calls.manifest++;
      return remote;
    },
    async sync(_workdir, base, body) {
      calls.sync.push(base);
      const stream = typeof body === "function" ? body() : body;
      await new Response(stream).arrayBuffer();
      const answer = answers.shift();
      if (answer instanceof Error) throw answer;
      return answer as SyncResult;
    },
  };
  return { runner, calls };
}

describe("syncToRunner", () => {
  const local = [link("a", "x")];
  const ok = (entries: ManifestEntry[]): SyncResult => ({
    fingerprint: fingerprint(entries),
    written: entries.length,
    deleted: 0,
    removedUnsynced: 0,
    bytesIn: 1,
  });

  test("an unchanged tree sends nothing", async () => {
    const { runner, calls } = fakeRunner([{ fingerprint: fingerprint(local), entries: local }], []);
    const outcome = await syncToRunner({
      runner,
      workdir: "/w",
      snapshot: symlinkSnapshot(local),
      compression: { encoding: "identity" },
    });
    expect(outcome).toMatchObject({ uploads: 0, manifestReads: 1, result: undefined });
    expect(calls.sync).toEqual([]);
  });

  test("a moved base is re-read and retried", async () => {
    const other = [link("b", "y")];
    const { runner, calls } = fakeRunner(
      [{ fingerprint: fingerprint(other), entries: other }],
      [conflict("base_mismatch"), ok(local)],
    );
    const outcome = await syncToRunner({
      runner,
      workdir: "/w",
      snapshot: symlinkSnapshot(local),
      compression: { encoding: "gzip" },
      remembered: { fingerprint: "stale", entries: [] },
    });
    expect(calls.sync).toEqual(["stale", fingerprint(other)]);
    expect(outcome).toMatchObject({ uploads: 2, manifestReads: 1 });
    expect(outcome.plan.deletes).toEqual(["b"]);
    expect(outcome.remote).toEqual({ fingerprint: fingerprint(local), entries: local });
    expect(outcome.counters.entries).toBe(2);
  });

  test("gives up after two resyncs with exit 6 naming the path that keeps changing", async () => {
    const remote = [link("a", "remote-version")];
    const { runner, calls } = fakeRunner(
      [{ fingerprint: fingerprint(remote), entries: remote }],
      [conflict("base_mismatch"), conflict("base_mismatch"), conflict("base_mismatch")],
    );
    const error = await syncToRunner({
      runner,
      workdir: "/w",
      snapshot: symlinkSnapshot(local),
      compression: { encoding: "identity" },
    }).catch((e: unknown) => e);
    expect(calls.sync).toHaveLength(3);
    expect(error).toBeInstanceOf(CrabboxError);
    expect((error as CrabboxError).exitCode).toBe(ExitCode.sync);
    expect((error as CrabboxError).message).toBe(
      'sync did not settle after 3 attempts: "a" keeps changing remotely',
    );
  });

  test("an expect mismatch retakes the local snapshot; other errors pass through", async () => {
    const fresh = [link("a", "new")];
    const { runner } = fakeRunner(
      [{ fingerprint: "empty", entries: [] }],
      [conflict("expect_mismatch"), ok(fresh)],
    );
    const outcome = await syncToRunner({
      runner,
      workdir: "/w",
      snapshot: symlinkSnapshot(local),
      compression: { encoding: "identity" },
      resnapshot: async () => symlinkSnapshot(fresh),
    });
    expect(outcome.remote.entries).toEqual(fresh);
    const broken = fakeRunner([{ fingerprint: "empty", entries: [] }], [new Error("network down")]);
    await expect(
      syncToRunner({
        runner: broken.runner,
        workdir: "/w",
        snapshot: symlinkSnapshot(local),
        compression: { encoding: "identity" },
      }),
    ).rejects.toThrow("network down");
  });
});
