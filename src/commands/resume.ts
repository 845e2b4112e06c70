import { defineCommand } from "citty";
import { leaseArgs, providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox resume",
    description: `Resume a suspended lease's MicroVM

Examples:
  crabbox resume api
  crabbox resume --id cbx_0123456789ab`,
  },
  args: { ...leaseArgs, ...providerArgs },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { leaseArgument, prepareLease } = await import("./_context.ts");
    const id = leaseArgument("resume", args, true) as string;
    const { provider, lease, ctx } = await prepareLease("resume", {
      args,
      leaseId: id,
      feature: "pause-resume",
    });
    await (await provider.backend()).resume(ctx, lease);
  },
});
