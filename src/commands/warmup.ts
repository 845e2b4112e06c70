import { defineCommand } from "citty";
import { formatDuration } from "../core/duration.ts";
import { requestedSlug } from "../core/slug.ts";
import { leaseCreationArgs, providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox warmup",
    description: `Create a retained MicroVM lease now, so later runs start warm

Examples:
  crabbox warmup --slug api
  crabbox warmup --slug api --ttl 4h --idle-timeout 15m
  crabbox run --id api -- bun test`,
  },
  args: {
    ...providerArgs,
    ...leaseCreationArgs,
    keep: {
      type: "boolean",
      default: true,
      description: "warmup always keeps the lease until `crabbox stop`",
    },
  },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { prepare } = await import("./_context.ts");
    const slug = args.slug === undefined ? undefined : requestedSlug(args.slug);
    const { provider, ctx } = await prepare("warmup", { args });
    const backend = await provider.backend();
    const lease = await backend.warmup(ctx, {
      slug,
      reclaim: Boolean(args.reclaim),
      timingJson: Boolean(args["timing-json"]),
      keepDisabled: args.keep === false,
    });
    process.stdout.write(
      `leased ${lease.leaseId} slug=${lease.slug} provider=${provider.spec.name} microvm=${lease.cloudId} region=${lease.scope} image_version=${lease.imageVersion}\n` +
        `warmup complete total=${formatDuration(lease.totalMs)}\n`,
    );
  },
});
