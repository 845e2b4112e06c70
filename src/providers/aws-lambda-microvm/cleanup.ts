import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { type Claim, readClaim, removeClaim, saveClaim } from "../../core/claims.ts";
import { shouldCleanup } from "../../core/cleanup.ts";
import { CrabboxError, describeError } from "../../core/errors.ts";
import { lockHolder, tryLock } from "../../core/lock.ts";
import { operationLockFile } from "../../core/paths.ts";
import type { CleanupOutcome, CleanupRequest, ProviderContext } from "../provider.ts";
import {
  type ControlPlane,
  controlPlane,
  isNotFound,
  type Microvm,
  type RunMicrovmInput,
} from "./control-plane.ts";
import { forgetToken } from "./data-plane.ts";
import {
  type ClaimView,
  claimViews,
  configuredImage,
  findOrphans,
  MISSING_STATE,
  orphanAge,
} from "./list.ts";
import { spec } from "./spec.ts";
import { isTerminal } from "./status.ts";

/**
 * `crabbox cleanup [--dry-run] [--orphans]` (upstream §2.8, §3.7, plus the crash window upstream
 * left open). Per in-scope claim, in this order:
 *  - its MicroVM is gone or terminated: the claim is stale (forgotten; a missing one only with
 *    forgetMissing, since "not found" can also mean "not visible to these credentials");
 *  - an unkept claim whose owner process is gone — same host and pid dead, or another boot — is
 *    abandoned: a crashed or `kill -9`ed one-shot run; so is any claim, kept or not, whose creator
 *    died while it was still `provisioning` (a warmup killed before readiness). A claim that never got its cloud id is
 *    resolved first by replaying RunMicrovm with the exact stored input and its clientToken, which
 *    returns the MicroVM the lost call created (or makes one) so it can be terminated;
 *  - anything else follows upstream's label decision (keep=true is never swept).
 * `--orphans` then terminates live MicroVMs of the configured image that no local claim knows.
 * A lease whose operation lock is held (a run or stop in progress) is skipped, never waited for.
 */

/** Who created a claim: written by the lease creator before RunMicrovm. */
export interface ClaimOwner {
  pid: number;
  host: string;
  /** Linux boot id; a different one means every process of the old boot is gone. */
  bootId?: string;
}

