/**
 * The fast half of the fault suite (the slow half is tests/reliability/, `npm run test:reliability`):
 * the compiled binary against the emulator's control- and data-plane faults. Each scenario ends
 * with the leak check — no MicroVM but the kept ones, no VM or CLI process, nothing in the CLI's
 * TMPDIR, no stale lock, every claim valid, no stray token — and the expected exit code.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { assertNoLeaks, type Box, box, printLeakTable } from "../reliability/support.ts";
import { startEmulator, type TestEmulator } from "../support/emulator.ts";
import { killChildren, leaseIdOf, microvmIdOf, setFaults } from "./provider-run-harness.ts";

setDefaultTimeout(60_000);

let emu: TestEmulator;
const boxes: Box[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true });
});
afterEach(async () => {
  killChildren();
  await setFaults(emu, []);
});
afterAll(async () => {
  killChildren();
  for (const b of boxes) b.cleanup();
  await emu?.stop();
  printLeakTable("reliability-faults");
});

/** Requests of one control-plane operation the emulator answered with `status`. */
function answered(op: string, status: number): number {
  return emu.records().filter((record) => record.op === op && record.status === status).length;
}

function checkout(): Box {
  const b = box(emu, boxes);
  b.write("proof.txt", "synced\n");
  return b;
}

describe("control-plane faults", () => {
  test("throttled RunMicrovm: the SDK retries and the run goes through", async () => {
    const b = checkout();
    const before = answered("RunMicrovm", 429);
    await setFaults(emu, ["throttle@RunMicrovm,count=2"]);
    const result = await b.crabbox(["run", "--", "cat", "proof.txt"]);
    expect(result.stdout).toBe("synced\n");
    expect(answered("RunMicrovm", 429) - before).toBe(2);
    await assertNoLeaks({
      scenario: "throttle@RunMicrovm,count=2 (SDK retries)",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 0 }],
    });
  });

  test("RunMicrovm throttled for good: a clear exit 1 after the SDK's retries, no claim", async () => {
    const b = checkout();
    const before = answered("RunMicrovm", 429);
    await setFaults(emu, ["throttle@RunMicrovm"]);
    const result = await b.crabbox(["run", "--", "cat", "proof.txt"]);
    expect(result.stderr).toContain("RunMicrovm");
    expect(result.stderr).toContain("ThrottlingException: Rate exceeded");
    expect(result.stderr).toContain("hint: the API is rate limiting this account; retry shortly");
    expect(answered("RunMicrovm", 429) - before).toBeGreaterThan(1);
    await assertNoLeaks({
      scenario: "throttle@RunMicrovm (always)",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 1 }],
    });
  });

  test("GetMicrovm throttled for good while waiting for readiness: exit 1, the MicroVM is rolled back", async () => {
    const b = checkout();
    await setFaults(emu, ["throttle@GetMicrovm"]);
    const result = await b.crabbox(["run", "--", "cat", "proof.txt"]);
    expect(result.stderr).toContain("GetMicrovm");
    expect(result.stderr).toContain("ThrottlingException");
    await assertNoLeaks({
      scenario: "throttle@GetMicrovm (always, during readiness)",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 1 }],
    });
  });

  test("TerminateMicrovm failing after a one-shot run: recovery claim and stop command; stop works once lifted", async () => {
    const b = checkout();
    await setFaults(emu, ["internal@TerminateMicrovm"]);
    const run = await b.crabbox(["run", "--", "cat", "proof.txt"]);
    expect(run.stdout).toBe("synced\n");
    const leaseId = leaseIdOf(run.stderr);
    const microvm = microvmIdOf(run.stderr.split("\nleased ")[1] as string);
    expect(run.stderr).toContain(`recovery claim ${leaseId} remains for cleanup`);
    expect(run.stderr).toContain(`retry with crabbox stop --provider aws-lambda-microvm '${leaseId}'`);
    expect(b.claims()).toMatchObject([{ leaseID: leaseId, state: "recovery" }]);
    await assertNoLeaks({
      scenario: "internal@TerminateMicrovm during a one-shot run (recovery claim kept)",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: run.code, expected: 0 }],
      kept: [microvm],
    });

    await setFaults(emu, []);
    const stop = await b.crabbox(["stop", leaseId]);
    expect(stop.stderr).toContain(`released lease=${leaseId} microvm=${microvm}`);
    await assertNoLeaks({
      scenario: "... then stop once the fault is lifted (--test-api)",
      emu,
      boxes: [b],
      exits: [{ label: "stop", actual: stop.code, expected: 0 }],
    });
  });

  test("GetMicrovm lagging behind (eventual consistency): readiness waits, the run goes through", async () => {
    const b = checkout();
    await setFaults(emu, ["state-lag-ms=2500@GetMicrovm"]);
    const result = await b.crabbox(["run", "--", "cat", "proof.txt"]);
    expect(result.stdout).toBe("synced\n");
    await assertNoLeaks({
      scenario: "state-lag-ms=2500@GetMicrovm",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 0 }],
    });
  });
});

describe("data-plane and runner faults", () => {
  test("every MicroVM's first data-plane request answers 502: retried, the run goes through", async () => {
    const b = checkout();
    await setFaults(emu, ["first-request-502"]);
    const result = await b.crabbox(["run", "--", "cat", "proof.txt"]);
    expect(result.stdout).toBe("synced\n");
    const microvm = microvmIdOf(result.stderr.split("\nleased ")[1] as string);
    const first = emu.records().find((record) => record.plane === "data" && record.microvmId === microvm);
    expect(first?.status).toBe(502);
    await assertNoLeaks({
      scenario: "first-request-502",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 0 }],
    });
  });

  test("the runner dies while booting: exit 5 with AWS's reason, rolled back", async () => {
    const b = checkout();
    await setFaults(emu, ["runner-crash@RunMicrovm,count=1"]);
    const result = await b.crabbox(["run", "--", "cat", "proof.txt"]);
    expect(result.stderr).toMatch(/entered TERMINAT\w+: MicroVM application was killed by SIGKILL\./);
    await assertNoLeaks({
      scenario: "runner-crash@RunMicrovm",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 5 }],
    });
  });

  test("the runner dies mid-command: non-zero exit, the stream ended without an exit event", async () => {
    const b = checkout();
    await setFaults(emu, ["runner-crash@/v1/exec,count=1"]);
    const result = await b.crabbox(["run", "--", "sh", "-c", "echo started; sleep 5; echo never"]);
    expect(result.stdout).not.toContain("never");
    expect(result.stderr).toContain("error: aws-lambda-microvm runner stream ended without an exit event");
    // What became of the MicroVM is part of the message.
    expect(result.stderr).toMatch(
      /MicroVM microvm-\S+ is terminat\w+: MicroVM application was killed by SIGKILL/,
    );
    await assertNoLeaks({
      scenario: "runner-crash@/v1/exec (mid-command)",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 1 }],
    });
  });
});
