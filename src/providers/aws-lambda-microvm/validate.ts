import { posix } from "node:path";
import type { ResolvedConfig } from "../../config/resolve.ts";
import { CrabboxError, ExitCode, usageError } from "../../core/errors.ts";
import { TOO_BROAD_WORKDIRS } from "../../protocol/paths.ts";
import type { CommandName } from "../provider.ts";

/**
 * Provider validation in upstream's order (§1.7); the first failure wins and carries upstream's
 * message. Unlike upstream, a missing image only fails the commands that create or probe a
 * MicroVM: stop, status, list, pause, resume and cleanup work from the lease claim alone.
 */

const REGION_RE = /^[a-z]{2}(-gov)?-[a-z]+-\d+$/;

const IMAGE_COMMANDS: ReadonlySet<CommandName> = new Set(["run", "warmup", "doctor"]);

export interface Arn {
  partition: string;
  service: string;
  region: string;
  account: string;
  resource: string;
}

/** Go's arn.Parse: `arn:` prefix, split on `:` into at most 6 parts, exactly 6 required. */
export function parseArn(text: string): Arn | undefined {
  if (!text.startsWith("arn:")) return undefined;
  const parts: string[] = [];
  let rest = text;
  while (parts.length < 5) {
    const index = rest.indexOf(":");
    if (index === -1) return undefined;
    parts.push(rest.slice(0, index));
    rest = rest.slice(index + 1);
  }
  const [, partition, service, region, account] = parts as [string, string, string, string, string];
  return { partition, service, region, account, resource: rest };
}

/** Whether `text` is an ARN of `service` whose resource starts with `prefix` (and in `region`, if given). */
export function arnMatches(text: string, service: string, prefix: string, region?: string): boolean {
  const arn = parseArn(text);
  if (arn === undefined || arn.service !== service || !arn.resource.startsWith(prefix)) return false;
  return region === undefined || arn.region === region;
}

function isCleanAbsolute(workdir: string): boolean {
  if (!workdir.startsWith("/") || workdir.includes("\0")) return false;
  const clean = posix.normalize(workdir);
  const withoutSlash = clean.length > 1 ? clean.replace(/\/+$/, "") : clean;
  return withoutSlash === workdir;
}

function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "");
  return bare === "localhost" || bare === "::1" || /^127(\.\d{1,3}){3}$/.test(bare);
}

function validateEndpoint(endpoint: string): void {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw usageError(
      `invalid AWS Lambda MicroVM endpoint "${endpoint}": not a URL`,
      "e.g. http://127.0.0.1:4010",
    );
  }
  const plainLoopback = url.protocol === "http:" && isLoopbackHost(url.hostname);
  if (url.protocol !== "https:" && !plainLoopback) {
    throw usageError(
      `invalid AWS Lambda MicroVM endpoint "${endpoint}": use https, or plain http only on a loopback address`,
    );
  }
  if (url.username || url.password) {
    throw usageError(
      `invalid AWS Lambda MicroVM endpoint "${endpoint}": credentials in the URL are not allowed`,
    );
  }
}

export function validate(config: ResolvedConfig, command: CommandName): void {
  const settings = config.awsLambdaMicroVM;
  const rawRegion = config.aws.region;
  const region = rawRegion.trim();
  if (!REGION_RE.test(region)) {
    throw usageError(
      `invalid AWS Lambda MicroVM region "${rawRegion}"`,
      "a region looks like eu-west-1; set --aws-lambda-microvm-region, CRABBOX_AWS_REGION or aws.region",
    );
  }
  const image = settings.image?.trim() ?? "";
  if (image === "" && IMAGE_COMMANDS.has(command)) {
    throw new CrabboxError(
      "AWS Lambda MicroVM image is required; set CRABBOX_AWS_LAMBDA_MICROVM_IMAGE or --aws-lambda-microvm-image",
      {
        exitCode: ExitCode.imageNotConfigured,
        hint: "or set awsLambdaMicroVM.image in your user config or crabbox.yaml (see docs/config.md)",
      },
    );
  }
  if (image !== "" && !arnMatches(image, "lambda", "microvm-image:", region)) {
    throw usageError(
      `invalid AWS Lambda MicroVM image ARN for region ${region}`,
      `expected arn:aws:lambda:${region}:<account>:microvm-image:<name>, got ${image}`,
    );
  }
  const role = settings.executionRoleArn?.trim() ?? "";
  if (role !== "" && !arnMatches(role, "iam", "role/")) {
    throw usageError(
      "invalid AWS Lambda MicroVM execution role ARN",
      `expected arn:aws:iam::<account>:role/<name>, got ${role}`,
    );
  }
  const workdir = settings.workdir.trim();
  if (workdir === "" || !isCleanAbsolute(workdir)) {
    throw usageError(
      "aws-lambda-microvm workdir must be a clean absolute path below /",
      `got "${settings.workdir}"`,
    );
  }
  if (TOO_BROAD_WORKDIRS.has(workdir)) {
    throw usageError(`aws-lambda-microvm workdir "${workdir}" is too broad; choose a dedicated subdirectory`);
  }
  if (config.idleTimeout > 0 && config.idleTimeout < 60_000) {
    throw usageError("aws-lambda-microvm idle timeout must be at least 60s");
  }
  for (const [direction, connectors] of [
    ["ingress", settings.ingressConnectors],
    ["egress", settings.egressConnectors],
  ] as const) {
    for (const connector of connectors) {
      if (!arnMatches(connector, "lambda", "network-connector:", region)) {
        throw usageError(
          `invalid AWS Lambda MicroVM ${direction} connector: expected Lambda network-connector ARN in region ${region}`,
          `got ${connector}`,
        );
      }
    }
  }
  if (settings.endpoint !== undefined) validateEndpoint(settings.endpoint);
}
