import { parseDuration } from "../core/duration.ts";
import { usageError } from "../core/errors.ts";
import type { ConfigValue, KeyDef } from "./keys.ts";

/**
 * Turning raw values (YAML, environment strings, citty flags) into typed config values. A value
 * that is present but malformed is a usage error (exit 2) naming where it came from — upstream
 * silently ignored bad durations, which turned a typo into a lease that lived 90 minutes.
 *
 * Each parser returns `{ value }` to set (value may be undefined: an explicit "clear"), or
 * undefined to leave the key as the lower layers had it.
 */
export type Parsed = { value: ConfigValue } | undefined;

const DURATION_HINT = "use a number with a unit, e.g. 90m, 1h30m or 45s";
const BOOLEAN_HINT = "use true or false (also 1/0, yes/no, on/off)";

export function parseBoolean(text: string): boolean | undefined {
  const lower = text.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(lower)) return true;
  if (["0", "false", "no", "off"].includes(lower)) return false;
  return undefined;
}

/** Comma list: items trimmed, empty items dropped, duplicates removed (first one kept). */
export function splitList(text: string): string[] {
  return [
    ...new Set(
      text
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== ""),
    ),
  ];
}

function durationOrThrow(text: string, where: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw usageError(`invalid duration "${text}" for ${where}`, DURATION_HINT);
  return ms;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  if (typeof value === "object") return "a mapping";
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** A value from a YAML file. Strings override only when non-empty, lists when present (even []). */
export function parseConfigValue(key: string, def: KeyDef, raw: unknown, file: string): Parsed {
  if (raw === null || raw === undefined) return undefined;
  const where = `${key} in ${file}`;
  switch (def.kind) {
    case "string": {
      if (typeof raw !== "string") {
        throw usageError(
          `config ${file}: ${key} must be a string, not ${describe(raw)}`,
          typeof raw === "number" ? `quote it: ${key.split(".").pop()}: "${String(raw)}"` : undefined,
        );
      }
      const trimmed = raw.trim();
      return trimmed === "" ? undefined : { value: trimmed };
    }
    case "list": {
      if (!Array.isArray(raw) || raw.some((item) => typeof item !== "string")) {
        throw usageError(
          `config ${file}: ${key} must be a list of strings, not ${describe(raw)}`,
          "e.g. [a, b]",
        );
      }
      const items = splitList(raw.join(","));
      // An empty env.allow would silently stop forwarding CI; upstream replaces only when non-empty.
      if (key === "env.allow" && items.length === 0) return undefined;
      return { value: items };
    }
    case "boolean": {
      const value = typeof raw === "boolean" ? raw : typeof raw === "string" ? parseBoolean(raw) : undefined;
      if (value === undefined) {
        throw usageError(`config ${file}: ${key} must be true or false, not ${describe(raw)}`, BOOLEAN_HINT);
      }
      return { value };
    }
    case "duration": {
      if (typeof raw !== "string") {
        throw usageError(`invalid duration ${JSON.stringify(raw)} for ${where}`, DURATION_HINT);
      }
      return { value: durationOrThrow(raw, where) };
    }
    case "count": {
      if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < 0) {
        throw usageError(`config ${file}: ${key} must be a whole number ≥ 0, not ${describe(raw)}`);
      }
      return { value: raw };
    }
  }
}

/** A value from an environment variable (already known to be non-empty). */
export function parseEnvValue(def: KeyDef, raw: string, name: string): Parsed {
  switch (def.kind) {
    case "string":
      return raw.trim() === "" ? undefined : { value: raw.trim() };
    case "list":
      return { value: splitList(raw) };
    case "boolean": {
      const value = parseBoolean(raw);
      if (value === undefined) throw usageError(`${name} must be true or false, not "${raw}"`, BOOLEAN_HINT);
      return { value };
    }
    case "duration":
      return { value: durationOrThrow(raw, name) };
    case "count": {
      if (!/^\s*\d+\s*$/.test(raw)) throw usageError(`${name} must be a whole number ≥ 0, not "${raw}"`);
      return { value: Number(raw.trim()) };
    }
  }
}

/** A value from a flag the user gave. An empty string flag clears a string key. */
export function parseFlagValue(def: KeyDef, raw: unknown, flag: string): Parsed {
  switch (def.kind) {
    case "string": {
      const text = String(raw).trim();
      return { value: text === "" ? undefined : text };
    }
    case "list": {
      const items = Array.isArray(raw) ? raw.map(String) : [String(raw)];
      return { value: splitList(items.join(",")) };
    }
    case "boolean":
      return { value: raw === true || raw === "true" };
    case "duration":
      return { value: durationOrThrow(String(raw), flag) };
    case "count": {
      const text = String(raw).trim();
      if (!/^\d+$/.test(text)) throw usageError(`${flag} must be a whole number ≥ 0, not "${text}"`);
      return { value: Number(text) };
    }
  }
}
