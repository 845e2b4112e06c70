import { resolve } from "node:path";
import { defineCommand } from "citty";
import type { CommandData } from "../cli.ts";
import { describeError, usageError } from "../core/errors.ts";
import { warn } from "../core/output.ts";
import { parseRunOptions } from "../core/run-options.ts";
import { requestedSlug } from "../core/slug.ts";
import { attachStdin, localStdin } from "../core/stdin.ts";
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
  crabbox run --sync-only --id api
  crabbox run -- sh < script.sh                    stdin is streamed when it is a pipe or a file
  crabbox run --timeout 10m --json-summary run.json -- make test
  crabbox run --download coverage --require-artifact -- bun test --coverage
  crabbox run --id api --clean -- make build        remove unsynced files (except sync.keep) first`,
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
    stdin: {
      type: "boolean",
      description: "stream local stdin to the command (default: only when it is a pipe or a file)",
      negativeDescription: "give the command an empty stdin",
    },
    timeout: {
      type: "string",
      description: "stop the command after this long and exit 124, e.g. 10m",
      valueHint: "duration",
    },
    download: {
      type: "string",
      description:
        "after the command, fetch files it created or modified: a file, directory or ** glob under the remote cwd, optionally =local (repeatable)",
      valueHint: "remote[=local]",
    },
    "artifact-dir": {
      type: "string",
      description: "where --download puts files (default .crabbox/runs/<run-id>/ at the repo root)",
      valueHint: "dir",
    },
    "require-artifact": {
      type: "boolean",
      description: "fail (exit 7) when a --download matched nothing or only files older than the command",
    },
    "json-summary": {
      type: "string",
      description: "write one JSON object describing the run to this file, whatever the outcome",
      valueHint: "file",
    },
    clean: {
      type: "boolean",
      description: "before the command, remove files in the workdir crabbox did not sync, except sync.keep",
    },
    ...unsupportedArgs,
  },
  async run({ args, rawArgs, data }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { prepare } = await import("./_context.ts");
    const { createRunSummary, newRunId, writeRunSummary, writeRunSummarySync } = await import(
      "../core/run-summary.ts"
    );
    const runId = newRunId();
    const summaryFile = args["json-summary"]?.trim() ? resolve(args["json-summary"].trim()) : undefined;
    const summary = summaryFile ? createRunSummary({ runId }) : undefined;
    let provider: Provider | undefined;
    let signal: AbortSignal | undefined;
    let exitCode: number | undefined;
    let failure: unknown;
    let unregister: (() => void) | undefined;
    try {
      const command = (data as CommandData | undefined)?.rest ?? [];
      const leaseArgument = args.id?.trim() || undefined;
      if (leaseArgument && args.slug !== undefined) {
        throw usageError("--slug only applies when creating a new lease; omit --id or use the existing slug");
      }
      const slug = args.slug === undefined ? undefined : requestedSlug(args.slug);
      if (command.length === 0 && !args["sync-only"])
        throw usageError("usage: crabbox run [flags] -- <command...>");
      const options = parseRunOptions(args, repeatedFlag(rawArgs, "download"), process.cwd());
      const prepared = await prepare("run", {
        args: { ...args, "allow-env": repeatedFlag(rawArgs, "allow-env") },
        leaseId: leaseArgument,
      });
      const { lease, ctx } = prepared;
      provider = prepared.provider;
      signal = ctx.signal;
      for (const flag of Object.keys(unsupportedArgs) as (keyof typeof unsupportedArgs)[]) {
        if (args[flag] !== undefined && args[flag] !== false)
          throw usageError(unsupportedReason(provider, flag));
      }
      if (summaryFile && summary) {
        const name = provider.spec.name;
        // A second Ctrl-C exits at once: the summary is still written, synchronously.
        unregister = ctx.onForcedExit?.(() => {
          writeRunSummarySync(summaryFile, summary.finish({ provider: name, signal: ctx.signal }));
          return undefined;
        });
      }
      const backend = await provider.backend();
      const attach = !args["sync-only"] && attachStdin(options.stdin);
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
        runId,
        stdin: attach ? () => localStdin() : undefined,
        timeoutMs: options.timeoutMs,
        downloads: options.downloads,
        artifactDir: options.artifactDir,
        requireArtifacts: options.requireArtifacts,
        clean: options.clean,
        recorder: summary,
      });
      exitCode = result.exitCode;
      return exitCode;
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      unregister?.();
      if (summaryFile && summary) {
        const outcome = { provider: provider?.spec.name, exitCode, error: failure, signal };
        await writeRunSummary(summaryFile, summary.finish(outcome)).catch((error: unknown) =>
          warn(`--json-summary ${summaryFile} not written: ${describeError(error)}`),
        );
      }
    }
  },
});
