import { describe, expect, test } from "bun:test";
import type { Claim } from "../../../src/core/claims.ts";
import {
  type ClaimOwner,
  claimOwner,
  decide,
  type OwnerProbe,
  ownerGone,
  storedRunInput,
} from "../../../src/providers/aws-lambda-microvm/cleanup.ts";
import type { Microvm } from "../../../src/providers/aws-lambda-microvm/control-plane.ts";
import { classifyFailure } from "../../../src/providers/aws-lambda-microvm/doctor.ts";
import { mapLimited, orphanAge } from "../../../src/providers/aws-lambda-microvm/list.ts";

/** The pure decisions behind cleanup, doctor and list; the integration tests drive them for real. */

const probe: OwnerProbe = { host: "box", bootId: "boot-1", alive: (pid) => pid === 100 };
const live: ClaimOwner = { pid: 100, host: "box", bootId: "boot-1" };
const dead: ClaimOwner = { pid: 200, host: "box", bootId: "boot-1" };
const NOW = new Date("2026-06-01T12:00:00Z");
const nowSeconds = Math.floor(NOW.getTime() / 1000);

function claim(fields: Partial<Claim> = {}): Claim {
  return {
    leaseID: "cbx_aaaaaaaaaaaa",
    revision: "r",
    slug: "blue-crab",
    provider: "aws-lambda-microvm",
    cloudID: "microvm-1",
    providerScope: "eu-west-1",
    repoRoot: "/repo",
    claimedAt: "2026-06-01T11:00:00Z",
    lastUsedAt: "2026-06-01T11:00:00Z",
    ...fields,
  };
}

function vm(state: string): Microvm {
  return {
    microvmId: "microvm-1",
    state,
    endpoint: "x.lambda-microvm.eu-west-1.on.aws",
    imageArn: "arn",
    imageVersion: "1.0",
    stateReason: undefined,
    startedAtMs: undefined,
    maximumDurationInSeconds: undefined,
  };
}

function view(c: Claim, machine: Microvm | undefined, labels: Record<string, string> = {}) {
  const status = machine
    ? machine.state.toLowerCase()
    : c.cloudID
      ? "missing-or-inaccessible"
      : "provisioning";
  return {
    claim: c,
    vm: machine,
    listing: { cloudId: c.cloudID, name: c.slug, status, imageVersion: "", endpoint: "", labels },
  };
}

const options = { forgetMissing: false, now: NOW, probe };
const RUN_INPUT = {
  clientToken: "cbx_aaaaaaaaaaaa",
  imageIdentifier: "arn:aws:lambda:eu-west-1:1:microvm-image:x",
  ingressNetworkConnectors: [],
  egressNetworkConnectors: [],
  maximumDurationInSeconds: 60,
};

describe("owner liveness", () => {
  test("same host: a dead pid or another boot is gone; a live pid is not", () => {
    expect(ownerGone(live, probe)).toBe(false);
    expect(ownerGone(dead, probe)).toBe(true);
    expect(ownerGone({ ...live, bootId: "boot-0" }, probe)).toBe(true);
  });

  test("another host can never be judged from here", () => {
    expect(ownerGone({ ...dead, host: "laptop" }, probe)).toBe(false);
    expect(ownerGone({ ...dead, host: "laptop", bootId: "other" }, probe)).toBe(false);
  });

  test("only a well-formed owner field counts", () => {
    expect(claimOwner(claim({ owner: live }))).toEqual(live);
    expect(claimOwner(claim({ owner: { pid: "1", host: "box" } }))).toBeUndefined();
    expect(claimOwner(claim({ owner: { pid: -3, host: "box" } }))).toBeUndefined();
    expect(claimOwner(claim())).toBeUndefined();
  });

  test("a stored RunMicrovm input needs its clientToken and image", () => {
    expect(storedRunInput(claim({ runInput: RUN_INPUT }))).toEqual(RUN_INPUT);
    expect(storedRunInput(claim({ runInput: { imageIdentifier: "x" } }))).toBeUndefined();
  });
});

