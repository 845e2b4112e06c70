import { defineCommand } from "citty";
import { jsonArg, leaseIdArg, providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox sync-plan",
    description: `Show what a run would sync: counts, bytes, top directories, exclusions (read-only)

Without --id nothing remote is touched: the plan is a new MicroVM's first sync. With --id it is the
delta against that lease's workdir, and how many files exist there that crabbox did not sync.

Examples:
  crabbox sync-plan
  crabbox sync-plan --json
  crabbox sync-plan --id api`,
  },
  args: { ...leaseIdArg, ...providerArgs, ...jsonArg },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, git and hashing.
    const { leaseArgument, prepareLease } = await import("./_context.ts");
    const { previewText } = await import("../sync/preview.ts");
    const id = leaseArgument("sync-plan", { id: args.id }, false);
    let preview: import("../sync/preview.ts").SyncPreview;
    if (id === undefined) {
      const { localSyncPlan } = await import("../sync/local-plan.ts");
      preview = await localSyncPlan();
    } else {
      const { provider, lease, ctx } = await prepareLease("sync-plan", { args, leaseId: id });
      preview = await (await provider.backend()).syncPlan(ctx, lease);
    }
    process.stdout.write(args.json ? `${JSON.stringify(preview, null, 2)}\n` : previewText(preview));
  },
});
