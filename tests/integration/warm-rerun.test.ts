/**
 * The warm rerun: `crabbox run --id L -- true` on an unchanged tree is one HTTP request in total
 * (control plane and data plane, counted from the emulator's `--log-json`) — no GetMicrovm, no
 * /health, no token mint while the cached token has at least five minutes left. AWS is asked only
 * when the data plane fails; a MicroVM that is gone is a clear exit 4.
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TerminateMicrovmCommand } from "@aws-sdk/client-lambda-microvms";
import type { RequestRecord } from "../../src/emulator/log.ts";
import { startEmulator, type TestEmulator, waitForState } from "../support/emulator.ts";
import {
  killChildren,
  microvmIdOf,
  ok,
  requestsDuring,
  type Sandbox,
  sandbox,
  setFaults,
} from "./provider-run-harness.ts";

setDefaultTimeout(60_000);

let emu: TestEmulator;
const boxes: { box: Sandbox; slug: string }[] = [];

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", testApi: true });
});
afterEach(async () => {
  killChildren();
  await setFaults(emu, []);
});
afterAll(async () => {
  killChildren();
  for (const { box, slug } of boxes) {
    await box.crabbox(["stop", slug, "--aws-lambda-microvm-forget-missing"]).catch(() => undefined);
    box.cleanup();
  }
  await emu?.stop();
});

async function leased(slug: string): Promise<{ box: Sandbox; microvmId: string }> {
  const b = sandbox(emu);
  boxes.push({ box: b, slug });
  b.write("README.md", "warm\n");
  b.write("src/main.ts", "console.log('hi');\n");
  const warm = await ok(b, ["warmup", "--slug", slug]);
  const microvmId = microvmIdOf(warm.stdout + warm.stderr);
  return { box: b, microvmId };
}

const shape = (records: RequestRecord[]) =>
  records.map((r) => (r.op ? `${r.op} ${r.status}` : `${r.method} ${r.path} ${r.status}`));

describe("the warm rerun", () => {
  test("an unchanged `run --id L -- true` makes exactly one request: the exec", async () => {
    const { box: b, microvmId } = await leased("warm-one");
    await ok(b, ["run", "--id", "warm-one", "--", "true"]);
    const rerun = await requestsDuring(emu, () =>
      ok(b, ["run", "--id", "warm-one", "--timing-json", "--", "true"]),
    );
    expect(shape(rerun.records)).toEqual(["POST /v1/exec 200"]);
    expect(rerun.value.stdout).toBe("");
    expect(rerun.value.stderr).toMatch(/sync complete in \S+ \(unchanged\)/);
    const phases = JSON.parse(
      rerun.value.stderr.split("\n").find((l) => l.startsWith("{")) as string,
    ).syncPhases;
    expect(phases).toContainEqual({ name: "upload", skipped: true, reason: "unchanged" });
    // And again: nothing accumulates (no token mint, no probe) however often it reruns.
    const third = await requestsDuring(emu, () => ok(b, ["run", "--id", "warm-one", "--", "true"]));
    expect(shape(third.records)).toEqual(["POST /v1/exec 200"]);
    // Stop forgets what this machine kept about the MicroVM: its token and its synced manifest.
    expect(existsSync(join(b.stateDir, "synced", microvmId))).toBe(true);
    expect(existsSync(join(b.stateDir, "tokens", `${microvmId}.json`))).toBe(true);
    await ok(b, ["stop", "warm-one"]);
    expect(existsSync(join(b.stateDir, "synced", microvmId))).toBe(false);
    expect(existsSync(join(b.stateDir, "tokens", `${microvmId}.json`))).toBe(false);
  });

  test("a paused lease resumes through the data plane: still no GetMicrovm", async () => {
    const { box: b, microvmId } = await leased("warm-paused");
    await ok(b, ["run", "--id", "warm-paused", "--", "true"]);
    await ok(b, ["pause", "warm-paused"]);
    await waitForState(emu, microvmId, "SUSPENDED");
    const rerun = await requestsDuring(emu, () =>
      ok(b, ["run", "--id", "warm-paused", "--", "cat", "README.md"]),
    );
    expect(rerun.value.stdout).toBe("warm\n");
    expect(shape(rerun.records)).toEqual(["POST /v1/exec 200"]);
  });

  test("a cached token with less than five minutes left is not used: one mint, then one request again", async () => {
    const { box: b, microvmId } = await leased("warm-token");
    await ok(b, ["run", "--id", "warm-token", "--", "true"]);
    // The one place a token is stored: 0600, per MicroVM. Make it four minutes from expiry.
    const file = join(b.stateDir, "tokens", `${microvmId}.json`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const cached = JSON.parse(readFileSync(file, "utf8")) as { token: string; expiresAtMs: number };
    writeFileSync(file, JSON.stringify({ ...cached, expiresAtMs: Date.now() + 4 * 60_000 }));
    const near = await requestsDuring(emu, () => ok(b, ["run", "--id", "warm-token", "--", "true"]));
    expect(shape(near.records)).toEqual(["CreateMicrovmAuthToken 200", "POST /v1/exec 200"]);
    const renewed = JSON.parse(readFileSync(file, "utf8")) as { token: string; expiresAtMs: number };
    expect(renewed.token).not.toBe(cached.token);
    const again = await requestsDuring(emu, () => ok(b, ["run", "--id", "warm-token", "--", "true"]));
    expect(shape(again.records)).toEqual(["POST /v1/exec 200"]);
    // Neither the claim nor crabbox's output ever holds it.
    expect(JSON.stringify(b.claims())).not.toContain(renewed.token);
    expect(near.value.stderr + again.value.stderr).not.toContain(renewed.token);
  });

  test("a MicroVM terminated behind crabbox's back: AWS is asked after the data plane fails, exit 4", async () => {
    const { box: b, microvmId } = await leased("warm-gone");
    await ok(b, ["run", "--id", "warm-gone", "--", "true"]);
    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: microvmId }));
    await waitForState(emu, microvmId, "TERMINATED");
    const gone = await requestsDuring(
      emu,
      () => b.crabbox(["run", "--id", "warm-gone", "--", "true"]),
      (r) => r.op === "GetMicrovm",
    );
    expect({ code: gone.value.code, stderr: gone.value.stderr }).toMatchObject({ code: 4 });
    expect(gone.value.stderr).toContain(`MicroVM ${microvmId} is terminated`);
    expect(gone.value.stderr).toContain("crabbox stop --provider aws-lambda-microvm warm-gone");
    const order = shape(gone.records);
    const getAt = order.findIndex((r) => r.startsWith("GetMicrovm"));
    expect(getAt).toBeGreaterThan(0);
    expect(order.slice(0, getAt).every((r) => r.startsWith("POST /v1/exec 502"))).toBe(true);
    expect(gone.value.stdout).toBe("");
  });
});
