import type { Claim } from "../../core/claims.ts";
import { formatCompression, parseCompression } from "../../sync/compress.ts";
import { gitIgnored } from "../../sync/local-plan.ts";
import { previewSync, type SyncPreview } from "../../sync/preview.ts";
import { loadRemembered } from "../../sync/remembered.ts";
import { snapshotWithCache } from "../../sync/snapshot.ts";
import type { ProviderContext } from "../provider.ts";
import { controlPlane } from "./control-plane.ts";
import { openRunner } from "./data-plane.ts";
import { claimedMicrovm, isDataPlaneFailure, liveMicrovm, unreachable } from "./reuse.ts";

/**
 * `crabbox sync-plan --id L`: what `run --id L` would send, against the runner's own manifest (one
 * data-plane request, with a cached token), plus how many files the MicroVM holds that crabbox did
 * not sync. It reads; it never syncs, and it takes no lease lock.
 */
export async function syncPlan(ctx: ProviderContext, lease: Claim): Promise<SyncPreview> {
  const compression = formatCompression(parseCompression(ctx.config.sync.compression));
  const snap = await snapshotWithCache({
    cwd: ctx.config.cwd,
    sync: ctx.config.sync,
    stateDir: ctx.stateDir,
    allowLarge: true,
    onCacheError: (error) => ctx.report.debug(`hash cache not saved: ${String(error)}`),
  });
  const workdir = ctx.config.awsLambdaMicroVM.workdir.trim();
  const plane = await controlPlane(ctx);
  const claimed = claimedMicrovm(lease);
  const runner = openRunner(ctx, plane, claimed ?? (await liveMicrovm(ctx, plane, lease)));
  try {
    let remote: Awaited<ReturnType<typeof runner.manifest>>;
    try {
      remote = await runner.manifest(workdir, { unsynced: true });
    } catch (error) {
      if (!claimed || !isDataPlaneFailure(error)) throw error;
      throw unreachable(lease, await liveMicrovm(ctx, plane, lease), error);
    }
    return previewSync(snap, {
      compression,
      ignored: await gitIgnored(snap.manifest.root),
      lease: {
        leaseId: lease.leaseID,
        slug: lease.slug,
        microvmId: lease.cloudID,
        workdir,
        remote,
        remembered: await loadRemembered(ctx.stateDir, lease.cloudID, workdir),
        unsynced: remote.unsynced,
      },
    });
  } finally {
    runner.close();
    plane.close();
  }
}
