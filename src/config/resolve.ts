import { usageError } from "../core/errors.ts";
import { warn } from "../core/output.ts";
import { type Env, findRepoRoot, userConfigFile } from "../core/paths.ts";
import { closest } from "../core/suggest.ts";
import { configFiles, type LoadedFile, loadConfigFiles } from "./files.ts";
import {
  CONFIG_KEY_NAMES,
  CONFIG_KEYS,
  CONFIG_SECTIONS,
  type ConfigKey,
  type ConfigValue,
  isCredentialKey,
  type KeyDef,
} from "./keys.ts";
import { type Parsed, parseConfigValue, parseEnvValue, parseFlagValue } from "./values.ts";

/** Where a value came from, lowest precedence first. */
export type ConfigSourceName = "default" | "user" | "repo" | "env" | "flag";

export interface ValueSource {
  source: ConfigSourceName;
  /** The file, environment variable or flag that set it. */
  origin?: string;
}

/** One immutable view of every setting, after defaults < user file < repo files < environment < flags. */
export interface ResolvedConfig {
  readonly provider: string | undefined;
  readonly aws: { readonly region: string };
  readonly awsLambdaMicroVM: {
    readonly image: string | undefined;
    readonly imageVersion: string | undefined;
    readonly executionRoleArn: string | undefined;
    readonly workdir: string;
    readonly ingressConnectors: readonly string[];
    readonly egressConnectors: readonly string[];
    readonly forgetMissing: boolean;
    readonly endpoint: string | undefined;
  };
  /** Milliseconds. */
  readonly ttl: number;
  /** Milliseconds. */
  readonly idleTimeout: number;
  readonly sync: {
    readonly exclude: readonly string[];
    readonly include: readonly string[];
    /** `run --clean` keeps unsynced files matching these (default node_modules). */
    readonly keep: readonly string[];
    readonly warnFiles: number;
    readonly warnBytes: number;
    readonly failFiles: number;
    readonly failBytes: number;
    readonly allowLarge: boolean;
    /** `sync.compression` as written; parsed (and refused when malformed) by sync/compress.ts. */
    readonly compression: string;
  };
  readonly env: { readonly allow: readonly string[] };
  /** For every key, which layer set its value (`config show`). */
  readonly sources: Readonly<Record<ConfigKey, ValueSource>>;
  /** The files that were considered, and whether each existed. */
  readonly files: readonly {
    readonly path: string;
    readonly layer: "user" | "repo";
    readonly found: boolean;
  }[];
  readonly cwd: string;
  readonly repoRoot: string;
}

export interface ResolveInput {
  cwd?: string;
  env?: Env;
  /** Parsed citty args of the command; only flags the user actually gave are applied. */
  flags?: Readonly<Record<string, unknown>>;
  platform?: string;
  /** Receives unknown-key warnings; defaults to `warning:` lines on stderr. */
  onWarning?: (message: string) => void;
}

type Values = Record<ConfigKey, ConfigValue>;

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Refuses credentials anywhere in a file, at any depth. */
function assertNoCredentials(value: unknown, file: string, path: string[] = []): void {
  if (Array.isArray(value)) {
    for (const item of value) assertNoCredentials(item, file, path);
    return;
  }
  if (!isMapping(value)) return;
  for (const [name, child] of Object.entries(value)) {
    const keyPath = [...path, name];
    if (isCredentialKey(name)) {
      throw usageError(
        `config ${file} sets ${keyPath.join(".")}: credentials never belong in crabbox config`,
        "remove it; crabbox takes AWS credentials only from the AWS SDK chain (AWS_PROFILE, SSO, environment variables, instance roles)",
      );
    }
    assertNoCredentials(child, file, keyPath);
  }
}

/** Splits a file into known key values and the names it carries that crabbox does not know. */
function flatten(
  data: Record<string, unknown>,
  file: string,
): { known: Map<ConfigKey, unknown>; unknown: string[] } {
  const known = new Map<ConfigKey, unknown>();
  const unknown: string[] = [];
  const isKey = (name: string): name is ConfigKey => name in CONFIG_KEYS;
  for (const [name, value] of Object.entries(data)) {
    if ((CONFIG_SECTIONS as readonly string[]).includes(name)) {
      if (value === null || value === undefined) continue;
      if (!isMapping(value)) throw usageError(`config ${file}: ${name} must be a mapping of keys`);
      for (const [child, childValue] of Object.entries(value)) {
        const key = `${name}.${child}`;
        if (isKey(key)) known.set(key, childValue);
        else unknown.push(key);
      }
    } else if (isKey(name)) {
      known.set(name, value);
    } else {
      unknown.push(name);
    }
  }
  return { known, unknown };
}

interface Layering {
  values: Values;
  sources: Record<ConfigKey, ValueSource>;
  notify: (message: string) => void;
  userFile: string;
}

function set(layers: Layering, key: ConfigKey, parsed: Parsed, source: ValueSource): void {
  if (parsed === undefined) return;
  layers.values[key] = parsed.value;
  layers.sources[key] = source;
}

