import { defineCommand } from "citty";
import type { CommandData } from "../cli.ts";
import { usageError } from "../core/errors.ts";
import { requestedSlug } from "../core/slug.ts";
import type { Provider } from "../providers/provider.ts";
import { leaseCreationArgs, leaseIdArg, providerArgs, repeatedFlag } from "./_args.ts";

/** Upstream options that cannot work here; accepted by the parser only to refuse them with the reason. */
const unsupportedArgs = {
  desktop: { type: "boolean", description: "unsupported here (no desktop/VNC)" },
  browser: { type: "boolean", description: "unsupported here (no browser access)" },
  code: { type: "boolean", description: "unsupported here (no code-server access)" },
  tailscale: { type: "boolean", description: "unsupported here (no Tailscale)" },
  checksum: { type: "boolean", description: "unsupported here (sync is delegated)" },
  "full-resync": { type: "boolean", description: "unsupported here (sync is delegated)" },
  script: { type: "string", description: "unsupported here; pass the command after --", valueHint: "file" },
  download: { type: "string", description: "unsupported here (no artifact download)", valueHint: "path" },
} as const;

function unsupportedReason(provider: Provider, flag: keyof typeof unsupportedArgs): string {
  const name = provider.spec.name;
  switch (flag) {
    case "desktop":
      return `desktop/VNC is not supported for provider=${name}`;
    case "browser":
      return `browser access is not supported for provider=${name}`;
    case "code":
      return `code access is not supported for provider=${name}`;
    case "tailscale":
      return `provider=${name} does not support Tailscale options`;
    case "checksum":
    case "full-resync":
      return `${name} delegates sync; --${flag} is not supported`;
    default:
      return `${name} delegates run execution; --${flag} is not supported`;
  }
}

export default defineCommand({
  meta: {
    name: "crabbox run",
    description: `Run a command in a MicroVM: sync the checkout, stream output, exit with the command's code

Examples:
  crabbox run -- bun test
  crabbox run --keep --slug api -- make test        keep the MicroVM as lease "api"
  crabbox run --id api --shell 'make lint && make test'
  crabbox run --id api --no-sync -- ls -la
  crabbox run --sync-only --id api`,
  },
  args: {
    ...providerArgs,
    ...leaseCreationArgs,
    ...leaseIdArg,
    keep: { type: "boolean", description: "keep a new MicroVM after the command (a retained lease)" },
    "keep-on-failure": {
      type: "boolean",
      description: "keep a new MicroVM only if sync or the command fails",
    },
    shell: {
      type: "boolean",
      description: "join the command words with spaces and run them as a shell script",
    },
    sync: {
      type: "boolean",
      default: true,
      description: "sync the checkout first",
      negativeDescription: "skip sync",
    },
    "sync-only": { type: "boolean", description: "sync, print `synced <workdir>`, and run nothing" },
    "force-sync-large": { type: "boolean", description: "allow a sync over the size limits" },
    "allow-env": {
      type: "string",
      description: "forward these local environment variables (repeatable, comma list, PREFIX*)",
      valueHint: "NAME",
    },
    cwd: {
      type: "string",
      description: "remote working directory, relative to the synced checkout",
      valueHint: "dir",
    },
    ...unsupportedArgs,
  },
  async run({ args, rawArgs, data }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { prepare } = await import("./_context.ts");
    const command = (data as CommandData | undefined)?.rest ?? [];
    const leaseArgument = args.id?.trim() || undefined;
    if (leaseArgument && args.slug !== undefined) {
      throw usageError("--slug only applies when creating a new lease; omit --id or use the existing slug");
    }
    const slug = args.slug === undefined ? undefined : requestedSlug(args.slug);
    if (command.length === 0 && !args["sync-only"])
      throw usageError("usage: crabbox run [flags] -- <command...>");
    const { provider, lease, ctx } = await prepare("run", {
      args: { ...args, "allow-env": repeatedFlag(rawArgs, "allow-env") },
      leaseId: leaseArgument,
    });
    for (const flag of Object.keys(unsupportedArgs) as (keyof typeof unsupportedArgs)[]) {
      if (args[flag] !== undefined && args[flag] !== false)
        throw usageError(unsupportedReason(provider, flag));
    }
    const backend = await provider.backend();
    const result = await backend.run(ctx, {
      command,
      shell: Boolean(args.shell),
      lease,
      leaseArgument,
      slug,
      keep: Boolean(args.keep),
      keepOnFailure: Boolean(args["keep-on-failure"]),
      sync: args.sync !== false,
      syncOnly: Boolean(args["sync-only"]),
      reclaim: Boolean(args.reclaim),
      timingJson: Boolean(args["timing-json"]),
      cwd: args.cwd,
    });
    return result.exitCode;
  },
});
