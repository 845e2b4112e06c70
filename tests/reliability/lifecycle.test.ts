/**
 * The slow fault suite, part 1: what the MicroVM's own lifecycle does to a run in flight — its
 * maximum duration reached mid-command, a suspension mid-command (auto-resumed by the next
 * request), the data-plane token expiring during a long run, and the emulator restarting under a
 * retained lease. The emulator runs at time scale 0.05 (a 60 s TTL is 3 s) and the CLI is told so
 * (CRABBOX_TIME_SCALE). Every scenario ends with the leak check.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { SuspendMicrovmCommand } from "@aws-sdk/client-lambda-microvms";
import { killChildren, microvmIdOf, setFaults } from "../integration/provider-run-harness.ts";
import { startEmulator, type TestEmulator, waitForState } from "../support/emulator.ts";
import { assertNoLeaks, type Box, box, printLeakTable } from "./support.ts";

setDefaultTimeout(90_000);

const SCALE = "0.05";
let emu: TestEmulator;
const boxes: Box[] = [];
const emulators: TestEmulator[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true, timeScale: Number(SCALE) });
});
afterEach(async () => {
  killChildren();
  await setFaults(emu, []).catch(() => {});
});
afterAll(async () => {
  killChildren();
  for (const b of boxes) b.cleanup();
  await emu?.stop();
  for (const other of emulators) await other.stop();
  printLeakTable("reliability-lifecycle");
});

function scaledBox(target: TestEmulator = emu): Box {
  const b = box(target, boxes);
  b.env.CRABBOX_TIME_SCALE = SCALE;
  b.write("proof.txt", "synced\n");
  return b;
}

describe("the MicroVM's lifecycle during a command", () => {
  test("maximum duration reached mid-command: non-zero exit naming it, nothing left", async () => {
    const b = scaledBox();
    const result = await b.crabbox([
      "run",
      "--ttl",
      "60s",
      "--",
      "sh",
      "-c",
      "echo started; sleep 60; echo never",
    ]);
    expect(result.stdout).toBe("started\n");
    // Either the runner saw its command killed on the way down (exit 143, a warning says why) or
    // the stream just ended (exit 1): both name the maximum duration.
    expect(result.stderr).toMatch(
      /(the command was killed by SIG\w+|stream ended without an exit event); MicroVM \S+ is terminat\w+: MicroVM exceeded its maximum duration of 60 seconds\./,
    );
    await assertNoLeaks({
      scenario: "max duration (--ttl 60s = 3 s) reached mid-command",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: result.code === 143 ? 143 : 1 }],
    });
  });

  test("suspended mid-command: the keep-alive's next request auto-resumes it, the command finishes", async () => {
    const b = scaledBox();
    // idle 60 s (3 s here): the keep-alive probes every 15 s scaled, 0.75 s.
    const run = b.start(
      ["run", "--idle-timeout", "60s", "--", "sh", "-c", "echo started; sleep 4; echo finished"],
      {
        env: { CRABBOX_TIME_SCALE: SCALE },
      },
    );
    await run.waitFor("started\n");
    const microvm = microvmIdOf(run.stderr().split("\nleased ")[1] as string);
    await emu.client().send(new SuspendMicrovmCommand({ microvmIdentifier: microvm }));
    await waitForState(emu, microvm, ["SUSPENDED", "RUNNING"]);
    const result = await run.exited;
    expect(result.stdout).toBe("started\nfinished\n");
    expect(emu.stderr()).toMatch(new RegExp(`\\[${microvm}\\] SUSPENDED -> RUNNING`));
    await assertNoLeaks({
      scenario: "suspend mid-command, auto-resumed by the keep-alive",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 0 }],
    });
  });

  test("the data-plane token expires during a long run: refreshed once, the stream picked up again", async () => {
    const b = scaledBox();
    const minted = () => emu.records().filter((record) => record.op === "CreateMicrovmAuthToken").length;
    const expired = () => emu.records().filter((record) => record.error === "expired token").length;
    const [mintedBefore, expiredBefore] = [minted(), expired()];
    // The first token lives 2 real seconds; the exec stream is cut once the last lines come, after it.
    await setFaults(emu, [
      "token-ttl-s=2@CreateMicrovmAuthToken,count=1",
      "cut-stream-after=220@/v1/exec,count=1",
    ]);
    const result = await b.crabbox([
      "run",
      "--",
      "sh",
      "-c",
      "echo started; sleep 4; for i in 1 2 3 4 5 6 7 8; do echo line-$i; done",
    ]);
    expect(result.stdout).toBe(`started\n${[1, 2, 3, 4, 5, 6, 7, 8].map((i) => `line-${i}\n`).join("")}`);
    expect(expired() - expiredBefore).toBeGreaterThan(0);
    expect(minted() - mintedBefore).toBe(2);
    await assertNoLeaks({
      scenario: "token expiry (token-ttl-s=2) during a long run + a cut stream",
      emu,
      boxes: [b],
      exits: [{ label: "run", actual: result.code, expected: 0 }],
    });
  });
});

describe("the emulator restarting under a retained lease", () => {
  test("the lease is missing-or-inaccessible, run --id is exit 4, stop hints forget-missing and then forgets", async () => {
    const first = await startEmulator({ binary: "dist", testApi: true, timeScale: Number(SCALE) });
    emulators.push(first);
    const b = scaledBox(first);
    const warm = await b.crabbox(["warmup", "--slug", "survivor"]);
    expect(warm.code).toBe(0);
    const leaseId = /leased (cbx_[a-f0-9]{12})/.exec(warm.stdout)?.[1] as string;
    const microvm = microvmIdOf(warm.stdout);
    await assertNoLeaks({
      scenario: "warmup before the emulator restart",
      emu: first,
      boxes: [b],
      exits: [{ label: "warmup", actual: warm.code, expected: 0 }],
      kept: [microvm],
    });

    expect(await first.stop()).toBe(0);
    expect(first.survivors()).toEqual([]);
    const second = await startEmulator({ binary: "dist", testApi: true, timeScale: Number(SCALE) });
    emulators.push(second);
    b.env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT = second.url;

    const list = await b.crabbox(["list", "--json"]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: "survivor", status: "missing-or-inaccessible" }]);
    const run = await b.crabbox(["run", "--id", "survivor", "--", "true"]);
    expect(run.stderr).toContain(`MicroVM ${microvm} no longer exists`);
    const stop = await b.crabbox(["stop", "survivor"]);
    expect(stop.stderr).toContain("ResourceNotFoundException");
    expect(stop.stderr).toContain("--aws-lambda-microvm-forget-missing");
    expect(b.claims()).toHaveLength(1);
    const forget = await b.crabbox(["stop", "survivor", "--aws-lambda-microvm-forget-missing"]);
    expect(forget.stderr).toContain(`released lease=${leaseId}`);
    await assertNoLeaks({
      scenario: "emulator restart: list, run --id, stop, stop --forget-missing",
      emu: second,
      boxes: [b],
      exits: [
        { label: "list", actual: list.code, expected: 0 },
        { label: "run --id", actual: run.code, expected: 4 },
        { label: "stop", actual: stop.code, expected: 1 },
        { label: "stop --forget-missing", actual: forget.code, expected: 0 },
      ],
    });
  });
});