function applyFile(layers: Layering, file: LoadedFile): void {
  if (!file.data) return;
  assertNoCredentials(file.data, file.path);
  const { known, unknown } = flatten(file.data, file.path);
  for (const name of unknown) {
    const guess = closest(name, CONFIG_KEY_NAMES);
    layers.notify(
      `ignoring unknown config key ${name} in ${file.path}${guess ? ` (did you mean ${guess}?)` : ""}`,
    );
  }
  for (const [key, raw] of known) {
    const def: KeyDef = CONFIG_KEYS[key];
    if (file.layer === "repo" && def.userOnly && raw !== null && raw !== undefined) {
      throw usageError(
        `config ${file.path} sets ${key}, which a repository's config may not set: ${def.userOnly}`,
        `set it in your user config (${layers.userFile}), ${def.env?.[0] ?? "the environment"}, or --${def.flag}`,
      );
    }
    set(layers, key, parseConfigValue(key, def, raw, file.path), { source: file.layer, origin: file.path });
  }
}

function applyEnv(layers: Layering, env: Env): void {
  for (const key of CONFIG_KEY_NAMES) {
    const def: KeyDef = CONFIG_KEYS[key];
    const name = def.env?.find((candidate) => env[candidate] !== undefined && env[candidate] !== "");
    if (name === undefined) continue;
    set(layers, key, parseEnvValue(def, env[name] as string, name), { source: "env", origin: name });
  }
}

function applyFlags(layers: Layering, flags: Readonly<Record<string, unknown>>): void {
  for (const key of CONFIG_KEY_NAMES) {
    const def: KeyDef = CONFIG_KEYS[key];
    const raw = def.flag === undefined ? undefined : flags[def.flag];
    if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) continue;
    let parsed = parseFlagValue(def, raw, `--${def.flag}`);
    if (key === "env.allow" && parsed) {
      // --allow-env adds to the resolved list instead of replacing it (upstream §5).
      const current = layers.values[key] as readonly string[];
      parsed = { value: [...new Set([...current, ...(parsed.value as readonly string[])])] };
    }
    set(layers, key, parsed, { source: "flag", origin: `--${def.flag}` });
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * Resolves the one config every command works from. Only YAML files are read; unknown keys
 * warn with a suggestion (files written for upstream Crabbox carry other providers' keys);
 * credentials anywhere, user-only keys in a repository file, and malformed values are exit 2.
 * Provider-specific validation (region, ARNs, workdir) is the provider's, not this function's.
 */
export async function resolveConfig(input: ResolveInput = {}): Promise<ResolvedConfig> {
  const cwd = input.cwd ?? process.cwd();
  const env = input.env ?? process.env;
  const repoRoot = findRepoRoot(cwd);
  const refs = configFiles({ cwd, repoRoot, env, platform: input.platform });
  const files = await loadConfigFiles(refs);

  const layers: Layering = {
    values: {} as Values,
    sources: {} as Record<ConfigKey, ValueSource>,
    notify: input.onWarning ?? warn,
    userFile: userConfigFile(env, input.platform),
  };
  for (const key of CONFIG_KEY_NAMES) {
    const fallback = CONFIG_KEYS[key].default as ConfigValue;
    layers.values[key] = Array.isArray(fallback) ? [...fallback] : fallback;
    layers.sources[key] = { source: "default" };
  }
  for (const file of files) applyFile(layers, file);
  applyEnv(layers, env);
  applyFlags(layers, input.flags ?? {});
  const { values, sources } = layers;

  const str = (key: ConfigKey) => values[key] as string | undefined;
  const list = (key: ConfigKey) => values[key] as readonly string[];
  const num = (key: ConfigKey) => values[key] as number;
  const bool = (key: ConfigKey) => values[key] as boolean;
  return deepFreeze({
    provider: str("provider")?.trim().toLowerCase() || undefined,
    aws: { region: str("aws.region") as string },
    awsLambdaMicroVM: {
      image: str("awsLambdaMicroVM.image"),
      imageVersion: str("awsLambdaMicroVM.imageVersion"),
      executionRoleArn: str("awsLambdaMicroVM.executionRoleArn"),
      workdir: str("awsLambdaMicroVM.workdir") as string,
      ingressConnectors: list("awsLambdaMicroVM.ingressConnectors"),
      egressConnectors: list("awsLambdaMicroVM.egressConnectors"),
      forgetMissing: bool("awsLambdaMicroVM.forgetMissing"),
      endpoint: str("awsLambdaMicroVM.endpoint"),
    },
    ttl: num("ttl"),
    idleTimeout: num("idleTimeout"),
    sync: {
      exclude: list("sync.exclude"),
      include: list("sync.include"),
      keep: list("sync.keep"),
      warnFiles: num("sync.warnFiles"),
      warnBytes: num("sync.warnBytes"),
      failFiles: num("sync.failFiles"),
      failBytes: num("sync.failBytes"),
      allowLarge: bool("sync.allowLarge"),
      compression: str("sync.compression") as string,
    },
    env: { allow: list("env.allow") },
    sources,
    files: files.map((file) => ({ path: file.path, layer: file.layer, found: file.exists })),
    cwd,
    repoRoot,
  });
}

/** A key's resolved value, by its dotted name (`config show`). */
export function configValue(config: ResolvedConfig, key: ConfigKey): ConfigValue {
  switch (key) {
    case "provider":
      return config.provider;
    case "aws.region":
      return config.aws.region;
    case "ttl":
      return config.ttl;
    case "idleTimeout":
      return config.idleTimeout;
    default: {
      const [section, name] = key.split(".") as [string, string];
      const group = (config as unknown as Record<string, Record<string, ConfigValue>>)[section];
      return group?.[name];
    }
  }
}
