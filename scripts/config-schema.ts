/**
 * Generates schema/crabbox.schema.json, the JSON Schema of crabbox's YAML config files, from the
 * key table in src/config/keys.ts, so editors complete and check `.crabbox.yaml` with exactly the
 * keys the loader reads. A unit test fails when the committed file is not what this prints.
 *
 *   bun scripts/config-schema.ts          # rewrite schema/crabbox.schema.json
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_KEYS, CONFIG_SECTIONS, type KeyDef } from "../src/config/keys.ts";
import { repoRoot } from "./bun-runtime.ts";

/** The duration syntax of src/core/duration.ts: `0`, or number+unit parts (`90m`, `1h30m`, `1.5h`, `500ms`). */
export const DURATION_PATTERN = "^\\s*(0|((\\d+(\\.\\d+)?|\\.\\d+)(ms|h|m|s))+)\\s*$";

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

function formatDefault(def: KeyDef): string | undefined {
  if (def.default === undefined) return undefined;
  if (def.kind === "duration" && typeof def.default === "number") {
    const minutes = def.default / 60_000;
    return Number.isInteger(minutes) ? `${minutes}m` : `${def.default}ms`;
  }
  return JSON.stringify(def.default);
}

function property(key: string, def: KeyDef): Record<string, Json> {
  const notes = [`${def.description}.`];
  const fallback = formatDefault(def);
  if (fallback !== undefined) notes.push(`Default: ${fallback}.`);
  if (def.env?.length) notes.push(`Environment: ${def.env.join(", ")}.`);
  if (def.flag) notes.push(`Flag: --${def.flag}.`);
  if (def.userOnly) notes.push(`User config only (not in a repository's crabbox.yaml): ${def.userOnly}.`);
  const description = notes.join(" ");
  const base: Record<string, Json> = { description };
  switch (def.kind) {
    case "string":
      base.type = "string";
      if (key === "provider") base.enum = ["aws-lambda-microvm"];
      if (key === "awsLambdaMicroVM.imageVersion") base.examples = ["1.0"];
      if (key === "sync.compression") {
        base.pattern = "^\\s*(zstd(:(1[0-9]|[1-9]))?|gzip(:[1-9])?|none)\\s*$";
        base.examples = ["zstd:3", "gzip:6", "none"];
      }
      break;
    case "list":
      base.type = "array";
      base.items = { type: "string" };
      break;
    case "boolean":
      base.type = "boolean";
      break;
    case "duration":
      base.type = "string";
      base.pattern = DURATION_PATTERN;
      base.examples = ["90m", "1h30m", "45s"];
      break;
    case "count":
      base.type = "integer";
      base.minimum = 0;
      break;
  }
  if (def.default !== undefined && def.kind !== "duration") base.default = def.default as Json;
  if (def.kind === "duration" && fallback !== undefined) base.default = fallback;
  return base;
}

export function configSchema(): Record<string, Json> {
  const properties: Record<string, Json> = {};
  const sections: Record<string, Record<string, Json>> = {};
  for (const section of CONFIG_SECTIONS) sections[section] = {};
  for (const [key, def] of Object.entries(CONFIG_KEYS) as [string, KeyDef][]) {
    const dot = key.indexOf(".");
    if (dot === -1) properties[key] = property(key, def);
    else (sections[key.slice(0, dot)] as Record<string, Json>)[key.slice(dot + 1)] = property(key, def);
  }
  for (const [section, children] of Object.entries(sections)) {
    properties[section] = {
      type: ["object", "null"],
      additionalProperties: false,
      properties: children,
    };
  }
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: "crabbox configuration",
    description:
      "crabbox.yaml / .crabbox.yaml at a repository root, or the user config file. See docs/config.md. Credentials never belong here: crabbox refuses them.",
    type: "object",
    additionalProperties: false,
    properties,
  };
}

export function renderConfigSchema(): string {
  return `${JSON.stringify(configSchema(), null, 2)}\n`;
}

export const SCHEMA_PATH = join(repoRoot, "schema", "crabbox.schema.json");

if (import.meta.main) {
  writeFileSync(SCHEMA_PATH, renderConfigSchema());
  process.stderr.write(`wrote ${SCHEMA_PATH}\n`);
}
