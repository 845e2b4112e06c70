/**
 * Interruptions of `crabbox run` (compiled binary, real emulator): Ctrl-C or SIGTERM while the
 * MicroVM is still provisioning or while the command runs ends with exit 130 and no running
 * MicroVM; `kill -9` leaves a claim that `crabbox cleanup` recognises as abandoned and terminates.
 */
import { expect, test } from "bun:test";
import { liveMicrovms, providerSuite, setFaults } from "./provider-run-harness.ts";

const { emu, box } = providerSuite({ binary: "dist", testApi: true });

/** Polls until no MicroVM is live (terminations are asynchronous on AWS too). */
async function expectNoLiveMicrovms(): Promise<void> {
  for (let i = 0; i < 100 && (await liveMicrovms(emu())).length > 0; i++) await Bun.sleep(50);
  expect(await liveMicrovms(emu())).toEqual([]);
}

/** Polls until the VM's processes (runner and whatever it started) are gone. */
async function expectNoVmProcesses(): Promise<void> {
  for (let i = 0; i < 100 && emu().vmProcesses().length > 0; i++) await Bun.sleep(50);
  expect(emu().vmProcesses()).toEqual([]);
}

test("Ctrl-C while the MicroVM is provisioning: rolled back, exit 130, no claim", async () => {
  const b = box();
  await setFaults(emu(), ["slow-boot-ms=20000@RunMicrovm,count=1"]);
  const run = b.start(["run", "--no-sync", "--", "true"]);
  await run.waitFor(/^provisioning /m);
  // Wait until the claim has its MicroVM id: the interesting window is "created, not ready".
  for (let i = 0; i < 100 && !b.claims().some((claim) => claim.cloudID); i++) await Bun.sleep(20);
  expect(b.claims()[0]?.state).toBe("provisioning");
  process.kill(run.child.pid as number, "SIGINT");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stderr).toContain("error: interrupted");
  expect(result.stderr).not.toContain("\nleased ");
  expect(b.claims()).toEqual([]);
  await expectNoLiveMicrovms();
});

test("Ctrl-C during the command reaches the remote process, terminates the one-shot MicroVM, exit 130", async () => {
  const b = box();
  b.write("x.txt", "x");
  const run = b.start([
    "run",
    "--timing-json",
    "--",
    "sh",
    "-c",
    'trap "echo got-sigint; exit 9" INT; echo started; sleep 60 & wait',
  ]);
  await run.waitFor("started");
  process.kill(run.child.pid as number, "SIGINT");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(result.stdout).toBe("started\ngot-sigint\n");
  const timing = JSON.parse(result.stderr.split("\n").find((line) => line.startsWith("{")) as string);
  expect(timing).toMatchObject({ exitCode: 130, runStatus: "canceled", errorKind: "canceled" });
  expect(b.claims()).toEqual([]);
  await expectNoLiveMicrovms();
  await expectNoVmProcesses();
});

test("SIGTERM behaves like Ctrl-C", async () => {
  const b = box();
  const run = b.start(["run", "--no-sync", "--", "sh", "-c", "echo started; sleep 60"]);
  await run.waitFor("started");
  process.kill(run.child.pid as number, "SIGTERM");
  const result = await run.exited;
  expect(result.code).toBe(130);
  expect(b.claims()).toEqual([]);
  await expectNoLiveMicrovms();
});

test("Ctrl-C on a retained lease stops the remote command but keeps the lease", async () => {
  const b = box();
  expect((await b.crabbox(["warmup", "--slug", "kept"])).code).toBe(0);
  const run = b.start(["run", "--id", "kept", "--no-sync", "--", "sh", "-c", "echo started; sleep 60"]);
  await run.waitFor("started");
  process.kill(run.child.pid as number, "SIGINT");
  expect((await run.exited).code).toBe(130);
  const after = await b.crabbox([
    "run",
    "--id",
    "kept",
    "--no-sync",
    "--",
    "sh",
    "-c",
    "pgrep -x sleep || echo no-sleep",
  ]);
  expect(after.stdout).toContain("no-sleep");
  expect((await b.crabbox(["stop", "kept"])).code).toBe(0);
  await expectNoLiveMicrovms();
});

test("kill -9 mid-run leaves an abandoned claim; cleanup terminates its MicroVM", async () => {
  const b = box();
  const run = b.start(["run", "--no-sync", "--", "sh", "-c", "echo started; sleep 60"]);
  await run.waitFor("started");
  process.kill(-(run.child.pid as number), "SIGKILL");
  await run.exited;
  const [claim] = b.claims() as { cloudID: string; leaseID: string }[];
  expect(claim?.cloudID).toBeTruthy();
  expect((await liveMicrovms(emu())).map((vm) => vm.microvmId)).toContain(claim?.cloudID as string);
  const cleanup = await b.crabbox(["cleanup"]);
  expect(cleanup.code).toBe(0);
  expect(cleanup.stderr).toContain(`lease=${claim?.leaseID}`);
  expect(b.claims()).toEqual([]);
  await expectNoLiveMicrovms();
});
