import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configSchema, SCHEMA_PATH } from "../../../scripts/config-schema.ts";
import { CONFIG_KEYS, type KeyDef } from "../../../src/config/keys.ts";
import { resolveConfig } from "../../../src/config/resolve.ts";

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean;
  items?: Schema;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
};

/** The subset of JSON Schema draft-07 the config schema uses; returns the violations. */
function validate(schema: Schema, value: unknown, path = "$"): string[] {
  const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
  const actual =
    value === null
      ? "null"
      : Array.isArray(value)
        ? "array"
        : Number.isInteger(value)
          ? "integer"
          : typeof value;
  if (types.length > 0 && !types.includes(actual) && !(actual === "integer" && types.includes("number"))) {
    return [`${path}: ${actual} is not ${types.join("|")}`];
  }
  const errors: string[] = [];
  if (schema.enum && !schema.enum.includes(value))
    errors.push(`${path}: not one of ${schema.enum.join(", ")}`);
  if (schema.pattern && typeof value === "string" && !new RegExp(schema.pattern).test(value)) {
    errors.push(`${path}: does not match ${schema.pattern}`);
  }
  if (schema.minimum !== undefined && typeof value === "number" && value < schema.minimum) {
    errors.push(`${path}: below ${schema.minimum}`);
  }
  if (Array.isArray(value) && schema.items) {
    for (const [index, item] of value.entries()) {
      errors.push(...validate(schema.items, item, `${path}[${index}]`));
    }
  }
  if (actual === "object" && schema.properties) {
    for (const [name, child] of Object.entries(value as Record<string, unknown>)) {
      const sub = schema.properties[name];
      if (sub) errors.push(...validate(sub, child, `${path}.${name}`));
      else if (schema.additionalProperties === false) errors.push(`${path}.${name}: unknown key`);
    }
  }
  return errors;
}

const schema = configSchema() as Schema;

function sampleValue(key: string, def: KeyDef): unknown {
  switch (def.kind) {
    case "string":
      if (key === "provider") return "aws-lambda-microvm";
      if (key === "aws.region") return "us-east-1";
      if (key === "awsLambdaMicroVM.endpoint") return "http://127.0.0.1:4599";
      if (key.endsWith("RoleArn")) return "arn:aws:iam::123456789012:role/MicrovmRuntime";
      if (key === "awsLambdaMicroVM.image")
        return "arn:aws:lambda:us-east-1:123456789012:microvm-image:crabbox-runner";
      if (key === "awsLambdaMicroVM.workdir") return "/workspace/app";
      if (key === "sync.compression") return "gzip:6";
      return "1.0";
    case "list":
      return ["a", "b"];
    case "boolean":
      return true;
    case "duration":
      return "1h30m";
    case "count":
      return 7;
  }
}

/** A config document with every key set, nested the way the loader reads it. */
function everyKey(): Record<string, unknown> {
  const doc: Record<string, Record<string, unknown> | unknown> = {};
  for (const [key, def] of Object.entries(CONFIG_KEYS) as [string, KeyDef][]) {
    const [section, name] = key.includes(".") ? (key.split(".") as [string, string]) : [undefined, key];
    if (section) {
      doc[section] ??= {};
      (doc[section] as Record<string, unknown>)[name] = sampleValue(key, def);
    } else doc[name] = sampleValue(key, def);
  }
  return doc;
}

