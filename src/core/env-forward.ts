import { usageError } from "./errors.ts";

/**
 * Which local environment variables reach the remote command. Nothing is forwarded unless its
 * NAME is allow-listed: a laptop's env holds credentials, and the MicroVM is a different trust zone.
 * Values never appear in output; the summary line says only set/empty (and a length for secrets).
 */

export const DEFAULT_ENV_ALLOW: readonly string[] = ["CI", "NODE_OPTIONS"];

/** Names crabbox itself sets on every run; user values with these names are dropped. */
export const RESERVED_ENV_NAMES = ["CRABBOX_LEASE_ID", "CRABBOX_RUN_ID", "CRABBOX_SLUG"] as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ALLOW_ENTRY = /^[A-Za-z_][A-Za-z0-9_]*\*?$/;
const SECRET_SHAPED = /KEY|TOKEN|SECRET|PASSWORD|PASS|CREDENTIAL|AUTH/i;

export interface EnvAllowInputs {
  /** `env.allow` from the resolved config (replaces the default when non-empty). */
  configAllow?: readonly string[];
  /** The value of `CRABBOX_ENV_ALLOW` (comma list; replaces everything before it when non-empty). */
  envAllowVar?: string;
  /** Every `--allow-env` value as given (repeatable, each one a comma list); appended. */
  flagAllow?: readonly string[];
}

export interface EnvAllowList {
  /** Deduplicated entries in order; an entry ending in `*` is a prefix match. */
  entries: string[];
  /** The user engaged forwarding explicitly (`--allow-env` or `CRABBOX_ENV_ALLOW`): print the summary. */
  explicit: boolean;
}

function splitList(value: string): string[] {
  return value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

function checkEntries(entries: readonly string[], where: string): string[] {
  const out: string[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === "") continue;
    if (entry === "*") {
      throw usageError(
        `refusing to forward every environment variable (\`*\` in ${where})`,
        "list the variable names to forward, e.g. --allow-env CI,NODE_OPTIONS or a prefix like MYAPP_*",
      );
    }
    if (!ALLOW_ENTRY.test(entry)) {
      throw usageError(
        `invalid environment variable name ${JSON.stringify(entry)} in ${where}`,
        "names match [A-Za-z_][A-Za-z0-9_]*, optionally ending in * for a prefix",
      );
    }
    out.push(entry);
  }
  return out;
}

function dedupe(entries: readonly string[]): string[] {
  return [...new Set(entries)];
}

/**
 * Allow-list resolution, as upstream: default [CI, NODE_OPTIONS]; a non-empty `env.allow` replaces
 * it; a non-empty CRABBOX_ENV_ALLOW replaces the result; `--allow-env` values are appended.
 * Invalid names fail with exit 2 rather than being silently ignored, so a typo is noticed.
 */
export function resolveEnvAllow(inputs: EnvAllowInputs): EnvAllowList {
  let entries: string[] = [...DEFAULT_ENV_ALLOW];
  const fromConfig = checkEntries(inputs.configAllow ?? [], "env.allow");
  if (fromConfig.length > 0) entries = fromConfig;
  const envVar = inputs.envAllowVar?.trim() ?? "";
  if (envVar !== "") entries = checkEntries(splitList(envVar), "CRABBOX_ENV_ALLOW");
  const fromFlags = checkEntries((inputs.flagAllow ?? []).flatMap(splitList), "--allow-env");
  return {
    entries: dedupe([...entries, ...fromFlags]),
    explicit: envVar !== "" || fromFlags.length > 0,
  };
}

export function envNameAllowed(name: string, entries: readonly string[]): boolean {
  if (!ENV_NAME.test(name)) return false;
  return entries.some((entry) =>
    entry.endsWith("*") ? name.startsWith(entry.slice(0, -1)) : name === entry,
  );
}

function isReserved(name: string): boolean {
  const upper = name.toUpperCase();
  return RESERVED_ENV_NAMES.some((reserved) => reserved === upper);
}

/**
 * The variables to send: allow-listed names that are set locally (an empty value counts as set).
 * Reserved CRABBOX_* names are never taken from the local env; `withReservedEnv` adds them.
 */
export function selectForwardedEnv(
  env: Readonly<Record<string, string | undefined>>,
  allow: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (value === undefined || isReserved(name) || !envNameAllowed(name, allow)) continue;
    out[name] = value;
  }
  return out;
}

export interface ReservedEnv {
  /** The raw `--id` argument (trimmed), `""` for fresh runs. */
  leaseId: string;
  /** `run_<12 hex>`. */
  runId: string;
  /** The requested slug, `""` when none. */
  slug: string;
}

/** Adds the reserved metadata last, so it overrides anything the user forwarded. */
export function withReservedEnv(
  vars: Readonly<Record<string, string>>,
  reserved: ReservedEnv,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(vars)) if (!isReserved(name)) out[name] = value;
  out.CRABBOX_LEASE_ID = reserved.leaseId;
  out.CRABBOX_RUN_ID = reserved.runId;
  out.CRABBOX_SLUG = reserved.slug;
  return out;
}

/** `NAME=set`, `NAME=empty`, or `NAME=set len=N secret=true` — never the value. */
export function describeEnvVar(name: string, value: string): string {
  if (value === "") return `${name}=empty`;
  if (SECRET_SHAPED.test(name)) return `${name}=set len=${value.length} secret=true`;
  return `${name}=set`;
}

/**
 * The stderr summary printed after sync when forwarding was engaged explicitly, e.g.
 * `env forwarding provider=aws-lambda-microvm behavior=forwarded vars=CI=set,CRABBOX_LEASE_ID=empty`.
 */
export function describeForwardedEnv(
  vars: Readonly<Record<string, string>>,
  allow: readonly string[],
  provider = "aws-lambda-microvm",
): string {
  const names = Object.keys(vars).sort();
  const prefix = `env forwarding provider=${provider} behavior=forwarded`;
  if (names.length === 0) return `${prefix} matched=none allow=${allow.join(",")}`;
  return `${prefix} vars=${names.map((name) => describeEnvVar(name, vars[name] ?? "")).join(",")}`;
}
