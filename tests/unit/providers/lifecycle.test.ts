import { afterAll, expect, test } from "bun:test";
import { type CrabboxError, ExitCode } from "../../../src/core/errors.ts";
import { parseTimeScale } from "../../../src/providers/aws-lambda-microvm/control-plane.ts";
import {
  currentOwner,
  MAX_DURATION_SECONDS,
  runMicrovmInput,
  stopCommand,
} from "../../../src/providers/aws-lambda-microvm/lease.ts";
import { createProgress } from "../../../src/providers/aws-lambda-microvm/progress.ts";
import { checkRunnerProtocol } from "../../../src/providers/aws-lambda-microvm/readiness.ts";
import { classify, timingJson } from "../../../src/providers/aws-lambda-microvm/timing.ts";
import type { Reporter } from "../../../src/providers/provider.ts";
import { sandbox } from "../config/harness.ts";

const s = sandbox();
afterAll(() => s.cleanup());

const IMAGE = "arn:aws:lambda:eu-west-1:123456789012:microvm-image:crabbox-runner";

test("RunMicrovm input: clientToken = lease id, TTL → maximum duration, idle → auto-resume policy, managed connectors", async () => {
  const config = await s.resolve({ env: { CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: IMAGE } });
  const { input, warnings } = runMicrovmInput(config, "cbx_0123456789ab", "eu-west-1");
  expect(warnings).toEqual([]);
  expect(input).toEqual({
    clientToken: "cbx_0123456789ab",
    imageIdentifier: IMAGE,
    ingressNetworkConnectors: [
      "arn:aws:lambda:eu-west-1:aws:network-connector:aws-network-connector:ALL_INGRESS",
    ],
    egressNetworkConnectors: [
      "arn:aws:lambda:eu-west-1:aws:network-connector:aws-network-connector:INTERNET_EGRESS",
    ],
    maximumDurationInSeconds: 5400,
    idlePolicy: { autoResumeEnabled: true, maxIdleDurationSeconds: 1800, suspendedDurationSeconds: 5400 },
  });
});

test("RunMicrovm input: a TTL over 8h is capped with a warning; version, role and connectors pass through", async () => {
  const ingress = "arn:aws:lambda:eu-west-1:123456789012:network-connector:mine";
  const config = await s.resolve({
    env: {
      CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: IMAGE,
      CRABBOX_AWS_LAMBDA_MICROVM_IMAGE_VERSION: "2.0",
      CRABBOX_AWS_LAMBDA_MICROVM_EXECUTION_ROLE_ARN: "arn:aws:iam::123456789012:role/Runtime",
      CRABBOX_AWS_LAMBDA_MICROVM_INGRESS_CONNECTORS: ingress,
      CRABBOX_TTL: "10h",
      CRABBOX_IDLE_TIMEOUT: "5m",
    },
  });
  const { input, warnings } = runMicrovmInput(config, "cbx_0123456789ab", "eu-west-1");
  expect(input.maximumDurationInSeconds).toBe(MAX_DURATION_SECONDS);
  expect(warnings).toEqual([
    "ttl 10h0m0s exceeds the AWS Lambda MicroVM maximum; the MicroVM ends after 8h0m0s",
  ]);
  expect(input.imageVersion).toBe("2.0");
  expect(input.executionRoleArn).toBe("arn:aws:iam::123456789012:role/Runtime");
  expect(input.ingressNetworkConnectors).toEqual([ingress]);
  expect(input.idlePolicy).toEqual({
    autoResumeEnabled: true,
    maxIdleDurationSeconds: 300,
    suspendedDurationSeconds: 28_800,
  });
});

test("the stop command quotes the lease id as upstream prints it", () => {
  expect(stopCommand("cbx_0123456789ab")).toBe(
    "crabbox stop --provider aws-lambda-microvm 'cbx_0123456789ab'",
  );
});

test("the lease owner is this process on this host and boot", () => {
  const owner = currentOwner();
  expect(owner.pid).toBe(process.pid);
  expect(owner.host.length).toBeGreaterThan(0);
  expect(owner.bootId.length).toBeGreaterThan(0);
  expect(currentOwner().bootId).toBe(owner.bootId);
});

