import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { GetMicrovmCommand, RunMicrovmCommand } from "@aws-sdk/client-lambda-microvms";
import { type Claim, serializeClaim } from "../../src/core/claims.ts";
import { claimFile } from "../../src/core/paths.ts";
import { RUNNER_IMAGE, startEmulator, stopAllEmulators, type TestEmulator } from "../support/emulator.ts";
import { killChildren, liveMicrovms, type Sandbox, sandbox } from "./provider-run-harness.ts";

/**
 * The operations side of the aws-lambda-microvm provider, driven through the compiled binary
 * against one spawned emulator: the seed's command sequence, status/pause/resume/list/stop/cleanup/
 * doctor behaviour and exit codes, and crash recovery (kill -9, a lost RunMicrovm answer, a claim
 * deleted by hand). Every test ends with no MicroVM of its own still running.
 */

const AWS = ["--provider", "aws-lambda-microvm"];
let emu: TestEmulator;
let box: Sandbox;

beforeAll(async () => {
  emu = await startEmulator({ binary: "dist", timeScale: 0.05 });
  box = sandbox(emu);
  box.write("proof.txt", "lambda-microvm-sync-proof");
  box.write("src/app.txt", "app\n");
});

afterAll(async () => {
  killChildren();
  await stopAllEmulators();
  box?.cleanup();
});

async function crabbox(args: string[], env: Record<string, string> = {}) {
  return box.crabbox(args, { env });
}

async function ok(args: string[], env: Record<string, string> = {}) {
  const result = await crabbox(args, env);
  if (result.code !== 0) {
    throw new Error(`crabbox ${args.join(" ")} exited ${result.code}\n${result.stderr}`);
  }
  return result;
}

async function state(microvmId: string): Promise<string> {
  const out = await emu.client().send(new GetMicrovmCommand({ microvmIdentifier: microvmId }));
  return out.state ?? "";
}

function microvmOf(text: string): string {
  const match = /leased \S+ slug=\S+ provider=\S+ microvm=(\S+)/.exec(text);
  if (!match) throw new Error(`no leased line in:\n${text}`);
  return match[1] as string;
}

function fileOf(leaseId: string): string {
  return claimFile(box.stateDir, leaseId);
}

/** A claim file as crabbox writes it, for states a live run only passes through. */
function writeClaim(fields: Partial<Claim> & { leaseID: string; slug: string }): Claim {
  const claim: Claim = {
    revision: "0".repeat(32),
    provider: "aws-lambda-microvm",
    cloudID: "",
    providerScope: "us-east-1",
    repoRoot: box.repo,
    claimedAt: "2026-01-01T00:00:00Z",
    lastUsedAt: "2026-01-01T00:00:00Z",
    ...fields,
  };
  writeClaimText(claim.leaseID, serializeClaim(claim));
  return claim;
}

function writeClaimText(leaseId: string, text: string): string {
  mkdirSync(join(box.stateDir, "claims"), { recursive: true, mode: 0o700 });
  writeFileSync(fileOf(leaseId), text, { mode: 0o600 });
  return fileOf(leaseId);
}

function removeClaimFile(leaseId: string): void {
  rmSync(fileOf(leaseId), { force: true });
}

async function expectNothingRunning() {
  expect(await liveMicrovms(emu)).toEqual([]);
}

