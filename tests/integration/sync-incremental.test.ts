/**
 * Incremental sync on a retained lease, end to end: the compiled binary against a real emulator
 * and real runners. What travels is measured where it travels — the emulator's `--log-json`
 * records every request with its bytes — and what arrived is checked by running commands in the
 * MicroVM, including one script run both locally and remotely whose outputs must be identical.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, renameSync, rmSync, statSync, symlinkSync, utimesSync } from "node:fs";
import { join } from "node:path";
import type { RequestRecord } from "../../src/emulator/log.ts";
import { startEmulator, type TestEmulator } from "../support/emulator.ts";
import {
  killChildren,
  ok,
  requestsDuring,
  type Sandbox,
  sandbox,
  setFaults,
} from "./provider-run-harness.ts";

setDefaultTimeout(60_000);

let emu: TestEmulator;
const boxes: { box: Sandbox; slug: string }[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true });
});
afterEach(async () => {
  killChildren();
  await setFaults(emu, []);
});
afterAll(async () => {
  killChildren();
  for (const { box, slug } of boxes) {
    await box.crabbox(["stop", slug]).catch(() => undefined);
    box.cleanup();
  }
  await emu?.stop();
});

/** A sandbox with a warm lease named `slug`. */
async function leased(slug: string): Promise<Sandbox> {
  const b = sandbox(emu);
  boxes.push({ box: b, slug });
  await ok(b, ["warmup", "--slug", slug]);
  return b;
}

/** The records of requests made while `fn` ran (the CLI has exited, so its last record is written). */
function during<T>(fn: () => Promise<T>): Promise<{ value: T; records: RequestRecord[] }> {
  return requestsDuring(emu, fn, (r) => r.path === "/v1/exec" && r.status === 200);
}

function timing(stderr: string): Record<string, unknown> {
  const line = stderr.split("\n").find((l) => l.startsWith('{"provider"'));
  if (!line) throw new Error(`no timing line in:\n${stderr}`);
  return JSON.parse(line) as Record<string, unknown>;
}

const shape = (records: RequestRecord[]) =>
  records.map((r) => `${r.op ?? r.method} ${r.op ? "" : r.path} ${r.status}`.replace(/ +/g, " "));

/** Every path under the checkout (but .git): type, mode, link target, content hash — sorted. */
const DESCRIBE = `find . -mindepth 1 -name .git -prune -o -print | LC_ALL=C sort | while IFS= read -r p; do
  if [ -L "$p" ]; then echo "L $p -> $(readlink "$p")";
  elif [ -d "$p" ]; then echo "D $p";
  else echo "F $p $(stat -c %a "$p") $(sha256sum < "$p" | cut -c1-16)"; fi; done`;

