import type { ProviderContext, WarmupRequest, WarmupResult } from "../provider.ts";
import { controlPlane } from "./control-plane.ts";
import { createLease, PROVIDER } from "./lease.ts";
import { createProgress } from "./progress.ts";
import { timingJson } from "./timing.ts";

/**
 * `crabbox warmup`: a ready, retained lease (keep=true whatever `--keep` says, as upstream), so the
 * next `run --id` starts warm. The command prints the `leased …` and `warmup complete` lines.
 */
export async function warmup(ctx: ProviderContext, request: WarmupRequest): Promise<WarmupResult> {
  const started = performance.now();
  const progress = createProgress(ctx.report);
  const warmCtx: ProviderContext = { ...ctx, report: progress.report };
  try {
    const plane = await controlPlane(warmCtx);
    progress.phase("provisioning");
    const lease = await createLease(warmCtx, plane, {
      slug: request.slug,
      keep: true,
      onProgress: (text) => progress.update(text),
    });
    lease.runner.close();
    progress.stop();
    if (request.keepDisabled) warmCtx.report.warn(`${PROVIDER} warmup keeps the MicroVM until explicit stop`);
    const totalMs = performance.now() - started;
    if (request.timingJson) {
      warmCtx.report.info(
        timingJson({
          provider: PROVIDER,
          leaseId: lease.claim.leaseID,
          slug: lease.claim.slug,
          syncMs: 0,
          syncSkipped: false,
          commandMs: 0,
          totalMs,
          exitCode: 0,
          runStatus: "succeeded",
        }),
      );
    }
    return {
      leaseId: lease.claim.leaseID,
      slug: lease.claim.slug,
      cloudId: lease.vm.microvmId,
      scope: ctx.scope,
      imageVersion: lease.vm.imageVersion,
      totalMs,
    };
  } finally {
    progress.stop();
  }
}
