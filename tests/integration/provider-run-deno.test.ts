/**
 * The client path of `crabbox run` under Deno (design card: Deno-compatible): the AWS SDK, the
 * node:http data plane with its Host header, flock, sync and exec, against a real emulator.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, startEmulator, type TestEmulator } from "../support/emulator.ts";
import { killChildren, liveMicrovms, type Sandbox, sandbox } from "./provider-run-harness.ts";

// Each test drives several CLI processes and MicroVMs; bun's 5 s default is too tight under load.
setDefaultTimeout(60_000);

const deno = join(repoRoot, "node_modules", ".bin", "deno");
const command = [deno, "run", "-A", join(repoRoot, "src", "cli.ts")];
// Deno's cache goes to a temp dir of this run: inside the repository, biome would lint it.
const denoEnv = { DENO_NO_UPDATE_CHECK: "1", DENO_DIR: mkdtempSync(join(tmpdir(), "crabbox-deno-")) };

let emu: TestEmulator;
let b: Sandbox;

beforeAll(async () => {
  if (!existsSync(deno)) throw new Error(`${deno} is missing: run npm ci`);
  emu = await startEmulator({ binary: "dist" });
  b = sandbox(emu);
});
afterAll(async () => {
  killChildren();
  b?.cleanup();
  await emu?.stop();
  rmSync(denoEnv.DENO_DIR, { recursive: true, force: true });
});

test("deno run -A src/cli.ts run -- printf ok, and a remote exit code passes through", async () => {
  b.write("proof.txt", "deno-sync-proof");
  const ok = await b.start(["run", "--", "printf", "ok"], { command, env: denoEnv }).exited;
  expect(ok.stdout).toBe("ok");
  expect(ok.code).toBe(0);
  expect(ok.stderr).toContain("sync complete in");
  const seven = await b.start(["run", "--shell", "--", "cat proof.txt; exit 7"], { command, env: denoEnv })
    .exited;
  expect(seven.stdout).toBe("deno-sync-proof");
  expect(seven.code).toBe(7);
  expect(b.claims()).toEqual([]);
  expect(await liveMicrovms(emu)).toEqual([]);
});
