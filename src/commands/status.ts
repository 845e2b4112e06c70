import { defineCommand } from "citty";
import { parseDuration } from "../core/duration.ts";
import { usageError } from "../core/errors.ts";
import { statusJson, statusText } from "../core/views.ts";
import { jsonArg, leaseArgs, providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox status",
    description: `Show a lease's state; --wait blocks until it is ready

Examples:
  crabbox status api
  crabbox status --id cbx_0123456789ab --json
  crabbox status api --wait --wait-timeout 2m`,
  },
  args: {
    ...leaseArgs,
    ...providerArgs,
    ...jsonArg,
    wait: { type: "boolean", description: "wait until the lease is ready (running or suspended)" },
    "wait-timeout": {
      type: "string",
      default: "5m",
      description: "how long --wait waits",
      valueHint: "duration",
    },
  },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { leaseArgument, prepareLease } = await import("./_context.ts");
    const id = leaseArgument("status", args, true) as string;
    const waitTimeoutMs = parseDuration(args["wait-timeout"]);
    if (waitTimeoutMs === undefined || waitTimeoutMs <= 0) {
      throw usageError(`invalid duration "${args["wait-timeout"]}" for --wait-timeout`, "e.g. 5m or 90s");
    }
    const { provider, lease, ctx } = await prepareLease("status", { args, leaseId: id });
    const status = await (await provider.backend()).status(ctx, lease, {
      wait: Boolean(args.wait),
      waitTimeoutMs,
    });
    process.stdout.write(`${args.json ? statusJson(status) : statusText(status)}\n`);
  },
});
