import type { Claim } from "../../core/claims.ts";
import { CrabboxError, ExitCode } from "../../core/errors.ts";
import type { ProviderContext } from "../provider.ts";
import { type ControlPlane, type ControlPlaneError, controlPlane, type Microvm } from "./control-plane.ts";
import { reloadLease, withLeaseLock } from "./lease.ts";
import { sleep } from "./readiness.ts";
import { getLeaseMicrovm, isTerminal, pollInterval } from "./status.ts";

/**
 * `crabbox pause` / `crabbox resume` (upstream §2.7): SuspendMicrovm / ResumeMicrovm under the
 * lease's operation lock, then block until AWS reports SUSPENDED / RUNNING, so a script's next
 * command sees the state it asked for.
 */

/** Upstream's deadline for reaching the target state. */
const TRANSITION_TIMEOUT_MS = 5 * 60_000;
/** Suspend and Resume are idempotent, so repeating one that has not shown after this many polls is safe. */
const RECALL_AFTER_POLLS = 8;

type Target = "SUSPENDED" | "RUNNING";

interface Transition {
  target: Target;
  /** The state the call applies to; any other (PENDING, SUSPENDING) settles by itself first. */
  from: string;
  call: (plane: ControlPlane, microvmId: string, signal: AbortSignal) => Promise<void>;
  /** The line printed on success, upstream's wording. */
  done: string;
}

const PAUSE: Transition = {
  target: "SUSPENDED",
  from: "RUNNING",
  call: (plane, id, signal) => plane.suspendMicrovm(id, signal),
  done: "suspended",
};

const RESUME: Transition = {
  target: "RUNNING",
  from: "SUSPENDED",
  call: (plane, id, signal) => plane.resumeMicrovm(id, signal),
  done: "running",
};

function notReached(vm: Microvm, target: Target): CrabboxError {
  return new CrabboxError(`AWS Lambda MicroVM ${vm.microvmId} did not reach ${target} (state=${vm.state})`, {
    exitCode: ExitCode.notReady,
    hint: vm.stateReason ? `AWS says: ${vm.stateReason}` : undefined,
  });
}

function isConflict(error: unknown): boolean {
  return (error as ControlPlaneError | undefined)?.code === "ConflictException";
}

async function transition(ctx: ProviderContext, lease: Claim, step: Transition): Promise<void> {
  await withLeaseLock(ctx, lease.leaseID, async () => {
    const claim = await reloadLease(ctx, lease.leaseID);
    const plane = await controlPlane(ctx);
    const deadline = Date.now() + TRANSITION_TIMEOUT_MS;
    // Polls since the last call; AWS's state is eventually consistent, so a call may not show yet.
    let sinceCall: number | undefined;
    for (let attempt = 0; ; attempt++) {
      const vm = await getLeaseMicrovm(plane, claim, ctx.signal);
      if (vm.state === step.target) break;
      if (isTerminal(vm.state) || Date.now() > deadline) throw notReached(vm, step.target);
      // Still in the start state long after the call (a concurrent opposite call?): ask again.
      if (vm.state === step.from && (sinceCall === undefined || sinceCall >= RECALL_AFTER_POLLS)) {
        try {
          await step.call(plane, vm.microvmId, ctx.signal);
          sinceCall = 0;
          attempt = -1;
          continue;
        } catch (error) {
          // The state moved between Get and the call: look again.
          if (!isConflict(error)) throw error;
        }
      }
      if (sinceCall !== undefined) sinceCall++;
      await sleep(pollInterval(plane, attempt), ctx.signal);
    }
    ctx.report.info(`${step.done} lease=${claim.leaseID} microvm=${claim.cloudID}`);
  });
}

export function pause(ctx: ProviderContext, lease: Claim): Promise<void> {
  return transition(ctx, lease, PAUSE);
}

export function resume(ctx: ProviderContext, lease: Claim): Promise<void> {
  return transition(ctx, lease, RESUME);
}
