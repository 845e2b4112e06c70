/**
 * The operations commands under Deno (design card: Deno-compatible client): status, pause, resume,
 * list --remote, doctor and cleanup — including the owner check cleanup uses to find a run that
 * was killed — against a real emulator.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, startEmulator, type TestEmulator } from "../support/emulator.ts";
import { killChildren, liveMicrovms, type Sandbox, sandbox } from "./provider-run-harness.ts";

// Every Deno command is a cold start of the TypeScript sources.
setDefaultTimeout(90_000);

const deno = join(repoRoot, "node_modules", ".bin", "deno");
const command = [deno, "run", "-A", join(repoRoot, "src", "cli.ts")];
// Deno's cache goes to a temp dir of this run: inside the repository, biome would lint it.
const denoEnv = { DENO_NO_UPDATE_CHECK: "1", DENO_DIR: mkdtempSync(join(tmpdir(), "crabbox-deno-ops-")) };

let emu: TestEmulator;
let box: Sandbox;

beforeAll(async () => {
  if (!existsSync(deno)) throw new Error(`${deno} is missing: run npm ci`);
  emu = await startEmulator({ binary: "dist", timeScale: 0.05 });
  box = sandbox(emu);
  box.write("proof.txt", "proof");
});

afterAll(async () => {
  killChildren();
  box?.cleanup();
  await emu?.stop();
  rmSync(denoEnv.DENO_DIR, { recursive: true, force: true });
});

async function viaDeno(args: string[]) {
  const result = await box.start(args, { command, env: denoEnv }).exited;
  if (result.code !== 0)
    throw new Error(`deno crabbox ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
  return result;
}

test("status, pause, resume, list --remote, doctor and cleanup of a killed run, all under Deno", async () => {
  // The leases come from the compiled binary; Deno only operates on them.
  const warm = await box.crabbox(["warmup", "--slug", "deno-ops"]);
  expect(warm.code).toBe(0);
  const running = box.start(["run", "--", "sh", "-c", "echo started; sleep 120"]);
  await running.waitFor("started");
  process.kill(-(running.child.pid as number), "SIGKILL");
  await running.exited;

  const status = JSON.parse((await viaDeno(["status", "deno-ops", "--wait", "--json"])).stdout);
  expect(status).toMatchObject({ slug: "deno-ops", state: "running", ready: true });
  expect((await viaDeno(["pause", "deno-ops"])).stderr).toContain("suspended lease=");
  expect(JSON.parse((await viaDeno(["status", "deno-ops", "--json"])).stdout).state).toBe("suspended");
  expect((await viaDeno(["resume", "deno-ops"])).stderr).toContain("running lease=");

  const list = JSON.parse((await viaDeno(["list", "--remote", "--json"])).stdout) as { name: string }[];
  expect(list.map((entry) => entry.name)).toContain("deno-ops");
  expect(list).toHaveLength(2);
  const doctor = JSON.parse((await viaDeno(["doctor", "--json"])).stdout);
  expect(doctor.ok).toBe(true);
  expect(JSON.stringify(doctor)).toContain('"abandoned":"1"');

  const cleanup = await viaDeno(["cleanup"]);
  expect(cleanup.stderr).toMatch(/reason=abandoned owner pid \d+ gone/);
  expect(cleanup.stderr).toContain("cleanup terminated 1, kept 1");
  await viaDeno(["stop", "deno-ops"]);
  expect(box.claims()).toEqual([]);
  expect(await liveMicrovms(emu)).toEqual([]);
});
