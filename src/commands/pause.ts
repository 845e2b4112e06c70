import { defineCommand } from "citty";
import { leaseArgs, providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox pause",
    description: `Suspend a lease's MicroVM; it resumes on the next run or with crabbox resume

Examples:
  crabbox pause api
  crabbox pause --id cbx_0123456789ab`,
  },
  args: { ...leaseArgs, ...providerArgs },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { leaseArgument, prepareLease } = await import("./_context.ts");
    const id = leaseArgument("pause", args, true) as string;
    const { provider, lease, ctx } = await prepareLease("pause", {
      args,
      leaseId: id,
      feature: "pause-resume",
    });
    await (await provider.backend()).pause(ctx, lease);
  },
});
