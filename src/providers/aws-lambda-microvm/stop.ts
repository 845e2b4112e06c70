import { type Claim, removeClaim } from "../../core/claims.ts";
import { CrabboxError, describeError } from "../../core/errors.ts";
import type { ProviderContext } from "../provider.ts";
import { controlPlane, isNotFound } from "./control-plane.ts";
import { forgetToken } from "./data-plane.ts";
import { PROVIDER, reloadLease, TERMINATE_TIMEOUT_MS, withLeaseLock } from "./lease.ts";

/**
 * `crabbox stop|release` (upstream §2.6): under the lease's operation lock, TerminateMicrovm, then
 * forget the claim and the cached data-plane token. A MicroVM AWS no longer knows fails the stop
 * unless forgetMissing is on — "not found" can also mean "not visible to these credentials".
 */
export async function stop(ctx: ProviderContext, lease: Claim): Promise<void> {
  await withLeaseLock(ctx, lease.leaseID, async () => {
    const claim = await reloadLease(ctx, lease.leaseID);
    const plane = await controlPlane(ctx);
    try {
      await plane.terminateMicrovm(claim.cloudID, AbortSignal.timeout(TERMINATE_TIMEOUT_MS));
    } catch (error) {
      if (!isNotFound(error)) throw error;
      if (!ctx.config.awsLambdaMicroVM.forgetMissing) {
        throw new CrabboxError(describeError(error), {
          hint: `if the MicroVM is gone for good, forget the lease: crabbox stop --provider ${PROVIDER} ${claim.leaseID} --aws-lambda-microvm-forget-missing`,
          cause: error,
        });
      }
    }
    await removeClaim(ctx.stateDir, claim.leaseID);
    await forgetToken(ctx, plane, claim.cloudID).catch(() => {});
    ctx.report.info(`released lease=${claim.leaseID} microvm=${claim.cloudID}`);
  });
}