describe("incremental sync on a retained lease", () => {
  test("edit one file: only that file travels (bytes from the emulator's log), and it arrives", async () => {
    const b = await leased("inc-edit");
    for (let i = 0; i < 120; i++)
      b.write(`src/m${i % 7}/file${i}.ts`, `${randomBytes(1200).toString("hex")}\n`);
    const first = await during(() => ok(b, ["run", "--id", "inc-edit", "--sync-only"]));
    const fullBytes = first.records.find((r) => r.path === "/v1/sync")?.bytesIn ?? 0;
    expect(fullBytes).toBeGreaterThan(120 * 1200);

    const edited = `${randomBytes(1200).toString("hex")}\nexport const edited = true;\n`;
    b.write("src/m3/file3.ts", edited);
    const second = await during(() =>
      ok(b, ["run", "--id", "inc-edit", "--timing-json", "--", "sha256sum", "src/m3/file3.ts"]),
    );
    const sync = second.records.filter((r) => r.path === "/v1/sync");
    expect(sync.length).toBe(1);
    const compressed = Bun.zstdCompressSync(Buffer.from(edited), { level: 3 }).length;
    expect(sync[0]?.bytesIn).toBeLessThanOrEqual(compressed + 4096);
    const t = timing(second.value.stderr);
    expect(t.syncFilesWritten).toBe(1);
    expect(t.syncFilesDeleted).toBeUndefined();
    expect(t.syncBytesSent).toBe(sync[0]?.bytesIn);
    const phases = t.syncPhases as { name: string; bytes?: number; changed?: number; deleted?: number }[];
    expect(phases.map((p) => p.name)).toEqual([
      "manifest",
      "hash",
      "diff",
      "upload",
      "apply",
      "aws_lambda_microvm_sync",
    ]);
    expect(phases.find((p) => p.name === "upload")?.bytes).toBe(sync[0]?.bytesIn);
    expect(phases.find((p) => p.name === "apply")).toMatchObject({ changed: 1, deleted: 0 });
    const local = execFileSync("sha256sum", ["src/m3/file3.ts"], { cwd: b.repo, encoding: "utf8" });
    expect(second.value.stdout).toBe(local);
  });

  test("delete locally → gone remotely; a file the MicroVM made in an unsynced path survives", async () => {
    const b = await leased("inc-delete");
    b.write("keep.txt", "keep\n");
    b.write("old/gone.txt", "bye\n");
    await ok(b, [
      "run",
      "--id",
      "inc-delete",
      "--",
      "sh",
      "-c",
      "mkdir -p build && echo artifact > build/out.txt",
    ]);
    rmSync(join(b.repo, "old"), { recursive: true });
    const result = await ok(b, [
      "run",
      "--id",
      "inc-delete",
      "--timing-json",
      "--",
      "sh",
      "-c",
      "test -e old/gone.txt && echo present || echo gone; test -d old && echo dir-left || echo dir-gone; cat build/out.txt keep.txt",
    ]);
    expect(result.stdout).toBe("gone\ndir-gone\nartifact\nkeep\n");
    expect(timing(result.stderr)).toMatchObject({ syncFilesDeleted: 1 });
    expect(timing(result.stderr).syncFilesWritten).toBeUndefined();
  });

  test("a tracked file rewritten in the MicroVM: the next unchanged run gets 409, resyncs and restores it", async () => {
    const b = await leased("inc-409");
    b.write("a.txt", "local truth\n");
    b.write("b.txt", "untouched\n");
    await ok(b, ["run", "--id", "inc-409", "--", "sh", "-c", "echo remote-edit > a.txt"]);
    const rerun = await during(() => ok(b, ["run", "--id", "inc-409", "--", "cat", "a.txt", "b.txt"]));
    expect(rerun.value.stdout).toBe("local truth\nuntouched\n");
    expect(rerun.value.stderr).toContain("changed remotely since the last sync; resyncing");
    expect(shape(rerun.records)).toEqual([
      "POST /v1/exec 409",
      "GET /v1/sync/manifest 200",
      "POST /v1/sync 200",
      "POST /v1/exec 200",
    ]);
    const sync = rerun.records.find((r) => r.path === "/v1/sync");
    expect(sync?.bytesIn).toBeLessThan(1024);
  });

  test("rename, mode change, symlink retarget, file↔directory swap and a 200-character path converge", async () => {
    const b = await leased("inc-shapes");
    b.write("a.txt", "alpha\n");
    b.write("tool.sh", "#!/bin/sh\necho tool\n");
    b.write("swap-to-dir", "I am a file\n");
    b.write("swap-to-file/inner.txt", "I am in a directory\n");
    symlinkSync("a.txt", join(b.repo, "link"));
    await ok(b, ["run", "--id", "inc-shapes", "--sync-only"]);

    renameSync(join(b.repo, "a.txt"), join(b.repo, "renamed.txt"));
    chmodSync(join(b.repo, "tool.sh"), 0o755);
    rmSync(join(b.repo, "link"));
    symlinkSync("renamed.txt", join(b.repo, "link"));
    rmSync(join(b.repo, "swap-to-dir"));
    b.write("swap-to-dir/now.txt", "now a directory\n");
    rmSync(join(b.repo, "swap-to-file"), { recursive: true });
    b.write("swap-to-file", "now a file\n");
    const long = `${"deep/".repeat(10)}${"n".repeat(200 - 50 - 4)}.txt`;
    expect(long.length).toBe(200);
    b.write(long, "far down\n");

    const result = await ok(b, ["run", "--id", "inc-shapes", "--timing-json", "--", "sh", "-c", DESCRIBE]);
    const local = execFileSync("sh", ["-c", DESCRIBE], { cwd: b.repo, encoding: "utf8" });
    expect(result.stdout).toBe(local);
    expect(local).toContain("F ./tool.sh 755");
    expect(local).toContain("L ./link -> renamed.txt");
    expect(local).toContain(`F ./${long} `);
    const plan = JSON.parse((await ok(b, ["sync-plan", "--id", "inc-shapes", "--json"])).stdout);
    expect(plan).toMatchObject({ against: "lease", send: { files: 0, deletes: 0 } });
    expect(plan.lease.remembered).toBe("current");
  });

  test("a file rewritten with the same size within the same second arrives", async () => {
    const b = await leased("inc-racy");
    b.write("same.txt", "aaaa\n");
    await ok(b, ["run", "--id", "inc-racy", "--sync-only"]);
    const before = statSync(join(b.repo, "same.txt"));
    b.write("same.txt", "bbbb\n");
    // Same size, and the very same mtime: only content (and ctime) tell the versions apart.
    utimesSync(join(b.repo, "same.txt"), before.atime, before.mtime);
    const result = await ok(b, ["run", "--id", "inc-racy", "--", "cat", "same.txt"]);
    expect(result.stdout).toBe("bbbb\n");
  });

  test("an upload cut mid-stream is recovered in the same run, and leaves the next sync correct", async () => {
    const b = await leased("inc-cut");
    b.write("small.txt", "small\n");
    await ok(b, ["run", "--id", "inc-cut", "--sync-only"]);
    b.write("big.bin", randomBytes(300_000).toString("base64"));
    await setFaults(emu, ["cut-upload-after=50000@/v1/sync,count=1"]);
    const cut = await during(() => ok(b, ["run", "--id", "inc-cut", "--", "sha256sum", "big.bin"]));
    const local = execFileSync("sha256sum", ["big.bin"], { cwd: b.repo, encoding: "utf8" });
    expect(cut.value.stdout).toBe(local);
    expect(cut.value.stderr).toContain("the data plane failed");
    const syncs = cut.records.filter((r) => r.path === "/v1/sync");
    expect(syncs.map((r) => r.status)).toEqual([502, 200]);
    // After the cut, AWS is asked once and the runner probed before the retry.
    expect(shape(cut.records).slice(1, 3)).toEqual(["GetMicrovm 200", "GET /health 200"]);

    // The response to a sync the runner did apply is lost: the next run still converges.
    b.write("small.txt", "small, edited\n");
    await setFaults(emu, ["cut-stream-after=0@/v1/sync,count=1"]);
    const lost = await ok(b, ["run", "--id", "inc-cut", "--", "cat", "small.txt"]);
    expect(lost.stdout).toBe("small, edited\n");
    await setFaults(emu, []);
    const after = await during(() => ok(b, ["run", "--id", "inc-cut", "--", "sha256sum", "big.bin"]));
    expect(after.value.stdout).toBe(local);
    expect(shape(after.records)).toEqual(["POST /v1/exec 200"]);
  });
});