describe("the seed's commands, in order", () => {
  test("doctor, warmup, one-shot run, run --keep, run --id --shell, pause, status, resume, status --wait, stop, cleanup --dry-run, list", async () => {
    const doctor = await ok(["doctor", ...AWS, "--json"]);
    const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: { check: string; status: string }[] };
    expect(report.ok).toBe(true);
    expect(report.checks.map((check) => check.check)).toEqual([
      "provider-selection",
      "git",
      "tar",
      "credentials",
      "region",
      "provider",
      "claims",
    ]);
    expect(doctor.stdout).toContain('"mode":"emulator"');
    expect(doctor.stderr).toContain(`emulator mode: control plane ${emu.url}`);

    const warmup = await ok(["warmup", ...AWS, "--slug", "lambda-test"]);
    expect(warmup.stdout).toMatch(/^leased cbx_[a-f0-9]{12} slug=lambda-test provider=aws-lambda-microvm /m);
    expect(warmup.stdout).toMatch(/^warmup complete total=\S+$/m);
    const warm = microvmOf(warmup.stdout);

    const oneShot = await ok(["run", ...AWS, "--", "cat", "proof.txt"]);
    expect(oneShot.stdout).toBe("lambda-microvm-sync-proof");
    expect(["TERMINATING", "TERMINATED"]).toContain(await state(microvmOf(oneShot.stderr)));

    const kept = await ok(["run", ...AWS, "--keep", "--slug", "lambda-test", "--", "true"]);
    const keptVm = microvmOf(kept.stderr);
    // The slug is taken by the warmup lease: the new one gets a suffixed slug (upstream §3.3).
    const keptSlug = /leased \S+ slug=(\S+)/.exec(kept.stderr)?.[1] as string;
    expect(keptSlug).toMatch(/^lambda-test-[0-9a-f]{4}$/);
    expect(await state(keptVm)).toBe("RUNNING");

    const shell = await ok([
      "run",
      ...AWS,
      "--id",
      "lambda-test",
      "--shell",
      'test "$(cat proof.txt)" = lambda-microvm-sync-proof && printf shell-ok',
    ]);
    expect(shell.stdout).toBe("shell-ok");

    const pause = await ok(["pause", ...AWS, "lambda-test"]);
    expect(pause.stderr).toContain(`suspended lease=`);
    expect(await state(warm)).toBe("SUSPENDED");
    const suspended = JSON.parse((await ok(["status", ...AWS, "--id", "lambda-test", "--json"])).stdout);
    expect(suspended).toMatchObject({ slug: "lambda-test", state: "suspended", serverId: warm, ready: true });
    expect(suspended.labels.state).toBe("suspended");

    const resume = await ok(["resume", ...AWS, "lambda-test"]);
    expect(resume.stderr).toContain(`running lease=`);
    const running = JSON.parse(
      (await ok(["status", ...AWS, "--id", "lambda-test", "--wait", "--json"])).stdout,
    );
    expect(running).toMatchObject({ state: "running", provider: "aws-lambda-microvm", target: "linux" });

    const stop = await ok(["stop", ...AWS, "lambda-test"]);
    expect(stop.stderr).toMatch(new RegExp(`released lease=cbx_[a-f0-9]{12} microvm=${warm}`));
    await ok(["stop", ...AWS, keptSlug]);

    const dry = await ok(["cleanup", ...AWS, "--dry-run"]);
    expect(dry.stderr).toContain("cleanup would terminate 0, kept 0");
    const list = await ok(["list", ...AWS]);
    expect(list.stdout).toBe("");
    expect((await ok(["list", ...AWS, "--json"])).stdout.trim()).toBe("[]");
    await expectNothingRunning();
    expect(box.claims()).toEqual([]);
  });
});

