import { type ResolvedConfig, resolveConfig } from "../config/resolve.ts";
import { type Claim, listClaims, matchClaims, readClaim, resolveLease } from "../core/claims.ts";
import { CrabboxError, usageError } from "../core/errors.ts";
import { installInterrupts } from "../core/interrupt.ts";
import { debug, say, warn } from "../core/output.ts";
import { stateDir } from "../core/paths.ts";
import {
  type CommandName,
  hasFeature,
  type Provider,
  type ProviderContext,
  type ProviderFeature,
  type Reporter,
} from "../providers/provider.ts";
import { getProvider, noProviderSelected, type ProviderSelectionSource } from "../providers/registry.ts";

/**
 * The one path every provider command takes before its backend runs: resolve the config, select
 * the provider (flag > lease context > environment > config file), validate, and resolve the lease
 * the command names. Commands stay parse → prepare → backend → output.
 */

export interface Prepared {
  config: ResolvedConfig;
  provider: Provider;
  selection: ProviderSelectionSource;
  /** The claim the command's `--id`/positional names, resolved in the current scope. */
  lease: Claim | undefined;
  ctx: ProviderContext;
}

export interface PrepareOptions {
  /** Parsed citty args; provider flags among them override config. */
  args: Readonly<Record<string, unknown>>;
  /** The lease identifier the command was given, if it takes one. */
  leaseId?: string;
  /** A feature the provider must declare, checked before anything else happens. */
  feature?: ProviderFeature;
}

const stderrReporter: Reporter = {
  info: say,
  warn,
  debug,
  stdout: (chunk) => process.stdout.write(chunk),
  stderr: (chunk) => process.stderr.write(chunk),
};

function fileSource(config: ResolvedConfig): ProviderSelectionSource {
  return config.sources.provider.source === "repo" ? "repo_config" : "user_config";
}

async function selectProvider(
  config: ResolvedConfig,
  state: string,
  leaseId: string | undefined,
): Promise<{ provider: Provider; selection: ProviderSelectionSource }> {
  const source = config.sources.provider.source;
  if (source === "flag" && config.provider)
    return { provider: getProvider(config.provider), selection: "flag" };
  if (leaseId) {
    // A claim knows its provider, so `crabbox stop blue-crab` needs no --provider (upstream lease_context).
    const direct = await readClaim(state, leaseId.trim());
    const matches = direct ? [direct] : matchClaims(await listClaims(state), leaseId);
    const names = [...new Set(matches.map((claim) => claim.provider))];
    if (names.length > 1) {
      throw usageError(
        `lease identifier ${leaseId} matches local claims from multiple providers; use a canonical lease id or pass --provider`,
      );
    }
    if (names[0]) return { provider: getProvider(names[0]), selection: "lease_context" };
  }
  if (config.provider) {
    return {
      provider: getProvider(config.provider),
      selection: source === "env" ? "environment" : fileSource(config),
    };
  }
  return noProviderSelected();
}

/** Generic checks for commands that create a lease (upstream §1.7, "lease-creating commands"). */
function validateLeaseCreation(
  config: ResolvedConfig,
  provider: Provider,
  args: Readonly<Record<string, unknown>>,
) {
  if (config.ttl <= 0) throw usageError("ttl must be positive");
  if (config.idleTimeout <= 0) throw usageError("idle timeout must be positive");
  const arch = String(args.arch ?? process.env.CRABBOX_ARCH ?? "").trim();
  const arches = provider.spec.targets.map((target) => target.arch as string);
  if (arch !== "" && !arches.includes(arch)) {
    throw usageError(`provider=${provider.spec.name} supports architecture=${arches.join(",")} only`);
  }
}

export async function prepare(command: CommandName, options: PrepareOptions): Promise<Prepared> {
  const config = await resolveConfig({ flags: options.args });
  const state = stateDir();
  const { provider, selection } = await selectProvider(config, state, options.leaseId);
  if (options.feature && !hasFeature(provider.spec, options.feature)) {
    throw usageError(
      `provider=${provider.spec.name} does not support ${command} (no ${options.feature} feature)`,
    );
  }
  provider.validate(config, command);
  if (command === "run" || command === "warmup") validateLeaseCreation(config, provider, options.args);
  const scope = provider.scope(config);
  const lease = options.leaseId
    ? await resolveLease(state, options.leaseId, {
        provider: provider.spec.name,
        scope,
        scopeFlag: provider.spec.scopeFlag,
      })
    : undefined;
  // Installed once the state dir is known: a forced exit (second Ctrl-C) names the leases it holds.
  const interrupts = installInterrupts({ stateDir: state });
  const ctx: ProviderContext = {
    config,
    scope,
    stateDir: state,
    report: stderrReporter,
    signal: interrupts.signal,
    onForcedExit: interrupts.onForcedExit,
  };
  return { config, provider, selection, lease, ctx };
}

/**
 * The lease a command names: `--id X` or one positional `X`, never both (upstream §2.0). Returns
 * undefined when neither was given; `required` makes that a usage error.
 */
export function leaseArgument(
  command: string,
  args: { id?: unknown; lease?: unknown; _?: unknown },
  required: boolean,
): string | undefined {
  const positionals = Array.isArray(args._) ? (args._ as unknown[]).map(String) : [];
  const id = typeof args.id === "string" && args.id.trim() !== "" ? args.id.trim() : undefined;
  const usage = `usage: crabbox ${command} --id <lease-id-or-slug>`;
  if (positionals.length > 1 || (id !== undefined && positionals.length > 0)) throw usageError(usage);
  const value = id ?? positionals[0]?.trim();
  if (value === undefined || value === "") {
    if (required) throw usageError(usage, "`crabbox list` shows your leases");
    return undefined;
  }
  return value;
}

/** `prepare` for commands that act on one existing lease (status, stop, pause, resume). */
export async function prepareLease(
  command: CommandName,
  options: PrepareOptions & { leaseId: string },
): Promise<Prepared & { lease: Claim }> {
  const prepared = await prepare(command, options);
  if (!prepared.lease) throw new CrabboxError(`no lease resolved for ${options.leaseId}`);
  return { ...prepared, lease: prepared.lease };
}