test("runner protocol: the upstream Go runner and old protocols are refused with exit 5", () => {
  expect(checkRunnerProtocol("cbx_0123456789ab", { status: "ok", version: "0.1.0", protocol: 1 })).toBe(1);
  const refused = (health: { status: string; protocol?: number }) => {
    try {
      checkRunnerProtocol("cbx_0123456789ab", health);
    } catch (error) {
      return error as CrabboxError;
    }
    throw new Error("accepted");
  };
  const go = refused({ status: "ok" });
  expect(go.exitCode).toBe(ExitCode.notReady);
  expect(go.message).toContain("upstream Go runner");
  expect(refused({ status: "ok", protocol: 0 }).message).toBe(
    "lease cbx_0123456789ab runs runner protocol 0; rebuild the image or stop it",
  );
});

test("timing JSON: upstream's field order, empty optionals omitted, crabbox's counts last", () => {
  const line = timingJson({
    provider: "aws-lambda-microvm",
    leaseId: "cbx_0123456789ab",
    slug: "",
    syncMs: 12.4,
    syncPhases: [
      { name: "manifest", ms: 3 },
      { name: "diff", ms: 0.2 },
      { name: "upload", skipped: true, reason: "unchanged" },
    ],
    syncSkipped: false,
    syncDelegated: true,
    commandMs: 40,
    totalMs: 99.6,
    exitCode: 7,
    ...classify(7, "exited"),
    syncBytesSent: 0,
    syncFilesWritten: 3,
  });
  expect(line).toBe(
    '{"provider":"aws-lambda-microvm","leaseId":"cbx_0123456789ab","syncMs":12,"syncPhases":[{"name":"manifest","ms":3},{"name":"diff"},{"name":"upload","skipped":true,"reason":"unchanged"}],"syncSkipped":false,"syncDelegated":true,"commandMs":40,"totalMs":100,"endToEndMs":0,"exitCode":7,"runStatus":"failed","errorKind":"command-exit","syncFilesWritten":3}',
  );
  expect(classify(0, "exited")).toEqual({ runStatus: "succeeded" });
  expect(classify(130, "interrupted")).toEqual({ runStatus: "canceled", errorKind: "canceled" });
  expect(classify(0, "error")).toEqual({ runStatus: "failed", errorKind: "provider-error" });
});

test("CRABBOX_TIME_SCALE: a positive number, anything else is 1", () => {
  expect(parseTimeScale("0.05")).toBe(0.05);
  for (const bad of [undefined, "", "0", "-1", "fast", "Infinity"]) expect(parseTimeScale(bad)).toBe(1);
});

/** What a terminal shows after `\r\x1b[2K` erases and rewrites the current line. */
function screen(text: string): string {
  return text
    .split("\n")
    .map((line) => line.split("\r\x1b[2K").at(-1))
    .join("\n");
}

function recorder(): { reporter: Reporter; text: () => string } {
  let out = "";
  const decoder = new TextDecoder();
  return {
    reporter: {
      info: (line) => {
        out += `${line}\n`;
      },
      warn: (line) => {
        out += `warning: ${line}\n`;
      },
      debug: () => {},
      stdout: () => {},
      stderr: (chunk) => {
        out += decoder.decode(chunk);
      },
    },
    text: () => out,
  };
}

test("the spinner leaves no residue: the screen holds exactly the plain lines", () => {
  const { reporter, text } = recorder();
  const progress = createProgress(reporter, true, () => 40);
  progress.phase("provisioning a MicroVM with a rather long description that must be cut");
  progress.report.info("provisioning provider=aws-lambda-microvm lease=cbx_x");
  progress.update("waiting for the runner");
  progress.report.warn("careful");
  progress.stop();
  progress.report.info("leased cbx_x");
  expect(text()).toContain("\r\x1b[2K");
  const spinnerLines = text()
    .split("\r\x1b[2K")
    .map((drawn) => drawn.split("\n")[0] as string)
    .filter((drawn) => /^[\u2800-\u28ff]/.test(drawn));
  expect(spinnerLines.length).toBeGreaterThan(0);
  for (const drawn of spinnerLines) expect(drawn.length).toBeLessThan(40);
  expect(screen(text())).toBe(
    "provisioning provider=aws-lambda-microvm lease=cbx_x\nwarning: careful\nleased cbx_x\n",
  );
});

test("without a TTY (or with CI / NO_COLOR) the spinner draws nothing", () => {
  const { reporter, text } = recorder();
  const progress = createProgress(reporter, false);
  progress.phase("provisioning");
  progress.report.info("plain");
  progress.stop();
  expect(text()).toBe("plain\n");
  expect(progress.report).toBe(reporter);
});
