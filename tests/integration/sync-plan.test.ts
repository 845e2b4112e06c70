/**
 * `crabbox sync-plan`: what a run would send, described and never done. Without `--id` nothing
 * remote is touched (the emulator's log stays empty, no provider needs to be configured); with
 * `--id` it is the delta against that lease's workdir — one data-plane request — and how many files
 * the MicroVM holds that crabbox did not sync.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SyncPreview } from "../../src/sync/preview.ts";
import { repoRoot, startEmulator, type TestEmulator } from "../support/emulator.ts";
import { killChildren, ok, type Sandbox, sandbox } from "./provider-run-harness.ts";

setDefaultTimeout(60_000);

let emu: TestEmulator;
const boxes: Sandbox[] = [];
const deno = join(repoRoot, "node_modules", ".bin", "deno");
const denoDir = mkdtempSync(join(tmpdir(), "crabbox-deno-"));

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist" });
});
afterEach(() => killChildren());
afterAll(async () => {
  killChildren();
  for (const b of boxes) {
    await b.crabbox(["stop", "plan-lease"]).catch(() => undefined);
    b.cleanup();
  }
  rmSync(denoDir, { recursive: true, force: true });
  await emu?.stop();
});

function box(): Sandbox {
  const b = sandbox(emu);
  boxes.push(b);
  return b;
}

/** A checkout with something of every kind of exclusion. */
function checkout(b: Sandbox): void {
  b.write(".gitignore", "node_modules/\n*.log\n");
  b.write("src/a.ts", "export const a = 1;\n");
  b.write("src/b.ts", "export const b = 2;\n");
  b.write("docs/guide.md", "# guide\n");
  b.write("big/blob.bin", "x".repeat(5000));
  b.write("node_modules/dep/index.js", "ignored by git\n");
  b.write("debug.log", "ignored by git\n");
  b.write(".crabboxignore", "secret/\n");
  b.write("secret/key.txt", "never synced\n");
  b.write("crabbox.yaml", "sync:\n  exclude: [fixtures]\n");
  b.write("fixtures/huge.json", "{}\n");
  b.write("coverage/lcov.info", "built-in exclude\n");
}

describe("crabbox sync-plan", () => {
  test("without --id: counts, bytes, top dirs and every exclusion with its reason; nothing remote is touched", async () => {
    const b = box();
    checkout(b);
    const before = emu.records().length;
    // No provider at all: the plan needs git and the files, nothing else.
    const env = { CRABBOX_PROVIDER: "", CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: "" };
    const json = await ok(b, ["sync-plan", "--json"], env);
    const plan = JSON.parse(json.stdout) as SyncPreview;
    expect(plan.against).toBe("empty-workdir");
    expect(plan.lease).toBeUndefined();
    // .gitignore, .crabboxignore, crabbox.yaml, src/a.ts, src/b.ts, docs/guide.md, big/blob.bin
    expect(plan.files).toBe(7);
    expect(plan.send).toMatchObject({ files: 7, deletes: 0, unchanged: 0 });
    expect(plan.send.topDirs[0]).toEqual({ dir: "big", files: 1, bytes: 5000 });
    const reasons = Object.fromEntries(plan.excluded.map((e) => [e.reason, e]));
    expect(reasons.crabboxignore).toMatchObject({ count: 1, examples: ["secret/key.txt"] });
    expect(reasons.config).toMatchObject({ count: 1, examples: ["fixtures/huge.json"] });
    expect(reasons.builtin).toMatchObject({ count: 1, examples: ["coverage/lcov.info"] });
    expect(reasons.gitignore?.examples.sort()).toEqual(["debug.log", "node_modules/"]);
    expect(plan.compression).toBe("zstd:3");
    expect(plan.fingerprint).toMatch(/^[0-9a-f]{64}$/);

    const text = await ok(b, ["sync-plan"], env);
    expect(text.stdout).toContain("sync candidate: 7 files");
    expect(text.stdout).toContain("against an empty workdir");
    expect(text.stdout).toContain("excluded crabboxignore: 1: secret/key.txt");
    expect(text.stdout).toContain("top dirs: big:");
    expect(emu.records().length).toBe(before);
    expect(existsSync(join(b.stateDir, "claims"))).toBe(false);
  });

  test("with --id: the delta against the lease, its unsynced remote files; one request", async () => {
    const b = box();
    checkout(b);
    await ok(b, ["warmup", "--slug", "plan-lease"]);
    await ok(b, [
      "run",
      "--id",
      "plan-lease",
      "--",
      "sh",
      "-c",
      "mkdir -p out && echo 1 > out/x && echo 22 > out/y",
    ]);
    b.write("src/a.ts", "export const a = 'changed';\n");
    rmSync(join(b.repo, "docs"), { recursive: true });
    const before = emu.records().length;
    const plan = JSON.parse(
      (await ok(b, ["sync-plan", "--id", "plan-lease", "--json"])).stdout,
    ) as SyncPreview;
    const made = emu.records().slice(before);
    expect(made.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /v1/sync/manifest"]);
    expect(plan.against).toBe("lease");
    expect(plan.send).toMatchObject({ files: 1, deletes: 1, unchanged: 5 });
    expect(plan.lease).toMatchObject({
      slug: "plan-lease",
      remembered: "current",
      unsynced: { count: 2, bytes: 5 },
    });
    const text = (await ok(b, ["sync-plan", "--id", "plan-lease"])).stdout;
    expect(text).toContain("send: 1 file");
    expect(text).toContain("delete 1 path");
    expect(text).toContain("remote unsynced: 2 files, 5 B");
  });

  test("under Deno it says the same", async () => {
    const b = box();
    checkout(b);
    writeFileSync(join(b.repo, "deno-only.txt"), "d\n");
    const env = { DENO_NO_UPDATE_CHECK: "1", DENO_DIR: denoDir, CRABBOX_PROVIDER: "" };
    const viaDeno = await b.start(["sync-plan", "--json"], {
      command: [deno, "run", "-A", join(repoRoot, "src", "cli.ts")],
      env,
    }).exited;
    expect(viaDeno.code).toBe(0);
    const compiled = await ok(b, ["sync-plan", "--json"], { CRABBOX_PROVIDER: "" });
    const pick = (p: SyncPreview) => ({
      files: p.files,
      bytes: p.bytes,
      send: p.send,
      fingerprint: p.fingerprint,
    });
    expect(pick(JSON.parse(viaDeno.stdout))).toEqual(pick(JSON.parse(compiled.stdout)));
  });
});
