import { formatDuration } from "../core/duration.ts";
import { CONFIG_KEY_NAMES, CONFIG_KEYS, type ConfigKey, type ConfigValue } from "./keys.ts";
import { configValue, type ResolvedConfig } from "./resolve.ts";

/** `crabbox config show`: every value with the layer that set it, as text or JSON. */

function displayValue(key: ConfigKey, value: ConfigValue): string {
  if (value === undefined) return "-";
  if (CONFIG_KEYS[key].kind === "duration") return formatDuration(value as number);
  if (Array.isArray(value)) return value.length === 0 ? "[]" : value.join(",");
  return String(value);
}

function jsonValue(key: ConfigKey, value: ConfigValue): unknown {
  if (value === undefined) return null;
  if (CONFIG_KEYS[key].kind === "duration") return formatDuration(value as number);
  return value;
}

export function configShowJson(config: ResolvedConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of CONFIG_KEY_NAMES) {
    const value = jsonValue(key, configValue(config, key));
    const [section, name] = key.split(".");
    if (name === undefined) {
      out[key] = value;
    } else {
      const group = (out[section as string] ?? {}) as Record<string, unknown>;
      group[name] = value;
      out[section as string] = group;
    }
  }
  out.sources = Object.fromEntries(CONFIG_KEY_NAMES.map((key) => [key, config.sources[key]]));
  out.files = config.files;
  out.repoRoot = config.repoRoot;
  return out;
}

export function configShowText(config: ResolvedConfig): string {
  const settings = config.awsLambdaMicroVM;
  const lines = [
    `aws_lambda_microvm image=${settings.image ?? "-"} image_version=${settings.imageVersion ?? "latest"} workdir=${settings.workdir} forget_missing=${settings.forgetMissing}`,
    "",
  ];
  const rows = CONFIG_KEY_NAMES.map((key) => {
    const { source, origin } = config.sources[key];
    return [
      key,
      displayValue(key, configValue(config, key)),
      origin ? `${source} (${origin})` : source,
    ] as const;
  });
  const keyWidth = Math.max(...rows.map(([key]) => key.length));
  const valueWidth = Math.min(60, Math.max(...rows.map(([, value]) => value.length)));
  for (const [key, value, source] of rows)
    lines.push(`${key.padEnd(keyWidth)}  ${value.padEnd(valueWidth)}  ${source}`);
  lines.push("", "files (lowest precedence first):");
  for (const file of config.files)
    lines.push(`  ${file.layer.padEnd(4)}  ${file.path}${file.found ? "" : " (not found)"}`);
  return lines.join("\n");
}