/** The kernel's id for this boot (Linux); undefined elsewhere, where only the pid is compared. */
export function currentBootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The `owner` field of a claim, when it has a well-formed one. */
export function claimOwner(claim: Claim): ClaimOwner | undefined {
  const owner = claim.owner as Partial<ClaimOwner> | undefined;
  if (!owner || typeof owner !== "object") return undefined;
  if (typeof owner.pid !== "number" || !Number.isSafeInteger(owner.pid) || owner.pid <= 0) return undefined;
  if (typeof owner.host !== "string") return undefined;
  return {
    pid: owner.pid,
    host: owner.host,
    bootId: typeof owner.bootId === "string" ? owner.bootId : undefined,
  };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, it is just not ours to signal.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface OwnerProbe {
  host: string;
  bootId: string | undefined;
  alive: (pid: number) => boolean;
}

export function localProbe(): OwnerProbe {
  return { host: hostname(), bootId: currentBootId(), alive: pidAlive };
}

/**
 * Whether the process that wrote the claim is certainly gone. Another host's process cannot be
 * checked from here, so it counts as alive: cleanup must never kill a colleague's run.
 */
export function ownerGone(owner: ClaimOwner, probe: OwnerProbe = localProbe()): boolean {
  if (owner.host !== probe.host) return false;
  if (owner.bootId && probe.bootId && owner.bootId !== probe.bootId) return true;
  return !probe.alive(owner.pid);
}

function isKept(claim: Claim): boolean {
  return (claim.labels?.keep ?? "").toLowerCase() === "true";
}

/** The stored RunMicrovm input, when the claim carries one that can be replayed as is. */
export function storedRunInput(claim: Claim): RunMicrovmInput | undefined {
  const input = claim.runInput as Partial<RunMicrovmInput> | undefined;
  if (!input || typeof input !== "object") return undefined;
  if (typeof input.clientToken !== "string" || typeof input.imageIdentifier !== "string") return undefined;
  return input as RunMicrovmInput;
}

type Action =
  /** TerminateMicrovm, then forget the claim. */
  | "terminate"
  /** Replay RunMicrovm to learn the cloud id, then terminate and forget. */
  | "replay"
  /** Nothing to terminate (gone already): forget the claim. */
  | "forget"
  | "skip";

interface Decision {
  action: Action;
  reason: string;
}

/** What to do with one claim (pure, given its live view and an owner probe). */
export function decide(
  view: Pick<ClaimView, "claim" | "vm" | "listing">,
  options: { forgetMissing: boolean; now: Date; probe: OwnerProbe },
): Decision {
  const { claim, vm } = view;
  const owner = claimOwner(claim);
  const gone = owner !== undefined && ownerGone(owner, options.probe);
  if (!claim.cloudID) {
    if (owner && !gone) return { action: "skip", reason: `provisioning by pid ${owner.pid}` };
    if (!storedRunInput(claim))
      return { action: "skip", reason: "no cloud id and no recorded RunMicrovm input" };
    if (!owner) return { action: "skip", reason: "no cloud id and no recorded owner" };
    return { action: "replay", reason: `abandoned state=${view.listing.status} owner pid ${owner.pid} gone` };
  }
  if (!vm) {
    return options.forgetMissing
      ? { action: "forget", reason: MISSING_STATE }
      : { action: "skip", reason: `${MISSING_STATE}; --aws-lambda-microvm-forget-missing forgets it` };
  }
  if (isTerminal(vm.state)) return { action: "forget", reason: `state=${vm.state.toLowerCase()}` };
  // A create that died before readiness never handed the lease to anyone, kept or not.
  if (owner && gone && claim.state === "provisioning") {
    return { action: "terminate", reason: `abandoned state=provisioning owner pid ${owner.pid} gone` };
  }
  if (!isKept(claim) && owner) {
    if (gone) return { action: "terminate", reason: `abandoned owner pid ${owner.pid} gone` };
    return { action: "skip", reason: `in use by pid ${owner.pid}` };
  }
  const decision = shouldCleanup(view.listing.labels, options.now);
  return decision.delete
    ? { action: "terminate", reason: decision.reason }
    : { action: "skip", reason: decision.reason };
}

/** Terminate (not-found is fine: the goal is "gone"), drop the cached token, forget the claim. */
async function terminateLease(ctx: ProviderContext, plane: ControlPlane, claim: Claim): Promise<void> {
  try {
    await plane.terminateMicrovm(claim.cloudID, ctx.signal);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  await forgetLease(ctx, plane, claim);
}

async function forgetLease(ctx: ProviderContext, plane: ControlPlane, claim: Claim): Promise<void> {
  if (claim.cloudID) await forgetToken(ctx, plane, claim.cloudID);
  await removeClaim(ctx.stateDir, claim.leaseID);
  ctx.report.info(`released lease=${claim.leaseID} microvm=${claim.cloudID || "-"}`);
}

/**
 * Finishes a create that lost its result: RunMicrovm again with the stored input (same clientToken,
 * so AWS returns the MicroVM the first call made), records the id — so a failed terminate leaves a
 * normal recovery claim — then terminates it.
 */
async function replayAndTerminate(ctx: ProviderContext, plane: ControlPlane, claim: Claim): Promise<void> {
  const input = storedRunInput(claim) as RunMicrovmInput;
  const vm: Microvm = await plane.runMicrovm(input, ctx.signal);
  const updated = await saveClaim(ctx.stateDir, claim.leaseID, (current) => ({
    ...(current ?? claim),
    cloudID: vm.microvmId,
  }));
  ctx.report.info(`recovered lease=${claim.leaseID} microvm=${vm.microvmId} (RunMicrovm replayed)`);
  await terminateLease(ctx, plane, updated);
}

/** Acts on one claim under its operation lock; a held lock means someone is using it right now. */
async function act(
  ctx: ProviderContext,
  plane: ControlPlane,
  claim: Claim,
  action: Exclude<Action, "skip">,
): Promise<string | undefined> {
  const lockPath = operationLockFile(ctx.stateDir, claim.leaseID, spec.name);
  const lock = await tryLock(lockPath);
  if (!lock) return `busy (held by pid ${lockHolder(lockPath) ?? "?"})`;
  try {
    const current = await readClaim(ctx.stateDir, claim.leaseID);
    if (!current) return "already released";
    if (current.revision !== claim.revision) return "changed while cleaning up; run cleanup again";
    if (action === "replay") await replayAndTerminate(ctx, plane, current);
    else if (action === "terminate") await terminateLease(ctx, plane, current);
    else await forgetLease(ctx, plane, current);
    return undefined;
  } finally {
    lock.release();
  }
}

function line(outcome: CleanupOutcome): string {
  const id = outcome.cloudId || "-";
  if (outcome.action === "skip") return `skip microvm id=${id} reason=${outcome.reason}`;
  return `terminate microvm id=${id} lease=${outcome.leaseId ?? "-"} reason=${outcome.reason}`;
}

/** Runs one decided action; returns the outcome, reported before acting as upstream does. */
async function sweepClaim(
  ctx: ProviderContext,
  plane: ControlPlane,
  view: ClaimView,
  decision: Decision,
  dryRun: boolean,
  failures: string[],
): Promise<CleanupOutcome> {
  const { claim } = view;
  const outcome: CleanupOutcome = {
    cloudId: claim.cloudID,
    leaseId: claim.leaseID,
    action: decision.action === "skip" ? "skip" : "terminate",
    reason: decision.reason,
  };
  ctx.report.info(line(outcome));
  if (decision.action === "skip" || dryRun) return outcome;
  try {
    const skipped = await act(ctx, plane, claim, decision.action);
    if (!skipped) return outcome;
    const changed: CleanupOutcome = { ...outcome, action: "skip", reason: skipped };
    ctx.report.info(line(changed));
    return changed;
  } catch (error) {
    // One lease failing must not strand the others; the command still fails at the end.
    failures.push(`${claim.leaseID}: ${describeError(error)}`);
    ctx.report.warn(`cleanup of lease ${claim.leaseID} failed: ${describeError(error)}`);
    return outcome;
  }
}

async function sweepOrphans(
  ctx: ProviderContext,
  plane: ControlPlane,
  image: string,
  pending: readonly { leaseId: string; sinceMs: number }[],
  dryRun: boolean,
  failures: string[],
): Promise<CleanupOutcome[]> {
  const outcomes: CleanupOutcome[] = [];
  for (const orphan of await findOrphans(ctx, plane, image)) {
    const id = orphan.summary.microvmId;
    const started = orphan.summary.startedAtMs;
    const claimant = pending.find((entry) => started === undefined || started >= entry.sinceMs);
    const outcome: CleanupOutcome = claimant
      ? {
          cloudId: id,
          leaseId: undefined,
          action: "skip",
          reason: `may belong to provisioning lease ${claimant.leaseId}`,
        }
      : { cloudId: id, leaseId: undefined, action: "terminate", reason: `orphan age=${orphanAge(orphan)}` };
    ctx.report.info(line(outcome));
    outcomes.push(outcome);
    if (outcome.action === "skip" || dryRun) continue;
    try {
      await plane.terminateMicrovm(id, ctx.signal);
      await forgetToken(ctx, plane, id);
      ctx.report.info(`terminated orphan microvm=${id}`);
    } catch (error) {
      if (isNotFound(error)) continue;
      failures.push(`${id}: ${describeError(error)}`);
      ctx.report.warn(`terminating orphan ${id} failed: ${describeError(error)}`);
    }
  }
  return outcomes;
}

/** Slack for clock skew between this machine and AWS when matching a claim to a MicroVM's start. */
const CLOCK_SLACK_MS = 60_000;

export async function cleanup(ctx: ProviderContext, request: CleanupRequest): Promise<CleanupOutcome[]> {
  const image = request.orphans ? configuredImage(ctx, "cleanup --orphans") : undefined;
  const plane = await controlPlane(ctx);
  const options = {
    forgetMissing: ctx.config.awsLambdaMicroVM.forgetMissing,
    now: new Date(),
    probe: localProbe(),
  };
  const outcomes: CleanupOutcome[] = [];
  const failures: string[] = [];
  // A live create on this machine has a claim but no cloud id yet, so its MicroVM looks like an
  // orphan: spare anything started after such a claim was written.
  const pending: { leaseId: string; sinceMs: number }[] = [];
  for (const view of await claimViews(ctx, plane)) {
    const decision = decide(view, options);
    if (!view.claim.cloudID && (decision.action === "skip" || request.dryRun)) {
      pending.push({
        leaseId: view.claim.leaseID,
        sinceMs: Date.parse(view.claim.claimedAt) - CLOCK_SLACK_MS,
      });
    }
    outcomes.push(await sweepClaim(ctx, plane, view, decision, request.dryRun, failures));
  }
  if (image !== undefined) {
    outcomes.push(...(await sweepOrphans(ctx, plane, image, pending, request.dryRun, failures)));
  }
  if (failures.length > 0) {
    throw new CrabboxError(`cleanup failed for ${failures.length} MicroVM(s): ${failures.join("; ")}`, {
      hint: "the claims are kept; fix the cause and run `crabbox cleanup` again, or `crabbox stop <lease>`",
    });
  }
  return outcomes;
}
