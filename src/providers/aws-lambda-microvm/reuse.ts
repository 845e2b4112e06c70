import type { Claim } from "../../core/claims.ts";
import { CrabboxError, ExitCode } from "../../core/errors.ts";
import { displayShellArg } from "../../core/shell.ts";
import type { ProviderContext } from "../provider.ts";
import { type ControlPlane, ControlPlaneError, isNotFound, type Microvm } from "./control-plane.ts";
import { RunnerHttpError } from "./http.ts";
import { PROVIDER, type RunnerInfo, recordedRunner } from "./lease.ts";
import { RunnerStreamError } from "./runner-client.ts";

/**
 * Reusing a retained lease (`run --id`) without asking AWS first. The claim already holds what a
 * rerun needs — the MicroVM id and endpoint, the image it runs, and the runner protocol proven at
 * readiness — so a warm rerun goes straight to the data plane with a cached token: one request for
 * an unchanged tree. AWS is asked (GetMicrovm) only when the data plane fails, to tell a MicroVM that
 * is gone (exit 4, with the way out) from one that is alive (its runner is then probed once more).
 */

/** What a ready claim records about its MicroVM: enough to reach the runner without GetMicrovm. */
export interface ClaimedMicrovm {
  microvmId: string;
  endpoint: string;
  imageArn: string;
  imageVersion: string;
  runner: RunnerInfo;
}

/**
 * The claim's MicroVM when the claim can vouch for it: readiness was proven (state `ready`, a runner
 * protocol recorded) and the endpoint and image were recorded from AWS's answer. Anything else —
 * an upstream Go claim, a creator that died mid-readiness, a recovery claim — is undefined: verify.
 */
export function claimedMicrovm(claim: Claim): ClaimedMicrovm | undefined {
  const runner = recordedRunner(claim);
  const labels = claim.labels ?? {};
  if (claim.state !== "ready" || !runner || !claim.cloudID) return undefined;
  const endpoint = labels.endpoint?.trim();
  const imageArn = labels.image_arn?.trim();
  if (!endpoint || !imageArn) return undefined;
  return { microvmId: claim.cloudID, endpoint, imageArn, imageVersion: labels.image_version ?? "", runner };
}

/** Upstream's image identity check: a rotated image blocks reuse (status, list and stop still work). */
export function checkImageIdentity(
  ctx: ProviderContext,
  leaseId: string,
  actual: { imageArn: string; imageVersion: string },
): void {
  const image = (ctx.config.awsLambdaMicroVM.image ?? "").trim();
  const version = ctx.config.awsLambdaMicroVM.imageVersion?.trim();
  if (actual.imageArn !== image || (version && actual.imageVersion !== version)) {
    throw new CrabboxError(`${PROVIDER} image identity mismatch for lease ${leaseId}`, {
      exitCode: ExitCode.leaseNotFound,
      hint: `the lease runs ${actual.imageArn} version ${actual.imageVersion}, the config asks for ${image}${version ? ` version ${version}` : ""}; stop it and start a new one`,
    });
  }
}

/** The lease's MicroVM as AWS sees it now; gone or ended is exit 4 with the way out. */
export async function liveMicrovm(ctx: ProviderContext, plane: ControlPlane, claim: Claim): Promise<Microvm> {
  const id = displayShellArg(claim.slug || claim.leaseID);
  let vm: Microvm;
  try {
    vm = await plane.getMicrovm(claim.cloudID, ctx.signal);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    throw new CrabboxError(`${PROVIDER} lease ${claim.leaseID}: MicroVM ${claim.cloudID} no longer exists`, {
      exitCode: ExitCode.leaseNotFound,
      hint: `forget it with crabbox stop --provider ${PROVIDER} ${id} --aws-lambda-microvm-forget-missing`,
      cause: error,
    });
  }
  if (vm.state === "TERMINATED" || vm.state === "TERMINATING") {
    throw new CrabboxError(
      `${PROVIDER} lease ${claim.leaseID}: MicroVM ${vm.microvmId} is ${vm.state.toLowerCase()}${vm.stateReason ? ` (${vm.stateReason})` : ""}`,
      {
        exitCode: ExitCode.leaseNotFound,
        hint: `stop it with crabbox stop --provider ${PROVIDER} ${id}`,
      },
    );
  }
  return vm;
}

/**
 * Failures that say nothing about the runner itself, only that the way to it failed: a proxy
 * answer without the runner's error body (403 after a token refresh, 404, 502…), a connection that
 * could not be made or timed out, or a token that could not be minted — also when exec wrapped it
 * as a lost stream before any event arrived. A stream cut mid-command is not one: the command ran,
 * and exec's own reattach already handled what could be handled.
 */
export function isDataPlaneFailure(error: unknown): boolean {
  // A stream that never delivered an event (lastSeq 0) is the exec request failing to get through.
  if (error instanceof RunnerStreamError) return error.lastSeq === 0 && isDataPlaneFailure(error.cause);
  if (error instanceof RunnerHttpError) return error.errorBody === undefined && error.status !== 409;
  if (error instanceof ControlPlaneError) return error.operation === "CreateMicrovmAuthToken";
  return error instanceof CrabboxError && /^aws-lambda-microvm runner \S+ failed: /.test(error.message);
}

/** States in which the runner should answer once it has been probed again. */
export function mayRecover(vm: Microvm): boolean {
  return vm.state === "RUNNING" || vm.state === "PENDING";
}

/** The error for a data-plane failure on a MicroVM that is alive but not in a state to serve. */
export function unreachable(claim: Claim, vm: Microvm, cause: unknown): CrabboxError {
  const id = displayShellArg(claim.slug || claim.leaseID);
  const detail = cause instanceof Error ? cause.message : String(cause);
  const hint =
    vm.state === "SUSPENDED" || vm.state === "SUSPENDING"
      ? `resume it with crabbox resume --provider ${PROVIDER} ${id}, then run again`
      : `check it with crabbox status --provider ${PROVIDER} ${id}; stop it with crabbox stop --provider ${PROVIDER} ${id}`;
  return new CrabboxError(
    `${PROVIDER} lease ${claim.leaseID}: the runner on MicroVM ${vm.microvmId} (${vm.state.toLowerCase()}) could not be reached: ${detail}`,
    { exitCode: ExitCode.notReady, hint, cause },
  );
}
