import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { usageError } from "../core/errors.ts";
import { type Env, isInside, userConfigFile } from "../core/paths.ts";

/** Which trust a config file has: the user's own file, or one that came with a repository. */
export type FileLayer = "user" | "repo";

export interface ConfigFileRef {
  path: string;
  layer: FileLayer;
  /** Named by CRABBOX_CONFIG: a missing file is an error instead of being skipped. */
  explicit: boolean;
}

export interface LoadedFile extends ConfigFileRef {
  exists: boolean;
  /** The parsed mapping; undefined when the file is missing or empty. */
  data: Record<string, unknown> | undefined;
}

/**
 * The files to read, lowest precedence first: the user file, then `crabbox.yaml` and
 * `.crabbox.yaml` at the repository root (not the working directory, so running from a
 * subdirectory picks up the same config). `CRABBOX_CONFIG` replaces the search with one file,
 * which keeps repository trust when it lies inside the repository.
 */
export function configFiles(options: {
  cwd: string;
  repoRoot: string;
  env: Env;
  platform?: string;
}): ConfigFileRef[] {
  const explicit = options.env.CRABBOX_CONFIG;
  if (explicit) {
    const path = resolve(options.cwd, explicit);
    return [{ path, layer: isInside(path, options.repoRoot) ? "repo" : "user", explicit: true }];
  }
  return [
    { path: userConfigFile(options.env, options.platform), layer: "user", explicit: false },
    { path: join(options.repoRoot, "crabbox.yaml"), layer: "repo", explicit: false },
    { path: join(options.repoRoot, ".crabbox.yaml"), layer: "repo", explicit: false },
  ];
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function readText(ref: ConfigFileRef): Promise<string | undefined> {
  try {
    return await readFile(ref.path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !ref.explicit) return undefined;
    if (code === "ENOENT") {
      throw usageError(
        `read config ${ref.path}: no such file`,
        "CRABBOX_CONFIG must name an existing YAML file",
      );
    }
    throw usageError(`read config ${ref.path}: ${(error as Error).message}`);
  }
}

/**
 * A crabbox config is a few dozen values. YAML aliases let a tiny file stand for billions of them
 * (a "billion laughs" file in a repository); everything after parsing walks the whole tree, so the
 * size is checked first — in at most this many steps.
 */
const MAX_CONFIG_VALUES = 10_000;

function assertBoundedSize(ref: ConfigFileRef, parsed: unknown): void {
  let left = MAX_CONFIG_VALUES;
  const visit = (value: unknown): void => {
    if (--left < 0) {
      throw usageError(
        `parse config ${ref.path}: more than ${MAX_CONFIG_VALUES} values once YAML aliases are expanded`,
        "a crabbox config is a handful of keys; remove the anchors and aliases",
      );
    }
    if (Array.isArray(value)) for (const item of value) visit(item);
    else if (typeof value === "object" && value !== null)
      for (const child of Object.values(value)) visit(child);
  };
  visit(parsed);
}

function parseYamlMapping(ref: ConfigFileRef, text: string, parseYAML: (text: string) => unknown) {
  let parsed: unknown;
  try {
    parsed = parseYAML(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw usageError(`parse config ${ref.path}: ${reason}`);
  }
  if (parsed === null || parsed === undefined) return {};
  assertBoundedSize(ref, parsed);
  if (!isMapping(parsed)) {
    throw usageError(`parse config ${ref.path}: the top level must be a mapping of keys (key: value)`);
  }
  return parsed;
}

/**
 * Reads one YAML file through c12 with every other c12 source switched off: no rc files, no
 * package.json key, no dotenv, no `extends` layers, no remote templates, no NODE_ENV overlays,
 * and — through the `resolve` hook, which reads exactly this file with confbox's YAML parser —
 * no JS/TS loader. A config file is data and never runs code.
 */
export async function loadConfigFile(ref: ConfigFileRef): Promise<LoadedFile> {
  const text = await readText(ref);
  if (text === undefined) return { ...ref, exists: false, data: undefined };
  if (text.trim() === "") return { ...ref, exists: true, data: undefined };
  const [{ loadConfig }, { parseYAML }] = await Promise.all([import("c12"), import("confbox/yaml")]);
  const result = await loadConfig<Record<string, unknown>>({
    name: "crabbox",
    cwd: dirname(ref.path),
    configFile: ref.path,
    rcFile: false,
    globalRc: false,
    packageJson: false,
    dotenv: false,
    extend: false,
    giget: false,
    envName: false,
    // Never used: the resolve hook answers the only lookup, so nothing is ever imported as code.
    jiti: refusingJiti(ref.path),
    resolve: () => ({
      config: parseYamlMapping(ref, text, parseYAML),
      configFile: ref.path,
      cwd: dirname(ref.path),
      source: ref.path,
    }),
  });
  return { ...ref, exists: true, data: result.config };
}

function refusingJiti(path: string): NonNullable<Parameters<typeof import("c12").loadConfig>[0]>["jiti"] {
  const refuse = () => {
    throw usageError(`config ${path}: crabbox reads YAML only and never executes config code`);
  };
  return new Proxy({}, { get: () => refuse }) as never;
}

/** Reads every config file that applies, lowest precedence first. */
export async function loadConfigFiles(refs: readonly ConfigFileRef[]): Promise<LoadedFile[]> {
  return Promise.all(refs.map(loadConfigFile));
}
