/**
 * MicroVM lifecycle under `--time-scale 0.02` (60 API seconds = 1.2 real seconds): idle suspension
 * and auto-resume, strict idle accounting, autoResume off, suspended and maximum durations, and a
 * suspend that really freezes the VM's processes.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  GetMicrovmCommand,
  ResumeMicrovmCommand,
  SuspendMicrovmCommand,
  TerminateMicrovmCommand,
} from "@aws-sdk/client-lambda-microvms";
import {
  dataFetch,
  execIn,
  runMicrovm,
  startEmulator,
  type TestEmulator,
  waitForState,
} from "../support/emulator.ts";

// Real processes and scaled lifecycles: more than bun test's 5 s default when run directly.
setDefaultTimeout(30_000);

let emu: TestEmulator;

beforeAll(async () => {
  emu = await startEmulator({ isolation: "none", timeScale: 0.02, testApi: true });
});
afterAll(async () => {
  expect(await emu.stop()).toBe(0);
  expect(emu.survivors()).toEqual([]);
});

const idle = (suspended: number, autoResume: boolean) => ({
  idlePolicy: {
    maxIdleDurationSeconds: 60,
    suspendedDurationSeconds: suspended,
    autoResumeEnabled: autoResume,
  },
});

const hooksOf = (id: string) =>
  emu
    .records()
    .filter((record) => record.plane === "hook" && record.microvmId === id)
    .map((record) => `${record.op}:${record.status}`);

describe("idle policy", () => {
  test("an idle VM suspends; the next request resumes it and is delivered", async () => {
    const vm = await runMicrovm(emu, idle(600, true));
    await waitForState(emu, vm.microvmId, "SUSPENDED", 10_000);
    const response = await dataFetch(emu, vm, "/health");
    expect(response.status).toBe(200);
    expect((await emu.client().send(new GetMicrovmCommand({ microvmIdentifier: vm.microvmId }))).state).toBe(
      "RUNNING",
    );
    expect(hooksOf(vm.microvmId)).toEqual(["run:200", "suspend:200", "resume:200"]);
    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: vm.microvmId }));
  });

  test("requests keep a VM awake; an open stream alone does not", async () => {
    const vm = await runMicrovm(emu, idle(600, true));
    // 3 s of requests every 0.3 s: more than twice the scaled 1.2 s idle limit.
    for (let i = 0; i < 10; i++) {
      expect((await dataFetch(emu, vm, "/health")).status).toBe(200);
      await Bun.sleep(300);
    }
    expect((await emu.client().send(new GetMicrovmCommand({ microvmIdentifier: vm.microvmId }))).state).toBe(
      "RUNNING",
    );
    // Strict accounting (as measured on AWS): a long exec stream is no traffic after it began.
    let streamDone = false;
    const running = execIn(emu, vm, "sleep 30").finally(() => {
      streamDone = true;
    });
    await waitForState(emu, vm.microvmId, "SUSPENDED", 10_000);
    expect(streamDone).toBe(false);
    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    await waitForState(emu, vm.microvmId, "TERMINATED");
    await running.catch(() => undefined);
  });

  test("with autoResume off a suspended VM answers 502 until ResumeMicrovm", async () => {
    const vm = await runMicrovm(emu, idle(600, false));
    await waitForState(emu, vm.microvmId, "SUSPENDED", 10_000);
    expect((await dataFetch(emu, vm, "/health")).status).toBe(502);
    expect((await emu.client().send(new GetMicrovmCommand({ microvmIdentifier: vm.microvmId }))).state).toBe(
      "SUSPENDED",
    );
    await emu.client().send(new ResumeMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    await waitForState(emu, vm.microvmId, "RUNNING");
    expect((await dataFetch(emu, vm, "/health")).status).toBe(200);
    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: vm.microvmId }));
  });

  test("a VM suspended longer than suspendedDurationSeconds is terminated", async () => {
    const vm = await runMicrovm(emu, idle(60, true));
    await waitForState(emu, vm.microvmId, "SUSPENDED", 10_000);
    await waitForState(emu, vm.microvmId, "TERMINATED", 10_000);
    const view = await emu.client().send(new GetMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    expect(view.stateReason).toContain("suspended duration of 60 seconds");
    expect((await dataFetch(emu, vm, "/health")).status).toBe(502);
  });
});

describe("maximum duration and freezing", () => {
  test("maximumDurationInSeconds terminates the VM, calling /terminate", async () => {
    const vm = await runMicrovm(emu, { maximumDurationInSeconds: 60 });
    await waitForState(emu, vm.microvmId, "TERMINATED", 10_000);
    const view = await emu.client().send(new GetMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    expect(view.stateReason).toContain("maximum duration of 60 seconds");
    expect(hooksOf(vm.microvmId)).toEqual(["run:200", "terminate:200"]);
  });

  test("suspend freezes a background writer in the VM and resume restarts it", async () => {
    const vm = await runMicrovm(emu);
    // The writer leaves the exec's session (setsid), as daemons do; the VM marker still finds it.
    const started = await execIn(
      emu,
      vm,
      "setsid sh -c 'while :; do echo x >> tick; sleep 0.05; done' </dev/null >/dev/null 2>&1 &",
    );
    expect(started.exit?.exitCode).toBe(0);
    const inspect = (await (await fetch(`${emu.url}/_emulator/microvms/${vm.microvmId}`)).json()) as {
      workspace: string;
    };
    const tick = join(inspect.workspace, "crabbox", "tick");
    const size = () => (existsSync(tick) ? statSync(tick).size : 0);
    const grows = async () => {
      const before = size();
      await Bun.sleep(600);
      return size() > before;
    };
    expect(await grows()).toBe(true);

    await emu.client().send(new SuspendMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    await waitForState(emu, vm.microvmId, "SUSPENDED");
    await Bun.sleep(100);
    expect(await grows()).toBe(false);

    await emu.client().send(new ResumeMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    await waitForState(emu, vm.microvmId, "RUNNING");
    expect(await grows()).toBe(true);

    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    await waitForState(emu, vm.microvmId, "TERMINATED");
    // Terminate reaches the writer too, though it left the runner's process group.
    expect(emu.vmProcesses()).toEqual([]);
  });
});
