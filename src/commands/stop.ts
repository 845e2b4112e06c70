import { defineCommand } from "citty";
import { leaseArgs, providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox stop",
    description: `Terminate a lease's MicroVM and forget its claim (alias: release)

Examples:
  crabbox stop api
  crabbox stop --id cbx_0123456789ab
  crabbox stop api --aws-lambda-microvm-forget-missing   also forget a lease whose MicroVM is gone`,
  },
  args: { ...leaseArgs, ...providerArgs },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { leaseArgument, prepareLease } = await import("./_context.ts");
    const id = leaseArgument("stop", args, true) as string;
    const { provider, lease, ctx } = await prepareLease("stop", { args, leaseId: id });
    await (await provider.backend()).stop(ctx, lease);
  },
});
