import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUNNER_IMAGE, startEmulator, stopAllEmulators, type TestEmulator } from "../support/emulator.ts";
import { binary, repoRoot, requireBinary } from "./cli-harness.ts";
import { liveMicrovms } from "./provider-run-harness.ts";

/**
 * scripts/live-smoke.sh: the guards touch nothing, failures are classified with upstream's tokens
 * and a created lease is always stopped (checked against a fake crabbox that records its calls),
 * and the full lifecycle against the emulator ends in the emulator classification — never in the
 * live AWS pass.
 */

const script = join(repoRoot, "scripts", "live-smoke.sh");
const IMAGE = "arn:aws:lambda:eu-west-1:123456789012:microvm-image:crabbox-runner";
let root: string;
let fake: string;
let calls: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function smoke(args: string[], env: Record<string, string>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [script, ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: join(root, "home"), NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function lastLine(text: string): string {
  return text.trim().split("\n").at(-1) ?? "";
}

function recorded(): string[] {
  return existsSync(calls) ? readFileSync(calls, "utf8").trim().split("\n").filter(Boolean) : [];
}

/**
 * A stand-in crabbox: records every call, answers doctor with an AWS-mode report, and makes `run`
 * behave as FAKE_RUN says (after announcing the lease, like the real one).
 */
function writeFake(): void {
  writeFileSync(
    fake,
    `#!/usr/bin/env bash
echo "$*" >> "${calls}"
case "$1" in
  doctor) echo '{"ok":true,"provider":"aws-lambda-microvm","checks":[{"status":"ok","check":"credentials","details":{"mode":"aws"}}]}' ;;
  run)
    slug=""; prev=""
    for a in "$@"; do [[ "$prev" == --slug ]] && slug="$a"; prev="$a"; done
    case "\${FAKE_RUN:-ok}" in
      exit7) echo "provisioning provider=aws-lambda-microvm lease=cbx_0123456789ab slug=$slug" >&2; exit 7 ;;
      quota) echo "error: aws-lambda-microvm RunMicrovm cbx_0123456789ab: ServiceQuotaExceededException: too many MicroVMs" >&2; exit 1 ;;
      denied) echo "error: AccessDeniedException: not authorized to perform lambda:RunMicrovm" >&2; exit 1 ;;
    esac ;;
  stop) exit 0 ;;
esac
`,
  );
  chmodSync(fake, 0o755);
}

beforeAll(() => {
  requireBinary();
  root = mkdtempSync(join(tmpdir(), "crabbox-live-smoke-"));
  fake = join(root, "fake-crabbox");
  calls = join(root, "calls.log");
  writeFake();
});

afterAll(async () => {
  await stopAllEmulators();
  rmSync(root, { recursive: true, force: true });
});

const LIVE = {
  CRABBOX_LIVE: "1",
  CRABBOX_LIVE_PROVIDERS: "aws-lambda-microvm",
  CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: IMAGE,
};

describe("guards: nothing is invoked", () => {
  test("--dry-run prints the plan and the first command, exit 0", async () => {
    rmSync(calls, { force: true });
    const result = await smoke(["--dry-run"], { ...LIVE, CRABBOX_BIN: fake });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `classification=dry_run provider=aws-lambda-microvm mutation=false\ncommand=${fake} doctor --provider aws-lambda-microvm --json\n`,
    );
    expect(recorded()).toEqual([]);
  });

  test("without CRABBOX_LIVE=1: environment_blocked, exit 0", async () => {
    rmSync(calls, { force: true });
    const { CRABBOX_LIVE: _, ...rest } = LIVE;
    const result = await smoke([], { ...rest, CRABBOX_BIN: fake });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("classification=environment_blocked reason=set_CRABBOX_LIVE=1\n");
    expect(recorded()).toEqual([]);
  });

  test("without an image, or with the provider not requested: environment_blocked, exit 0", async () => {
    rmSync(calls, { force: true });
    const noImage = await smoke([], { ...LIVE, CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: "", CRABBOX_BIN: fake });
    expect(noImage.code).toBe(0);
    expect(noImage.stdout).toBe(
      "classification=environment_blocked reason=missing_CRABBOX_AWS_LAMBDA_MICROVM_IMAGE\n",
    );
    const other = await smoke([], { ...LIVE, CRABBOX_LIVE_PROVIDERS: "hetzner", CRABBOX_BIN: fake });
    expect(other.code).toBe(0);
    expect(other.stdout).toContain("classification=environment_blocked reason=");
    expect(recorded()).toEqual([]);
  });
});

describe("failure classification (fake crabbox)", () => {
  test("the initial run failing after the lease exists: diagnostic_only, exit 1, and the lease is stopped", async () => {
    rmSync(calls, { force: true });
    const result = await smoke([], { ...LIVE, CRABBOX_BIN: fake, FAKE_RUN: "exit7" });
    expect(result.code).toBe(1);
    expect(lastLine(result.stdout)).toBe("classification=diagnostic_only reason=initial_run_failed");
    const log = recorded();
    expect(log[0]).toBe("doctor --provider aws-lambda-microvm --json");
    const slug = /--slug (lambda-microvm-live-\d{8}-\d+)/.exec(log[1] ?? "")?.[1];
    expect(slug).toBeDefined();
    expect(log.at(-1)).toBe(`stop --provider aws-lambda-microvm --aws-lambda-microvm-forget-missing ${slug}`);
  });

  test("quota is quota_blocked and missing permissions environment_blocked, both exit 0", async () => {
    const quota = await smoke([], { ...LIVE, CRABBOX_BIN: fake, FAKE_RUN: "quota" });
    expect(quota.code).toBe(0);
    expect(lastLine(quota.stdout)).toBe("classification=quota_blocked reason=initial_run_failed");
    const denied = await smoke([], { ...LIVE, CRABBOX_BIN: fake, FAKE_RUN: "denied" });
    expect(denied.code).toBe(0);
    expect(lastLine(denied.stdout)).toBe("classification=environment_blocked reason=initial_run_failed");
  });
});

describe("against the emulator", () => {
  let emu: TestEmulator;
  beforeAll(async () => {
    emu = await startEmulator({ binary: "dist", timeScale: 0.05 });
  });

  test("the whole lifecycle passes as target=emulator, never as a live AWS pass, and leaves nothing running", async () => {
    const home = join(root, "emu-home");
    const result = await smoke([], {
      ...LIVE,
      CRABBOX_BIN: binary,
      CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: RUNNER_IMAGE(),
      CRABBOX_AWS_REGION: "us-east-1",
      CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: emu.url,
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_STATE_HOME: join(home, "state"),
    });
    if (result.code !== 0) throw new Error(`live-smoke failed:\n${result.stdout}\n${result.stderr}`);
    expect(lastLine(result.stdout)).toBe(
      "target=emulator classification=emulator_smoke_passed reason=lifecycle_complete",
    );
    expect(result.stdout).not.toContain("live_aws_lambda_microvm_smoke_passed");
    for (const step of ["doctor", "initial_run", "status_running", "list", "reuse", "pause"]) {
      expect(result.stderr).toContain(`live-smoke: ${step}: `);
    }
    expect(result.stderr).toContain("live-smoke: list_after_stop: ");
    expect(await liveMicrovms(emu)).toEqual([]);
  });

  test("without CRABBOX_LIVE=1 it touches nothing, emulator or not", async () => {
    const before = emu.records().length;
    const result = await smoke([], {
      CRABBOX_BIN: binary,
      CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: RUNNER_IMAGE(),
      CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: emu.url,
    });
    expect(result.stdout).toBe("classification=environment_blocked reason=set_CRABBOX_LIVE=1\n");
    expect(emu.records().length).toBe(before);
  });
});
