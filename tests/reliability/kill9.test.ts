/**
 * The slow fault suite, part 2: `kill -9` of the CLI in every phase of a run, then `crabbox
 * cleanup`. A killed process runs no finally block, so what is left is exactly what crash safety
 * promises: a claim written before RunMicrovm (with the input to replay), the MicroVM id added the
 * moment AWS answered, kernel locks that died with their holder. Cleanup must find and terminate
 * every MicroVM a dead one-shot run left, spare a retained lease, and leave nothing behind.
 *
 * The phases are pinned with a proxy in front of the emulator that holds the right request (the
 * RunMicrovm answer, the sync upload, the TerminateMicrovm call) until the CLI is dead.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { killChildren, microvmIdOf, type Running, setFaults } from "../integration/provider-run-harness.ts";
import { startEmulator, type TestEmulator } from "../support/emulator.ts";
import { type HostileProxy, hostileProxy, type Rule } from "./hostile-proxy.ts";
import { assertNoLeaks, type Box, box, printLeakTable } from "./support.ts";

setDefaultTimeout(90_000);

let emu: TestEmulator;
let proxy: HostileProxy;
const boxes: Box[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true });
  proxy = hostileProxy(emu);
});
afterEach(async () => {
  killChildren();
  proxy.rules = [];
  await setFaults(emu, []);
});
afterAll(async () => {
  killChildren();
  proxy?.stop();
  for (const b of boxes) b.cleanup();
  await emu?.stop();
  printLeakTable("reliability-kill9");
});

function checkout(): Box {
  const b = box(emu, boxes);
  b.write("proof.txt", "synced\n");
  b.write("src/big.bin", "x".repeat(256 * 1024));
  return b;
}

/** A rule that holds requests matching `match` (forwarded first when `forwardFirst`) until released. */
function hold(
  match: (req: Request, url: URL, plane: "control" | "data") => boolean,
  forwardFirst: boolean,
): { rule: Rule; reached: Promise<void>; release(): void } {
  let reached!: () => void;
  let release!: () => void;
  const reachedPromise = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const rule: Rule = async (req, url, { plane, forward }) => {
    if (!match(req, url, plane)) return undefined;
    const answer = forwardFirst ? await forward() : undefined;
    reached();
    await released;
    return answer ?? new Response("held", { status: 503 });
  };
  return { rule, reached: reachedPromise, release };
}

async function kill9(running: Running): Promise<number> {
  process.kill(-(running.child.pid as number), "SIGKILL");
  return (await running.exited).code;
}

/** `crabbox cleanup` straight against the emulator; returns its result after checking the count. */
async function cleanup(b: Box, terminated: number) {
  const result = await b.crabbox(["cleanup"], { env: { CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: emu.url } });
  expect(result.stderr).toContain(`cleanup terminated ${terminated}, kept 0`);
  return result;
}