async function load(doc: unknown): Promise<{ warnings: string[]; error?: string }> {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-schema-"));
  try {
    // Outside the working directory, so the file has user trust (it may set every key).
    mkdirSync(join(dir, "work"));
    const file = join(dir, "config.yaml");
    // JSON is YAML: the loader reads exactly this document.
    writeFileSync(file, JSON.stringify(doc));
    const warnings: string[] = [];
    try {
      await resolveConfig({
        cwd: join(dir, "work"),
        env: { CRABBOX_CONFIG: file, HOME: dir, XDG_CONFIG_HOME: dir },
        onWarning: (line) => warnings.push(line),
      });
      return { warnings };
    } catch (error) {
      return { warnings, error: error instanceof Error ? error.message : String(error) };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("schema/crabbox.schema.json is what scripts/config-schema.ts generates", () => {
  expect(JSON.parse(readFileSync(SCHEMA_PATH, "utf8"))).toEqual(configSchema());
});

test("every key of src/config/keys.ts is in the schema, with its type", () => {
  for (const [key, def] of Object.entries(CONFIG_KEYS) as [string, KeyDef][]) {
    const [section, name] = key.includes(".") ? (key.split(".") as [string, string]) : [undefined, key];
    const property = section ? schema.properties?.[section]?.properties?.[name] : schema.properties?.[name];
    expect(property, key).toBeDefined();
    const expected = {
      string: "string",
      list: "array",
      boolean: "boolean",
      duration: "string",
      count: "integer",
    }[def.kind];
    expect(property?.type, key).toBe(expected);
  }
});

test("a file setting every key validates, and the loader reads it without a warning", async () => {
  const doc = everyKey();
  expect(validate(schema, doc)).toEqual([]);
  expect(await load(doc)).toEqual({ warnings: [] });
});

test("the upstream sample config validates and loads", async () => {
  const doc = {
    provider: "aws-lambda-microvm",
    aws: { region: "eu-west-1" },
    awsLambdaMicroVM: {
      image: "arn:aws:lambda:eu-west-1:123456789012:microvm-image:crabbox-runner",
      imageVersion: "1.0",
      executionRoleArn: "arn:aws:iam::123456789012:role/MicrovmRuntime",
      workdir: "/workspace/crabbox",
      ingressConnectors: [],
      egressConnectors: [],
      forgetMissing: false,
    },
    ttl: "90m",
    idleTimeout: "30m",
    sync: { exclude: ["node_modules"], warnFiles: 1000 },
    env: { allow: ["CI", "NPM_*"] },
  };
  expect(validate(schema, doc)).toEqual([]);
  expect(await load(doc)).toEqual({ warnings: [] });
});

test("what the schema rejects, the loader rejects (or, for unknown keys, warns about)", async () => {
  const rejected: [string, Record<string, unknown>, "error" | "warning"][] = [
    ["number for a string", { awsLambdaMicroVM: { imageVersion: 1.5 } }, "error"],
    ["string for a list", { sync: { exclude: "node_modules" } }, "error"],
    ["list of numbers", { env: { allow: [1] } }, "error"],
    ["bad duration", { ttl: "ninety minutes" }, "error"],
    ["negative count", { sync: { warnFiles: -1 } }, "error"],
    ["fraction count", { sync: { failBytes: 1.5 } }, "error"],
    ["section not a mapping", { sync: ["a"] }, "error"],
    ["number for a boolean", { awsLambdaMicroVM: { forgetMissing: 3 } }, "error"],
    ["unknown top-level key", { sync_exclude: ["x"] }, "warning"],
    ["unknown nested key", { sync: { excludes: ["x"] } }, "warning"],
    ["a credential", { aws: { secretAccessKey: "x" } }, "error"],
  ];
  for (const [label, doc, outcome] of rejected) {
    expect(validate(schema, doc).length, label).toBeGreaterThan(0);
    const result = await load(doc);
    if (outcome === "error") expect(result.error, label).toBeDefined();
    else expect(result.warnings.length, label).toBeGreaterThan(0);
  }
});

test("every duration the schema pattern accepts, the loader accepts", async () => {
  for (const value of ["0", "45s", "90m", "1h30m", "1.5h", "500ms", ".5h", " 2h "]) {
    expect(validate(schema, { idleTimeout: value }), value).toEqual([]);
    expect((await load({ idleTimeout: value })).error, value).toBeUndefined();
  }
});
