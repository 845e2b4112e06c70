import { readFileSync } from "node:fs";
import { hostname, uptime } from "node:os";
import type { ResolvedConfig } from "../../config/resolve.ts";
import { type Claim, createClaim, newLeaseId, readClaim, removeClaim, saveClaim } from "../../core/claims.ts";
import { formatDuration, wholeSeconds } from "../../core/duration.ts";
import { CrabboxError, describeError, ExitCode, usageError } from "../../core/errors.ts";
import { directLeaseLabels, type Labels, touchLabels } from "../../core/labels.ts";
import { acquireLock, prepareLockFile } from "../../core/lock.ts";
import { operationLockFile } from "../../core/paths.ts";
import { shellQuote } from "../../core/shell.ts";
import type { ProviderContext } from "../provider.ts";
import {
  type ControlPlane,
  ControlPlaneError,
  isNotFound,
  type Microvm,
  type RunMicrovmInput,
} from "./control-plane.ts";
import { forgetToken, openRunner } from "./data-plane.ts";
import { waitReady } from "./readiness.ts";
import type { RunnerClient } from "./runner-client.ts";

/**
 * A lease's life on this machine: the claim is written (state `provisioning`, with its owner and the
 * exact RunMicrovm input) BEFORE RunMicrovm, so a crash at any moment leaves a record `cleanup` can
 * act on; the MicroVM id is added the moment AWS returns it. Any failure after RunMicrovm terminates
 * the MicroVM; if even that fails, the claim stays as a recovery claim and the exact stop command
 * is printed. Everything that changes a lease holds its operation lock.
 */

export const PROVIDER = "aws-lambda-microvm";
/** AWS's ceiling for maximumDurationInSeconds and maxIdleDurationSeconds. */
export const MAX_DURATION_SECONDS = 28_800;
/** Terminations get their own budget: they must run even after Ctrl-C aborted everything else. */
export const TERMINATE_TIMEOUT_MS = 30_000;

/**
 * Who created a lease: cleanup (cleanup.ts `ownerGone`) treats a non-keep lease whose owner is gone
 * as abandoned.
 */
export interface LeaseOwner {
  pid: number;
  host: string;
  /** Linux: the kernel boot id; elsewhere `boot-<epoch seconds of the boot>`. */
  bootId: string;
}

/** `provisioning` until readiness, `ready` after, `recovery` when a termination failed. */
export type LeasePhase = "provisioning" | "ready" | "recovery";

export interface RunnerInfo {
  protocol: number;
  version: string;
}

/** The fields this provider adds to a claim; core/claims.ts keeps them on every rewrite. */
export interface LeaseClaimFields {
  state?: LeasePhase;
  owner?: LeaseOwner;
  /** The exact RunMicrovm input, clientToken included: cleanup replays it to find a lost MicroVM. */
  runInput?: RunMicrovmInput;
  runner?: RunnerInfo;
}

/** The runner a claim recorded at readiness, when it holds a well-formed one. */
export function recordedRunner(claim: Claim): RunnerInfo | undefined {
  const runner = claim.runner as Partial<RunnerInfo> | undefined;
  if (!runner || typeof runner !== "object") return undefined;
  if (typeof runner.protocol !== "number" || typeof runner.version !== "string") return undefined;
  return { protocol: runner.protocol, version: runner.version };
}

function readBootId(): string {
  if (process.platform === "linux") {
    try {
      const id = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
      if (id !== "") return id;
    } catch {
      // Containers without /proc fall through to the uptime estimate.
    }
  }
  return `boot-${Math.round(Date.now() / 1000 - uptime())}`;
}

/** This process as a lease owner. */
export function currentOwner(): LeaseOwner {
  return { pid: process.pid, host: hostname(), bootId: readBootId() };
}

/** The command that releases a lease, as printed in hints (upstream quotes the id). */
export function stopCommand(leaseId: string): string {
  return `crabbox stop --provider ${PROVIDER} ${shellQuote(leaseId)}`;
}

function managedConnector(region: string, name: string): string {
  return `arn:aws:lambda:${region}:aws:network-connector:aws-network-connector:${name}`;
}

export interface RunInputPlan {
  input: RunMicrovmInput;
  /** Lines to print as warnings (a TTL or idle timeout above AWS's maximum was capped). */
  warnings: string[];
}