describe("status, pause, resume, stop", () => {
  test("an unknown lease is exit 4 for every command that names one", async () => {
    for (const command of ["status", "stop", "pause", "resume"]) {
      const result = await crabbox([command, ...AWS, "no-such-lease"]);
      expect(result.code).toBe(4);
      expect(result.stderr).toContain("aws-lambda-microvm lease not found: no-such-lease");
    }
  });

  test("pause and resume are idempotent; text status and list show the live state", async () => {
    const warmup = await ok(["warmup", ...AWS, "--slug", "twice"]);
    const vm = microvmOf(warmup.stdout);
    await ok(["pause", ...AWS, "twice"]);
    await ok(["pause", ...AWS, "twice"]);
    expect(await state(vm)).toBe("SUSPENDED");
    const text = (await ok(["status", ...AWS, "twice"])).stdout;
    expect(text).toMatch(
      /^cbx_[a-f0-9]{12} slug=twice provider=aws-lambda-microvm target=linux .*state=suspended /,
    );
    expect(text).toContain("ready=true");
    const line = (await ok(["list", ...AWS])).stdout;
    expect(line).toContain(vm);
    expect(line).toMatch(/ twice +suspended +1\.0 /);
    expect(line).toContain("slug=twice keep=true target=linux");
    await ok(["resume", ...AWS, "twice"]);
    await ok(["resume", ...AWS, "twice"]);
    expect(await state(vm)).toBe("RUNNING");
    await ok(["stop", ...AWS, "twice"]);
    await expectNothingRunning();
  });

  test("a MicroVM terminated behind crabbox's back: status --wait is exit 5, list still shows the lease, stop forgets it", async () => {
    const warmup = await ok(["warmup", ...AWS, "--slug", "vanished"]);
    const vm = microvmOf(warmup.stdout);
    const { TerminateMicrovmCommand } = await import("@aws-sdk/client-lambda-microvms");
    await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: vm }));
    const wait = await crabbox(["status", ...AWS, "vanished", "--wait", "--wait-timeout", "20s"]);
    expect(wait.code).toBe(5);
    expect(wait.stderr).toMatch(
      /lease vanished reached terminal state (terminating|terminated) before ready/,
    );
    const list = (await ok(["list", ...AWS, "--json"])).stdout;
    expect(JSON.parse(list)[0]).toMatchObject({ name: "vanished", CloudID: vm });
    // The emulator still knows a terminated MicroVM, so stop succeeds and forgets the claim.
    await ok(["stop", ...AWS, "vanished"]);
    expect(box.claims()).toEqual([]);
  });
});

