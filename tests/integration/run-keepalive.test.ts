/**
 * Keep-alive under the emulator's strict idle accounting (only inbound requests count, an open
 * stream does not), on a scaled clock: with `--time-scale 0.03` and `--idle-timeout 60s` a MicroVM
 * with no inbound request for 1.8 s is suspended. A command quiet for 3 scaled minutes (5.4 s)
 * stays RUNNING because the CLI probes `/health` every idle/4; with keep-alive switched off by the
 * emulator-only test knob, the same command's MicroVM is suspended mid-command.
 */
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { startEmulator, type TestEmulator } from "../support/emulator.ts";
import { killChildren, microvmIdOf, type Sandbox, sandbox } from "./provider-run-harness.ts";
import { expectNoLiveMicrovms, expectNoVmProcesses } from "./run-support.ts";

setDefaultTimeout(60_000);

const SCALE = 0.03;
/** Three scaled minutes, in real seconds. */
const QUIET_SECONDS = 180 * SCALE;

let emu: TestEmulator;
const boxes: Sandbox[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", timeScale: SCALE, testApi: true });
});
afterEach(() => killChildren());
afterAll(async () => {
  killChildren();
  for (const box of boxes) box.cleanup();
  await emu?.stop();
});

function box(): Sandbox {
  const made = sandbox(emu);
  boxes.push(made);
  return made;
}

const scaled = { CRABBOX_TIME_SCALE: String(SCALE) };

function hooks(microvmId: string, hook: "suspend" | "resume") {
  return emu.records().filter((r) => r.plane === "hook" && r.op === hook && r.microvmId === microvmId);
}

async function state(microvmId: string): Promise<string> {
  const response = await fetch(`${emu.url}/_emulator/microvms/${microvmId}`);
  return ((await response.json()) as { state: string }).state;
}

test("a command quiet for 3 scaled minutes stays RUNNING: /health keeps the MicroVM awake", async () => {
  const b = box();
  const result = await b.crabbox(
    [
      "run",
      "--no-sync",
      "--keep",
      "--idle-timeout",
      "60s",
      "--",
      "sh",
      "-c",
      `sleep ${QUIET_SECONDS}; echo done`,
    ],
    { env: scaled },
  );
  expect(result.code).toBe(0);
  expect(result.stdout).toBe("done\n");
  const microvmId = microvmIdOf(result.stderr);
  expect(hooks(microvmId, "suspend")).toEqual([]);
  expect(await state(microvmId)).toBe("RUNNING");
  // idle/4 = 15 s scaled = 0.45 s: about a dozen probes over 5.4 s, counted loosely for a busy CI.
  const probes = emu
    .records()
    .filter((r) => r.plane === "data" && r.microvmId === microvmId && r.path === "/health");
  expect(probes.length).toBeGreaterThanOrEqual(5);
  expect((await b.crabbox(["stop", b.claims()[0]?.leaseID as string], { env: scaled })).code).toBe(0);
  await expectNoLiveMicrovms(emu);
});

test("with keep-alive disabled (test knob) the same MicroVM is suspended mid-command", async () => {
  const b = box();
  const run = b.start(
    [
      "run",
      "--no-sync",
      "--idle-timeout",
      "60s",
      "--",
      "sh",
      "-c",
      `echo started; sleep ${QUIET_SECONDS}; echo done`,
    ],
    { env: { ...scaled, CRABBOX_TEST_DISABLE_KEEPALIVE: "1" } },
  );
  await run.waitFor("started");
  const microvmId = microvmIdOf(run.stderr());
  for (let i = 0; i < 400 && hooks(microvmId, "suspend").length === 0; i++) await Bun.sleep(25);
  expect(hooks(microvmId, "suspend").length).toBe(1);
  // Frozen: the command cannot finish. Ctrl-C's signal request resumes the MicroVM (auto-resume)
  // and the run ends as an interrupted one, with nothing left behind.
  process.kill(run.child.pid as number, "SIGINT");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stdout).toBe("started\n");
  expect(hooks(microvmId, "resume").length).toBeGreaterThanOrEqual(1);
  await expectNoLiveMicrovms(emu);
  await expectNoVmProcesses(emu);
});
