/**
 * A validator for exactly the JSON Schema (2020-12) subset crabbox's own schemas use — no new
 * dependency for one schema. A keyword it does not know is an error, never silently ignored, so a
 * schema cannot grow a rule the tests do not check.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };

const KEYWORDS = new Set([
  "$schema",
  "$id",
  "$defs",
  "$ref",
  "title",
  "description",
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "enum",
  "const",
  "pattern",
  "minimum",
  "maximum",
  "oneOf",
]);

function typeOf(value: Json): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function matchesType(value: Json, type: string): boolean {
  const actual = typeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

function resolveRef(root: Schema, ref: string): Schema {
  if (!ref.startsWith("#/")) throw new Error(`unsupported $ref ${ref}`);
  let node: Json = root;
  for (const part of ref.slice(2).split("/")) {
    if (typeof node !== "object" || node === null || Array.isArray(node)) throw new Error(`bad $ref ${ref}`);
    node = (node as Schema)[part] as Json;
  }
  if (typeof node !== "object" || node === null || Array.isArray(node)) throw new Error(`bad $ref ${ref}`);
  return node as Schema;
}

/** Every keyword used anywhere in `schema` that this validator does not implement. */
export function unsupportedKeywords(schema: Schema): string[] {
  const found = new Set<string>();
  const walk = (node: Schema) => {
    for (const [key, value] of Object.entries(node)) {
      if (!KEYWORDS.has(key)) found.add(key);
      if (key === "properties" || key === "$defs") {
        for (const child of Object.values(value as Schema)) walk(child as Schema);
      } else if (key === "items" && typeof value === "object" && value !== null) {
        walk(value as Schema);
      } else if (key === "oneOf") {
        for (const child of value as Json[]) walk(child as Schema);
      }
    }
  };
  walk(schema);
  return [...found].sort();
}

/** The validation errors of `value` against `schema` (empty = valid), each `path: problem`. */
export function validate(schema: Schema, value: unknown, root: Schema = schema, path = "$"): string[] {
  const errors: string[] = [];
  const instance = value as Json;
  for (const key of Object.keys(schema)) {
    if (!KEYWORDS.has(key)) throw new Error(`unsupported schema keyword ${key} at ${path}`);
  }
  if (typeof schema.$ref === "string")
    errors.push(...validate(resolveRef(root, schema.$ref), value, root, path));
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!types.some((type) => matchesType(instance, type))) {
      errors.push(`${path}: expected ${types.join("|")}, got ${typeOf(instance)}`);
      return errors;
    }
  }
  if ("const" in schema && JSON.stringify(schema.const) !== JSON.stringify(instance)) {
    errors.push(`${path}: expected ${JSON.stringify(schema.const)}`);
  }
  if (
    Array.isArray(schema.enum) &&
    !schema.enum.some((option) => JSON.stringify(option) === JSON.stringify(instance))
  ) {
    errors.push(`${path}: ${JSON.stringify(instance)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (
    typeof instance === "string" &&
    typeof schema.pattern === "string" &&
    !new RegExp(schema.pattern, "u").test(instance)
  ) {
    errors.push(`${path}: ${JSON.stringify(instance)} does not match ${schema.pattern}`);
  }
  if (typeof instance === "number") {
    if (typeof schema.minimum === "number" && instance < schema.minimum)
      errors.push(`${path}: below ${schema.minimum}`);
    if (typeof schema.maximum === "number" && instance > schema.maximum)
      errors.push(`${path}: above ${schema.maximum}`);
  }
  if (Array.isArray(schema.oneOf)) {
    const passing = schema.oneOf.filter(
      (option) => validate(option as Schema, value, root, path).length === 0,
    );
    if (passing.length !== 1) errors.push(`${path}: matches ${passing.length} of oneOf, expected exactly 1`);
  }
  if (typeOf(instance) === "object") {
    const object = instance as { [key: string]: Json };
    const properties = (schema.properties ?? {}) as Schema;
    for (const name of (schema.required ?? []) as string[]) {
      if (!(name in object)) errors.push(`${path}: missing ${name}`);
    }
    for (const [name, child] of Object.entries(object)) {
      const sub = properties[name] as Schema | undefined;
      if (sub) errors.push(...validate(sub, child, root, `${path}.${name}`));
      else if (schema.additionalProperties === false) errors.push(`${path}: unexpected property ${name}`);
    }
  }
  if (Array.isArray(instance) && schema.items !== undefined) {
    instance.forEach((item, index) => {
      errors.push(...validate(schema.items as Schema, item, root, `${path}[${index}]`));
    });
  }
  return errors;
}