/** The RunMicrovm input for a new lease (upstream §1.8), clientToken = the lease id. */
export function runMicrovmInput(config: ResolvedConfig, leaseId: string, region: string): RunInputPlan {
  const settings = config.awsLambdaMicroVM;
  const warnings: string[] = [];
  const max = formatDuration(MAX_DURATION_SECONDS * 1000);
  let maximum = wholeSeconds(config.ttl);
  if (maximum > MAX_DURATION_SECONDS) {
    warnings.push(
      `ttl ${formatDuration(config.ttl)} exceeds the AWS Lambda MicroVM maximum; the MicroVM ends after ${max}`,
    );
  }
  if (maximum <= 0 || maximum > MAX_DURATION_SECONDS) maximum = MAX_DURATION_SECONDS;
  const input: RunMicrovmInput = {
    clientToken: leaseId,
    imageIdentifier: (settings.image ?? "").trim(),
    ingressNetworkConnectors:
      settings.ingressConnectors.length > 0
        ? [...settings.ingressConnectors]
        : [managedConnector(region, "ALL_INGRESS")],
    egressNetworkConnectors:
      settings.egressConnectors.length > 0
        ? [...settings.egressConnectors]
        : [managedConnector(region, "INTERNET_EGRESS")],
    maximumDurationInSeconds: maximum,
  };
  const version = settings.imageVersion?.trim();
  if (version) input.imageVersion = version;
  const role = settings.executionRoleArn?.trim();
  if (role) input.executionRoleArn = role;
  let idle = wholeSeconds(config.idleTimeout);
  if (idle > MAX_DURATION_SECONDS) {
    warnings.push(
      `idle timeout ${formatDuration(config.idleTimeout)} exceeds the AWS Lambda MicroVM maximum; capped at ${max}`,
    );
    idle = MAX_DURATION_SECONDS;
  }
  if (idle > 0) {
    input.idlePolicy = {
      autoResumeEnabled: true,
      maxIdleDurationSeconds: idle,
      suspendedDurationSeconds: maximum,
    };
  }
  return { input, warnings };
}

/** Labels with the live MicroVM facts upstream records unsanitised (§3.5). */
export function withMicrovmLabels(labels: Labels, vm: Microvm, region: string): Labels {
  return {
    ...labels,
    state: vm.state.toLowerCase(),
    aws_region: region,
    image_arn: vm.imageArn,
    image_version: vm.imageVersion,
    endpoint: vm.endpoint,
  };
}

/**
 * Holds the lease's operation lock for `fn` (run --id, pause, resume, stop). A waiter prints
 * `waiting for lease L (held by pid N)` once; Ctrl-C ends the wait.
 */