describe("kill -9 of a one-shot run, then cleanup", () => {
  test("while RunMicrovm's answer is on its way: the claim has no MicroVM id; cleanup replays the call", async () => {
    const b = checkout();
    b.env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT = proxy.url;
    const held = hold(
      (req, url, plane) =>
        plane === "control" && req.method === "POST" && url.pathname === "/2025-09-09/microvms",
      true,
    );
    proxy.rules = [held.rule];
    const run = b.start(["run", "--", "cat", "proof.txt"]);
    await held.reached;
    const killed = await kill9(run);
    held.release();
    expect(b.claims()).toMatchObject([{ state: "provisioning", cloudID: "" }]);
    const clean = await cleanup(b, 1);
    expect(clean.stderr).toMatch(/terminate microvm id=- lease=cbx_[a-f0-9]{12} reason=abandoned/);
    expect(clean.stderr).toMatch(
      /recovered lease=cbx_[a-f0-9]{12} microvm=microvm-\S+ \(RunMicrovm replayed\)/,
    );
    await assertNoLeaks({
      scenario: "kill -9 while RunMicrovm's answer is in flight, then cleanup (RunMicrovm replayed)",
      emu,
      boxes: [b],
      exits: [
        { label: "run", actual: killed, expected: 128 },
        { label: "cleanup", actual: clean.code, expected: 0 },
      ],
    });
  });

  test("while the MicroVM boots (readiness)", async () => {
    const b = checkout();
    await setFaults(emu, ["slow-boot-ms=15000@RunMicrovm,count=1"]);
    const run = b.start(["run", "--", "cat", "proof.txt"]);
    await run.waitFor(/waiting for MicroVM|leased|provisioning provider/);
    for (let i = 0; i < 200 && !b.claims()[0]?.cloudID; i++) await Bun.sleep(25);
    expect(b.claims()[0]?.cloudID).toMatch(/^microvm-/);
    const killed = await kill9(run);
    const clean = await cleanup(b, 1);
    await assertNoLeaks({
      scenario: "kill -9 during readiness (MicroVM PENDING), then cleanup",
      emu,
      boxes: [b],
      exits: [
        { label: "run", actual: killed, expected: 128 },
        { label: "cleanup", actual: clean.code, expected: 0 },
      ],
    });
  });

  test("while the checkout is uploaded (sync)", async () => {
    const b = checkout();
    b.env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT = proxy.url;
    const held = hold(
      (req, url, plane) => plane === "data" && req.method === "POST" && url.pathname === "/v1/sync",
      false,
    );
    proxy.rules = [held.rule];
    const run = b.start(["run", "--", "cat", "proof.txt"]);
    await held.reached;
    const killed = await kill9(run);
    held.release();
    const clean = await cleanup(b, 1);
    await assertNoLeaks({
      scenario: "kill -9 during the sync upload, then cleanup",
      emu,
      boxes: [b],
      exits: [
        { label: "run", actual: killed, expected: 128 },
        { label: "cleanup", actual: clean.code, expected: 0 },
      ],
    });
  });

  test("while the command runs", async () => {
    const b = checkout();
    const run = b.start(["run", "--", "sh", "-c", "echo started; sleep 120"]);
    await run.waitFor("started\n");
    const killed = await kill9(run);
    const clean = await cleanup(b, 1);
    await assertNoLeaks({
      scenario: "kill -9 while the command runs, then cleanup",
      emu,
      boxes: [b],
      exits: [
        { label: "run", actual: killed, expected: 128 },
        { label: "cleanup", actual: clean.code, expected: 0 },
      ],
    });
  });

  test("while TerminateMicrovm is on its way", async () => {
    const b = checkout();
    b.env.CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT = proxy.url;
    const held = hold(
      (req, url, plane) =>
        plane === "control" && req.method === "DELETE" && url.pathname.startsWith("/2025-09-09/microvms/"),
      false,
    );
    proxy.rules = [held.rule];
    const run = b.start(["run", "--", "cat", "proof.txt"]);
    await held.reached;
    expect(run.stdout()).toBe("synced\n");
    const killed = await kill9(run);
    held.release();
    const clean = await cleanup(b, 1);
    await assertNoLeaks({
      scenario: "kill -9 while TerminateMicrovm is in flight, then cleanup",
      emu,
      boxes: [b],
      exits: [
        { label: "run", actual: killed, expected: 128 },
        { label: "cleanup", actual: clean.code, expected: 0 },
      ],
    });
  });
});

describe("kill -9 of a retained lease's commands", () => {
  test("warmup killed before readiness: the half-made lease is abandoned by cleanup", async () => {
    const b = checkout();
    await setFaults(emu, ["slow-boot-ms=15000@RunMicrovm,count=1"]);
    const warm = b.start(["warmup", "--slug", "half-made"]);
    for (let i = 0; i < 400 && !b.claims()[0]?.cloudID; i++) await Bun.sleep(25);
    expect(b.claims()[0]?.cloudID).toMatch(/^microvm-/);
    const killed = await kill9(warm);
    const clean = await cleanup(b, 1);
    await assertNoLeaks({
      scenario: "kill -9 of warmup during readiness, then cleanup",
      emu,
      boxes: [b],
      exits: [
        { label: "warmup", actual: killed, expected: 128 },
        { label: "cleanup", actual: clean.code, expected: 0 },
      ],
    });
  });

  test("run --id killed mid-command: cleanup spares the lease, its lock is free, the next run --id works", async () => {
    const b = checkout();
    const warm = await b.crabbox(["warmup", "--slug", "kept"]);
    expect(warm.code).toBe(0);
    const microvm = microvmIdOf(warm.stdout);
    const run = b.start(["run", "--id", "kept", "--", "sh", "-c", "echo started; sleep 120"]);
    await run.waitFor("started\n");
    const killed = await kill9(run);
    const clean = await b.crabbox(["cleanup"]);
    expect(clean.stderr).toContain("cleanup terminated 0, kept 1");
    await assertNoLeaks({
      scenario: "kill -9 of run --id mid-command, then cleanup (lease kept)",
      emu,
      boxes: [b],
      exits: [
        { label: "run --id", actual: killed, expected: 128 },
        { label: "cleanup", actual: clean.code, expected: 0 },
      ],
      kept: [microvm],
    });
    const again = await b.crabbox(["run", "--id", "kept", "--", "cat", "proof.txt"]);
    expect(again.stdout).toBe("synced\n");
    const stop = await b.crabbox(["stop", "kept"]);
    await assertNoLeaks({
      scenario: "... the next run --id and stop",
      emu,
      boxes: [b],
      exits: [
        { label: "run --id", actual: again.code, expected: 0 },
        { label: "stop", actual: stop.code, expected: 0 },
      ],
    });
  });
});
