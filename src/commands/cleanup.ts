import { defineCommand } from "citty";
import { providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox cleanup",
    description: `Terminate expired, unkept leases; --dry-run shows what would go

Examples:
  crabbox cleanup --dry-run
  crabbox cleanup
  crabbox cleanup --orphans                      also sweep MicroVMs crabbox made without a local claim`,
  },
  args: {
    ...providerArgs,
    "dry-run": { type: "boolean", description: "print each decision, terminate nothing" },
    orphans: {
      type: "boolean",
      description: "also consider MicroVMs crabbox created that have no local claim",
    },
  },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { prepare } = await import("./_context.ts");
    const { say } = await import("../core/output.ts");
    const dryRun = Boolean(args["dry-run"]);
    const { provider, ctx } = await prepare("cleanup", { args, feature: "cleanup" });
    const outcomes = await (await provider.backend()).cleanup(ctx, {
      dryRun,
      orphans: Boolean(args.orphans),
    });
    const terminated = outcomes.filter((outcome) => outcome.action === "terminate").length;
    say(
      `cleanup ${dryRun ? "would terminate" : "terminated"} ${terminated}, kept ${outcomes.length - terminated}`,
    );
  },
});
