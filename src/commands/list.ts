import { defineCommand } from "citty";
import { listingObject, listingText } from "../core/views.ts";
import { jsonArg, providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox list",
    description: `List this machine's leases in the current region with their live state

Examples:
  crabbox list
  crabbox list --json | jq -r '.[].name'
  crabbox list --remote                          also MicroVMs crabbox made without a local claim`,
  },
  args: {
    ...providerArgs,
    ...jsonArg,
    remote: { type: "boolean", description: "also list MicroVMs crabbox created that have no local claim" },
  },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { prepare } = await import("./_context.ts");
    const { provider, ctx } = await prepare("list", { args });
    const listings = await (await provider.backend()).list(ctx, { remote: Boolean(args.remote) });
    if (args.json) {
      process.stdout.write(
        `${JSON.stringify(listings.map((entry) => listingObject(provider.spec.name, entry)))}\n`,
      );
      return;
    }
    for (const entry of listings) process.stdout.write(`${listingText(entry)}\n`);
  },
});