describe("cleanup decision", () => {
  test("an unkept lease whose owner died is abandoned and terminated, whatever its labels say", () => {
    const c = claim({ owner: dead, labels: { keep: "false", state: "running" } });
    expect(decide(view(c, vm("RUNNING"), { keep: "false", state: "running" }), options)).toEqual({
      action: "terminate",
      reason: "abandoned owner pid 200 gone",
    });
  });

  test("an unkept lease whose owner is alive is in use", () => {
    const c = claim({ owner: live, labels: { keep: "false" } });
    expect(decide(view(c, vm("RUNNING"), { keep: "false" }), options)).toEqual({
      action: "skip",
      reason: "in use by pid 100",
    });
  });

  test("a kept lease is never abandoned: upstream's keep=true rule holds", () => {
    const c = claim({ owner: dead, labels: { keep: "true" } });
    expect(decide(view(c, vm("RUNNING"), { keep: "true" }), options)).toEqual({
      action: "skip",
      reason: "keep=true",
    });
  });

  test("a kept lease whose creator died before readiness was never handed over: abandoned", () => {
    const c = claim({ owner: dead, state: "provisioning", labels: { keep: "true" } });
    expect(decide(view(c, vm("RUNNING"), { keep: "true" }), options)).toEqual({
      action: "terminate",
      reason: "abandoned state=provisioning owner pid 200 gone",
    });
    const ready = claim({ owner: dead, state: "ready", labels: { keep: "true" } });
    expect(decide(view(ready, vm("RUNNING"), { keep: "true" }), options).action).toBe("skip");
  });

  test("without an owner (an upstream claim) the label decision applies", () => {
    const expired = { keep: "false", state: "leased", expires_at: String(nowSeconds - 10) };
    expect(decide(view(claim(), vm("RUNNING"), expired), options).action).toBe("terminate");
    const fresh = { ...expired, expires_at: String(nowSeconds + 600) };
    expect(decide(view(claim(), vm("RUNNING"), fresh), options)).toEqual({
      action: "skip",
      reason: "state=leased",
    });
  });

  test("a terminated MicroVM's claim is forgotten, kept or not", () => {
    const c = claim({ labels: { keep: "true" } });
    expect(decide(view(c, vm("TERMINATED")), options)).toEqual({
      action: "forget",
      reason: "state=terminated",
    });
  });

  test("a missing MicroVM is forgotten only with forgetMissing", () => {
    expect(decide(view(claim(), undefined), options).action).toBe("skip");
    expect(decide(view(claim(), undefined), { ...options, forgetMissing: true })).toEqual({
      action: "forget",
      reason: "missing-or-inaccessible",
    });
  });

  test("no cloud id: replayed only when the owner is gone and the input was recorded", () => {
    const base = { cloudID: "", state: "provisioning", runInput: RUN_INPUT };
    expect(decide(view(claim({ ...base, owner: dead }), undefined), options).action).toBe("replay");
    expect(decide(view(claim({ ...base, owner: live }), undefined), options)).toEqual({
      action: "skip",
      reason: "provisioning by pid 100",
    });
    expect(
      decide(view(claim({ ...base, owner: dead, runInput: undefined }), undefined), options).action,
    ).toBe("skip");
    expect(
      decide(view(claim({ ...base, owner: { ...dead, host: "laptop" } }), undefined), options).action,
    ).toBe("skip");
  });
});

describe("doctor classification (upstream keywords, first match wins)", () => {
  test.each([
    ["request timed out", "timeout"],
    ["context deadline exceeded", "timeout"],
    ["aws not found in $PATH", "tool"],
    ["image is required", "config"],
    ["AccessDeniedException: not authorized", "auth"],
    ["Could not load credentials from any providers", "auth"],
    ["connect ECONNREFUSED 127.0.0.1:1", "network"],
    ["getaddrinfo ENOTFOUND lambda.xx-east-9.amazonaws.com", "network"],
    ["InternalServerException: boom", "provider"],
  ])("%s -> %s", (text, klass) => {
    expect(classifyFailure(text)).toBe(klass as ReturnType<typeof classifyFailure>);
  });
});

describe("list helpers", () => {
  test("orphan age prints like Go durations, in whole seconds", () => {
    const summary = { microvmId: "m", state: "RUNNING", imageArn: "", imageVersion: "", startedAtMs: 0 };
    expect(orphanAge({ summary, ageMs: 3_723_900 })).toBe("1h2m3s");
    expect(orphanAge({ summary, ageMs: 400 })).toBe("0s");
    expect(orphanAge({ summary, ageMs: undefined })).toBe("-");
  });

  test("mapLimited keeps the order and never runs more than the limit at once", async () => {
    let running = 0;
    let peak = 0;
    const out = await mapLimited([5, 1, 4, 2, 3], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await Bun.sleep(n);
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });
});
