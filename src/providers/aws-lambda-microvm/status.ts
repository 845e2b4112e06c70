import type { Claim } from "../../core/claims.ts";
import { CrabboxError, ExitCode } from "../../core/errors.ts";
import type { LeaseStatus, ProviderContext, StatusRequest } from "../provider.ts";
import { type ControlPlane, controlPlane, isNotFound, type Microvm } from "./control-plane.ts";
import { leaseLabels } from "./list.ts";
import { sleep } from "./readiness.ts";
import { spec } from "./spec.ts";

/**
 * `crabbox status` (upstream §2.4): one GetMicrovm, no claim or label mutation, and no data-plane
 * request — a health probe would count as traffic and wake a suspended MicroVM.
 */

/** A suspended MicroVM counts as ready: it resumes on the next request (auto-resume). */
const READY_STATES = new Set(["RUNNING", "SUSPENDED"]);
const TERMINAL_STATES = new Set(["TERMINATING", "TERMINATED"]);

/** Upstream polls every 2 s; in emulator mode CRABBOX_TIME_SCALE shrinks it like the emulator's clock. */
const POLL_MS = 2000;

export function isTerminal(state: string): boolean {
  return TERMINAL_STATES.has(state.toUpperCase());
}

/** The poll interval: short first (most transitions are quick), then upstream's 2 s, time-scaled. */
export function pollInterval(plane: ControlPlane, attempt: number): number {
  const full = Math.max(20, POLL_MS * plane.timeScale);
  return Math.min(full, 100 * 2 ** attempt);
}

/**
 * GetMicrovm that names the lease when the MicroVM is gone, and says how to forget the claim: a
 * raw ResourceNotFoundException alone would leave the user guessing which lease it was.
 */
export async function getLeaseMicrovm(
  plane: ControlPlane,
  lease: Claim,
  signal: AbortSignal,
): Promise<Microvm> {
  try {
    return await plane.getMicrovm(lease.cloudID, signal);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    const name = lease.slug || lease.leaseID;
    throw new CrabboxError(
      `aws-lambda-microvm lease ${lease.leaseID}: MicroVM ${lease.cloudID} no longer exists`,
      {
        hint: `it was terminated or expired; forget the lease with \`crabbox stop ${name} --aws-lambda-microvm-forget-missing\``,
        cause: error,
      },
    );
  }
}

export function leaseStatus(ctx: ProviderContext, lease: Claim, vm: Microvm): LeaseStatus {
  return {
    id: lease.leaseID,
    slug: lease.slug,
    provider: spec.name,
    target: "linux",
    state: vm.state.toLowerCase(),
    serverId: vm.microvmId,
    serverType: vm.imageVersion,
    host: vm.endpoint,
    network: "public",
    labels: leaseLabels(ctx, lease, vm),
    ready: READY_STATES.has(vm.state.toUpperCase()),
  };
}

export async function status(
  ctx: ProviderContext,
  lease: Claim,
  request: StatusRequest,
): Promise<LeaseStatus> {
  const plane = await controlPlane(ctx);
  let vm = await getLeaseMicrovm(plane, lease, ctx.signal);
  if (!request.wait) return leaseStatus(ctx, lease, vm);
  const deadline = Date.now() + request.waitTimeoutMs;
  for (let attempt = 0; !READY_STATES.has(vm.state); attempt++) {
    if (isTerminal(vm.state)) {
      throw new CrabboxError(
        `lease ${lease.slug || lease.leaseID} reached terminal state ${vm.state.toLowerCase()} before ready`,
        {
          exitCode: ExitCode.notReady,
          hint: vm.stateReason ? `AWS says: ${vm.stateReason}` : "`crabbox stop` forgets the lease",
        },
      );
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new CrabboxError(`timed out waiting for AWS Lambda MicroVM ${vm.microvmId}`, {
        exitCode: ExitCode.notReady,
        hint: `it is still ${vm.state.toLowerCase()}; retry with a longer --wait-timeout`,
      });
    }
    await sleep(Math.min(left, pollInterval(plane, attempt)), ctx.signal);
    vm = await getLeaseMicrovm(plane, lease, ctx.signal);
  }
  return leaseStatus(ctx, lease, vm);
}
