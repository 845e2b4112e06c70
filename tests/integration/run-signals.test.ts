/**
 * Interrupting `crabbox run` (compiled binary, real emulator): Ctrl-C while provisioning, while
 * syncing, and while a command that traps SIGINT prints; SIGTERM and SIGHUP forwarded as
 * themselves; a second Ctrl-C that exits at once and names the exact stop command. Each ends with
 * no running MicroVM (emulator log and API) and no process of any VM left, and the
 * `--json-summary` validates against its schema with status `canceled`.
 */
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { binary } from "./cli-harness.ts";
import {
  leaseIdOf,
  microvmIdOf,
  providerSuite,
  type Running,
  type Sandbox,
  setFaults,
} from "./provider-run-harness.ts";
import {
  expectNoLiveMicrovms,
  expectNoVmProcesses,
  expectTerminatedInLog,
  readSummary,
} from "./run-support.ts";

const { emu, box } = providerSuite({ binary: "dist", testApi: true });

/** `run --no-sync --json-summary <summaryFile> <command…>`, once the command has said `started`. */
async function startedRun(b: Sandbox, summaryFile: string, command: string[]): Promise<Running> {
  const run = b.start(["run", "--no-sync", "--json-summary", summaryFile, ...command]);
  await run.waitFor("started");
  return run;
}

async function expectNothingLeft(microvmId: string): Promise<void> {
  await expectNoLiveMicrovms(emu());
  await expectNoVmProcesses(emu());
  expectTerminatedInLog(emu(), microvmId);
}

test("Ctrl-C while provisioning: the MicroVM is terminated, no claim, exit 130, summary canceled", async () => {
  const b = box();
  const summaryFile = join(b.root, "summary.json");
  await setFaults(emu(), ["slow-boot-ms=20000@RunMicrovm,count=1"]);
  const run = b.start(["run", "--no-sync", "--json-summary", summaryFile, "--", "true"]);
  await run.waitFor(/^provisioning /m);
  let microvmId = "";
  for (let i = 0; i < 200 && !microvmId; i++) {
    microvmId = String(b.claims()[0]?.cloudID ?? "");
    if (!microvmId) await Bun.sleep(20);
  }
  expect(microvmId).not.toBe("");
  process.kill(run.child.pid as number, "SIGINT");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stderr).toContain("error: interrupted");
  expect(b.claims()).toEqual([]);
  await expectNothingLeft(microvmId);
  expect(readSummary(summaryFile)).toMatchObject({
    status: "canceled",
    exitCode: 130,
    exitCodeSource: "crabbox",
    interrupt: "SIGINT",
    command: null,
  });
});

test("Ctrl-C while syncing: the upload stops, the MicroVM is terminated, exit 130", async () => {
  const b = box();
  const summaryFile = join(b.root, "summary.json");
  // Incompressible and large enough that the sync is still going when the signal lands.
  const fd = openSync(join(b.repo, "big.bin"), "w");
  for (let i = 0; i < 96; i++) writeSync(fd, randomBytes(1024 * 1024));
  closeSync(fd);
  const run = b.start(["run", "--force-sync-large", "--json-summary", summaryFile, "--", "true"]);
  await run.waitFor(/^provider=aws-lambda-microvm lease=\S+ microvm=\S+ workdir=/m);
  process.kill(run.child.pid as number, "SIGINT");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stderr).not.toContain("sync complete");
  expect(b.claims()).toEqual([]);
  await expectNothingLeft(microvmIdOf(result.stderr));
  const summary = readSummary(summaryFile);
  expect(summary).toMatchObject({ status: "canceled", exitCode: 130, sync: null, command: null });
  expect(summary.leaseId).toBe(leaseIdOf(result.stderr));
});

test("Ctrl-C reaches a command that traps SIGINT: its output arrives, then the MicroVM goes", async () => {
  const b = box();
  const summaryFile = join(b.root, "summary.json");
  const run = await startedRun(b, summaryFile, [
    "--shell",
    'trap "echo got-sigint; exit 9" INT; echo started; sleep 60 & wait',
  ]);
  process.kill(run.child.pid as number, "SIGINT");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stdout).toBe("started\ngot-sigint\n");
  expect(b.claims()).toEqual([]);
  await expectNothingLeft(microvmIdOf(result.stderr));
  expect(readSummary(summaryFile)).toMatchObject({
    status: "canceled",
    exitCode: 130,
    exitCodeSource: "crabbox",
    remoteExitCode: 9,
    interrupt: "SIGINT",
    leaseKept: false,
  });
});

test.each([
  ["SIGTERM", "got-term"],
  ["SIGHUP", "got-hup"],
] as const)("%s is forwarded as itself and ends the run like Ctrl-C", async (signal, said) => {
  const b = box();
  const summaryFile = join(b.root, "summary.json");
  const run = await startedRun(b, summaryFile, [
    "--",
    "sh",
    "-c",
    'trap "echo got-int; exit 2" INT; trap "echo got-term; exit 3" TERM; trap "echo got-hup; exit 4" HUP; echo started; sleep 60 & wait',
  ]);
  process.kill(run.child.pid as number, signal);
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stdout).toBe(`started\n${said}\n`);
  await expectNothingLeft(microvmIdOf(result.stderr));
  expect(readSummary(summaryFile)).toMatchObject({ status: "canceled", interrupt: signal });
});

test("a second Ctrl-C exits at once and prints the exact stop command, which leaves nothing running", async () => {
  const b = box();
  const summaryFile = join(b.root, "summary.json");
  const run = await startedRun(b, summaryFile, [
    "--",
    "sh",
    "-c",
    // Ignores the first SIGINT, so crabbox is still waiting out the grace when the second comes.
    'trap "echo got-sigint" INT; echo started; while :; do sleep 1; done',
  ]);
  process.kill(run.child.pid as number, "SIGINT");
  await run.waitFor("interrupt again to exit at once");
  process.kill(run.child.pid as number, "SIGINT");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stderr).toContain("error: SIGINT again: exiting now, without cleaning up");
  const leaseId = leaseIdOf(result.stderr);
  const microvmId = microvmIdOf(result.stderr);
  const line = result.stderr.split("\n").find((text) => text.startsWith("still alive: "));
  expect(line).toBe(
    `still alive: lease ${leaseId} (MicroVM ${microvmId}); stop it with: crabbox stop --provider aws-lambda-microvm ${leaseId}`,
  );
  // The summary is written even on a forced exit.
  expect(readSummary(summaryFile)).toMatchObject({ status: "canceled", exitCode: 130, interrupt: "SIGINT" });
  expect(b.claims().map((claim) => claim.leaseID)).toEqual([leaseId]);

  const printed = (line as string).split("stop it with: ")[1] as string;
  expect(printed.startsWith("crabbox ")).toBe(true);
  const stop = await b.crabbox(printed.slice("crabbox ".length).split(" "));
  expect(stop.code).toBe(0);
  expect(b.claims()).toEqual([]);
  await expectNothingLeft(microvmId);
  expect(binary).toBeTruthy();
});