describe("doctor", () => {
  test("--id adds that lease's MicroVM, read-only (a suspended one stays suspended)", async () => {
    const vm = microvmOf((await ok(["warmup", ...AWS, "--slug", "doctored"])).stdout);
    await ok(["pause", ...AWS, "doctored"]);
    const report = JSON.parse((await ok(["doctor", ...AWS, "--id", "doctored", "--json"])).stdout);
    const lease = (
      report.checks as { check: string; status: string; details: Record<string, string> }[]
    ).find((check) => check.check === "lease");
    expect(lease).toMatchObject({
      status: "ok",
      details: { slug: "doctored", microvm: vm, state: "suspended" },
    });
    expect(await state(vm)).toBe("SUSPENDED");
    await ok(["stop", ...AWS, "doctored"]);
  });

  test("an unreachable control plane fails the provider check as network, with upstream's tokens and exit 1", async () => {
    const result = await crabbox(["doctor", ...AWS, "--json"], {
      CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: "http://127.0.0.1:9",
      AWS_MAX_ATTEMPTS: "1",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("doctor found problems");
    const report = JSON.parse(result.stdout) as { ok: boolean; checks: Record<string, unknown>[] };
    expect(report.ok).toBe(false);
    const provider = report.checks.find((check) => check.check === "provider") as {
      status: string;
      message: string;
      details: Record<string, string>;
    };
    expect(provider.status).toBe("failed");
    expect(provider.details.class).toBe("network");
    expect(provider.details.hint).toBe("check_network_and_provider_endpoint");
    expect(provider.message).toStartWith(
      "provider=aws-lambda-microvm class=network hint=check_network_and_provider_endpoint ",
    );
    expect(provider.details.advice).toContain("emulator");
  });

  test("outside emulator mode the standard credential chain is checked; none is an auth failure, and AWS is not called", async () => {
    const before = emu.records().length;
    const result = await crabbox(["doctor", ...AWS, "--json", "--aws-lambda-microvm-region", "eu-west-1"], {
      CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: "",
      CRABBOX_AWS_REGION: "",
      CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: "arn:aws:lambda:eu-west-1:000000000000:microvm-image:crabbox-runner",
      // No instance metadata service to wait for on a developer machine or CI.
      AWS_EC2_METADATA_DISABLED: "true",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).not.toContain("emulator mode");
    const checks = JSON.parse(result.stdout).checks as {
      check: string;
      status: string;
      details: Record<string, string>;
    }[];
    const credentials = checks.find((check) => check.check === "credentials");
    expect(credentials?.status).toBe("failed");
    expect(credentials?.details).toMatchObject({
      mode: "aws",
      class: "auth",
      hint: "check_provider_auth_and_config",
    });
    expect(credentials?.details.advice).toContain("AWS_PROFILE");
    expect(checks.find((check) => check.check === "region")?.details.availability).toBe("launch_region");
    // Without credentials the API probe would only repeat the failure: it is not attempted.
    expect(checks.some((check) => check.check === "provider")).toBe(false);
    expect(emu.records().length).toBe(before);
  });

  test("an image that does not exist is a config failure naming the image", async () => {
    const image = "arn:aws:lambda:us-east-1:000000000000:microvm-image:no-such-image";
    const result = await crabbox(["doctor", ...AWS, "--json"], { CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: image });
    expect(result.code).toBe(1);
    const provider = (
      JSON.parse(result.stdout).checks as { check: string; details: Record<string, string> }[]
    ).find((check) => check.check === "provider");
    expect(provider?.details.class).toBe("config");
    expect(provider?.details.advice).toContain(image);
  });

  test("a corrupt claim fails the claims check (and list, exit 2) naming the file", async () => {
    const file = writeClaimText("cbx_0000000000ff", "{not json");
    try {
      const result = await crabbox(["doctor", ...AWS]);
      expect(result.code).toBe(1);
      expect(result.stdout).toMatch(
        /^failed +claims +class=config hint=check_local_claims 1 unreadable claim file/m,
      );
      expect(result.stdout).toContain(file);
      const list = await crabbox(["list", ...AWS]);
      expect(list.code).toBe(2);
      expect(list.stderr).toContain(file);
    } finally {
      removeClaimFile("cbx_0000000000ff");
    }
  });
});

describe("crash recovery", () => {
  test("kill -9 of the CLI mid-run, then cleanup: the abandoned one-shot MicroVM is terminated", async () => {
    const running = box.start(["run", ...AWS, "--", "sh", "-c", "echo started; sleep 120"]);
    await running.waitFor("started");
    const vm = microvmOf(running.stderr());
    process.kill(-(running.child.pid as number), "SIGKILL");
    await running.exited;
    expect(await state(vm)).toBe("RUNNING");

    const dry = await ok(["cleanup", ...AWS, "--dry-run"]);
    expect(dry.stderr).toMatch(
      new RegExp(`terminate microvm id=${vm} lease=cbx_[a-f0-9]{12} reason=abandoned owner pid \\d+ gone`),
    );
    expect(await state(vm)).toBe("RUNNING");

    const cleanup = await ok(["cleanup", ...AWS]);
    expect(cleanup.stderr).toContain(`released lease=`);
    expect(cleanup.stderr).toContain("cleanup terminated 1, kept 0");
    await expectNothingRunning();
    expect(box.claims()).toEqual([]);
  });

  test("a claim that lost its RunMicrovm answer is resolved by replaying the stored input, then terminated", async () => {
    const leaseId = "cbx_0000000000aa";
    const input = {
      clientToken: leaseId,
      imageIdentifier: RUNNER_IMAGE(),
      ingressNetworkConnectors: [
        "arn:aws:lambda:us-east-1:aws:network-connector:aws-network-connector:ALL_INGRESS",
      ],
      egressNetworkConnectors: [
        "arn:aws:lambda:us-east-1:aws:network-connector:aws-network-connector:INTERNET_EGRESS",
      ],
      maximumDurationInSeconds: 600,
    };
    // The "crashed" crabbox: RunMicrovm reached AWS, the answer never reached the claim.
    const lost = await emu.client().send(new RunMicrovmCommand(input));
    writeClaim({
      leaseID: leaseId,
      slug: "lost-answer",
      cloudID: "",
      state: "provisioning",
      owner: { pid: 2 ** 22 + 12345, host: hostname(), bootId: "another-boot" },
      runInput: input,
      labels: { keep: "false", state: "provisioning" },
    });
    const listed = await ok(["list", ...AWS]);
    expect(listed.stdout).toMatch(/^- +lost-answer +provisioning /m);
    const cleanup = await ok(["cleanup", ...AWS]);
    expect(cleanup.stderr).toContain(
      `recovered lease=${leaseId} microvm=${lost.microvmId} (RunMicrovm replayed)`,
    );
    expect(cleanup.stderr).toContain(`released lease=${leaseId} microvm=${lost.microvmId}`);
    expect(["TERMINATING", "TERMINATED"]).toContain(await state(lost.microvmId as string));
    expect(box.claims()).toEqual([]);
  });

  test("a provisioning claim whose owner is alive is left alone, and spares its MicroVM from --orphans", async () => {
    const leaseId = "cbx_0000000000bb";
    writeClaim({
      leaseID: leaseId,
      slug: "in-flight",
      cloudID: "",
      state: "provisioning",
      owner: { pid: process.pid, host: hostname() },
      runInput: { clientToken: leaseId, imageIdentifier: RUNNER_IMAGE() },
      claimedAt: new Date(Date.now() - 5000).toISOString().replace(/\.\d{3}Z$/, "Z"),
    });
    const young = await emu.client().send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE() }));
    try {
      const result = await ok(["cleanup", ...AWS, "--orphans"]);
      expect(result.stderr).toContain(`reason=provisioning by pid ${process.pid}`);
      expect(result.stderr).toContain(
        `skip microvm id=${young.microvmId} reason=may belong to provisioning lease ${leaseId}`,
      );
      expect(await state(young.microvmId as string)).not.toMatch(/TERMINAT/);
    } finally {
      removeClaimFile(leaseId);
      const { TerminateMicrovmCommand } = await import("@aws-sdk/client-lambda-microvms");
      await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: young.microvmId }));
    }
  });

  test("list --remote shows a MicroVM whose claim was deleted, with its age; cleanup --orphans terminates it", async () => {
    const warmup = await ok(["warmup", ...AWS, "--slug", "forgotten"]);
    const vm = microvmOf(warmup.stdout);
    for (const claim of box.claims()) removeClaimFile(claim.leaseID as string);
    expect((await ok(["list", ...AWS])).stdout).toBe("");

    const remote = await ok(["list", ...AWS, "--remote"]);
    expect(remote.stdout).toMatch(
      new RegExp(`^${vm} +orphan +running +1\\.0 +\\S+ orphan=true age=\\S+s$`, "m"),
    );
    const json = JSON.parse((await ok(["list", ...AWS, "--remote", "--json"])).stdout) as {
      CloudID: string;
      labels: Record<string, string>;
    }[];
    expect(json).toHaveLength(1);
    expect(json[0]?.CloudID).toBe(vm);
    expect(json[0]?.labels).toMatchObject({ orphan: "true", state: "running" });
    expect(Number(json[0]?.labels.age_secs)).toBeGreaterThanOrEqual(0);

    const dry = await ok(["cleanup", ...AWS, "--orphans", "--dry-run"]);
    expect(dry.stderr).toMatch(new RegExp(`terminate microvm id=${vm} lease=- reason=orphan age=`));
    expect(await state(vm)).toBe("RUNNING");
    await ok(["cleanup", ...AWS, "--orphans"]);
    await expectNothingRunning();
    expect((await ok(["list", ...AWS, "--remote"])).stdout).toBe("");
  });

  test("--remote and --orphans need the image (exit 3) and touch nothing without it", async () => {
    for (const args of [
      ["list", ...AWS, "--remote"],
      ["cleanup", ...AWS, "--orphans"],
    ]) {
      const result = await crabbox(args, { CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: "" });
      expect(result.code).toBe(3);
      expect(result.stderr).toContain("needs the AWS Lambda MicroVM image");
    }
  });
});