export async function withLeaseLock<T>(
  ctx: ProviderContext,
  leaseId: string,
  fn: () => Promise<T>,
): Promise<T> {
  if (!leaseId.startsWith("cbx_") || leaseId.length <= 4 || /[/\\]/.test(leaseId)) {
    throw usageError(`invalid ${PROVIDER} lease id "${leaseId}"`);
  }
  const lock = await acquireLock(operationLockFile(ctx.stateDir, leaseId, PROVIDER), {
    signal: ctx.signal,
    onWait: (pid) =>
      ctx.report.info(
        `waiting for lease ${leaseId} (held by ${pid === undefined ? "another process" : `pid ${pid}`})`,
      ),
  });
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** The claim again, under the lock: gone, out of scope or without a MicroVM is "not found" (exit 4). */
export async function reloadLease(ctx: ProviderContext, leaseId: string): Promise<Claim> {
  const claim = await readClaim(ctx.stateDir, leaseId);
  if (!claim || claim.provider !== PROVIDER || claim.providerScope !== ctx.scope || !claim.cloudID) {
    throw new CrabboxError(`${PROVIDER} lease not found: ${leaseId}`, {
      exitCode: ExitCode.leaseNotFound,
      hint: "it was stopped or released while this command waited; `crabbox list` shows what is left",
    });
  }
  return claim;
}

/**
 * Terminates a MicroVM crabbox no longer wants and forgets it; not-found counts as done. When the
 * termination fails, the claim becomes a recovery claim (keep=false, so cleanup sweeps it once this
 * process is gone) and the exact stop command is printed. Returns the termination error, if any.
 */
export async function terminateOrRecover(
  ctx: ProviderContext,
  plane: ControlPlane,
  leaseId: string,
  microvmId: string,
  context: "rollback" | "release",
): Promise<Error | undefined> {
  let failure: Error | undefined;
  try {
    await plane.terminateMicrovm(microvmId, AbortSignal.timeout(TERMINATE_TIMEOUT_MS));
  } catch (error) {
    if (!isNotFound(error)) failure = error instanceof Error ? error : new Error(String(error));
  }
  if (!failure) {
    await removeClaim(ctx.stateDir, leaseId);
    await forgetToken(ctx, plane, microvmId).catch(() => {});
    return undefined;
  }
  const what = context === "rollback" ? "rollback termination" : "termination";
  try {
    await saveClaim(ctx.stateDir, leaseId, (current) => {
      if (!current) throw new Error(`claim ${leaseId} vanished`);
      return { ...current, state: "recovery", labels: { ...(current.labels ?? {}), keep: "false" } };
    });
    ctx.report.warn(
      `${what} failed for AWS Lambda MicroVM ${microvmId}; recovery claim ${leaseId} remains for cleanup: ${describeError(failure)}; retry with ${stopCommand(leaseId)}`,
    );
  } catch (persist) {
    ctx.report.warn(
      `${what} failed for AWS Lambda MicroVM ${microvmId} and recovery claim ${leaseId} could not be persisted: ${describeError(failure)}; ${describeError(persist)}; terminate the MicroVM manually`,
    );
  }
  return failure;
}

/** Failures that prove a request never reached AWS: no credentials, no connection. */
const NOT_SENT = /^(CredentialsProviderError|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)$/;

/** Whether a failed call may still have been executed by AWS (it got no answer, e.g. a reset). */
function mayHaveReachedAws(error: unknown): boolean {
  if (!(error instanceof ControlPlaneError)) return true;
  return error.status === undefined && !NOT_SENT.test(error.code);
}

export interface CreateLeaseOptions {
  /** Requested, normalised slug; undefined = generated. */
  slug: string | undefined;
  /** The `keep` label: warmup and --keep leases are never swept by cleanup. */
  keep: boolean;
  onProgress?: (text: string) => void;
}

export interface Lease {
  claim: Claim;
  vm: Microvm;
  runner: RunnerClient;
}

/**
 * Creates a ready lease: claim, RunMicrovm, claim += MicroVM id, readiness, claim = ready. Prints
 * the `provisioning …` line. Ctrl-C or any failure after RunMicrovm terminates the MicroVM.
 */
export async function createLease(
  ctx: ProviderContext,
  plane: ControlPlane,
  options: CreateLeaseOptions,
): Promise<Lease> {
  const { config, scope, stateDir, report } = ctx;
  const leaseId = newLeaseId();
  const { input, warnings } = runMicrovmInput(config, leaseId, scope);
  for (const warning of warnings) report.warn(warning);
  const idleSeconds = wholeSeconds(config.idleTimeout);
  const created = await createClaim(stateDir, {
    leaseID: leaseId,
    slug: options.slug,
    provider: PROVIDER,
    providerScope: scope,
    repoRoot: config.repoRoot,
    idleTimeoutSeconds: idleSeconds,
    extra: { state: "provisioning", owner: currentOwner(), runInput: input } satisfies LeaseClaimFields,
  });
  const labels = {
    ...directLeaseLabels({
      provider: PROVIDER,
      leaseId,
      slug: created.slug,
      keep: options.keep,
      now: new Date(),
      idleMs: config.idleTimeout,
      ttlMs: input.maximumDurationInSeconds * 1000,
    }),
    state: "provisioning",
  };
  let claim: Claim;
  try {
    claim = await saveClaim(stateDir, leaseId, (current) => ({ ...(current ?? created), labels }));
    // Made now, while there is room: stop and cleanup must be able to lock it on a full disk.
    prepareLockFile(operationLockFile(stateDir, leaseId, PROVIDER));
  } catch (error) {
    // Nothing was asked of AWS yet (a full state directory, say): a claim left here would only
    // make cleanup replay a RunMicrovm that never happened.
    await removeClaim(stateDir, leaseId).catch(() => {});
    throw error;
  }
  report.info(
    `provisioning provider=${PROVIDER} lease=${leaseId} slug=${claim.slug} region=${scope} image=${input.imageIdentifier} keep=${options.keep}`,
  );
  options.onProgress?.(`provisioning ${claim.slug}`);

  let vm: Microvm;
  try {
    // Not abortable: once sent, AWS may create the MicroVM whatever happens here, so crabbox waits
    // for the answer and then rolls back, instead of losing track of a MicroVM it paid for.
    vm = await plane.runMicrovm(input);
  } catch (error) {
    if (!mayHaveReachedAws(error)) {
      // AWS answered with an error, or the request never left: no MicroVM exists, nothing to keep.
      await removeClaim(stateDir, leaseId);
    } else {
      report.warn(
        `RunMicrovm for lease ${leaseId} got no answer; its claim stays so \`crabbox cleanup\` can find and terminate any MicroVM it made`,
      );
    }
    throw error;
  }

  try {
    claim = await saveClaim(stateDir, leaseId, (current) => ({
      ...(current ?? claim),
      cloudID: vm.microvmId,
      labels: withMicrovmLabels(current?.labels ?? labels, vm, scope),
    }));
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const runner = openRunner(ctx, plane, vm);
    const ready = await waitReady(plane, vm, runner, {
      leaseId,
      signal: ctx.signal,
      onProgress: options.onProgress,
    });
    claim = await saveClaim(stateDir, leaseId, (current) => ({
      ...(current ?? claim),
      state: "ready",
      runner: { protocol: ready.health.protocol, version: ready.health.version ?? "" },
      labels: withMicrovmLabels(current?.labels ?? labels, ready.vm, scope),
    }));
    return { claim, vm: ready.vm, runner };
  } catch (error) {
    await terminateOrRecover(ctx, plane, leaseId, vm.microvmId, "rollback");
    throw error;
  }
}

/** Labels refreshed for a lease in use (upstream touch): live state, last touch, expiry. */
export function touchLease(claim: Claim, state: string, config: ResolvedConfig): Labels {
  return touchLabels(claim.labels ?? {}, {
    now: new Date(),
    state: state.toLowerCase(),
    idleMs: config.idleTimeout,
    ttlMs: config.ttl,
  });
}
