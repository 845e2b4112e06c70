/**
 * Request validation in AWS's (Coral's) words. The JS SDK validates nothing on the client, so the
 * server has to, and tests compare messages such as
 * `1 validation error detected: Value at 'runHookPayload' failed to satisfy constraint: Member must
 * have length less than or equal to 4096`. Every violation is collected, then reported at once.
 */
import { ApiError } from "./wire.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

interface Check {
  required?: boolean;
  /** Sensitive members (payloads, env values) are reported without their value. */
  sensitive?: boolean;
}

export class Violations {
  private readonly messages: string[] = [];

  add(path: string, value: unknown, constraint: string, sensitive = false): void {
    const shown =
      value === undefined || value === null ? "Value null" : sensitive ? "Value" : `Value '${render(value)}'`;
    this.messages.push(`${shown} at '${path}' failed to satisfy constraint: ${constraint}`);
  }

  get empty(): boolean {
    return this.messages.length === 0;
  }

  throwIfAny(): void {
    if (this.empty) return;
    const n = this.messages.length;
    throw new ApiError(
      "ValidationException",
      400,
      `${n} validation error${n === 1 ? "" : "s"} detected: ${this.messages.join("; ")}`,
    );
  }

  /** A wrong JSON type is a deserialization failure on AWS, not a constraint violation. */
  typeError(path: string, expected: string): never {
    throw new ApiError("SerializationException", 400, `Expected ${expected} at '${path}'`);
  }

  required(value: unknown, path: string): boolean {
    if (value === undefined || value === null) {
      this.add(path, value, "Member must not be null");
      return false;
    }
    return true;
  }

  string(
    value: Json | undefined,
    path: string,
    opts: Check & { min?: number; max?: number; pattern?: RegExp; patternText?: string } = {},
  ): string | undefined {
    if (value === undefined || value === null) {
      if (opts.required) this.required(value, path);
      return undefined;
    }
    if (typeof value !== "string") this.typeError(path, "a string");
    if (opts.min !== undefined && value.length < opts.min) {
      this.add(path, value, `Member must have length greater than or equal to ${opts.min}`, opts.sensitive);
    } else if (opts.max !== undefined && value.length > opts.max) {
      this.add(path, value, `Member must have length less than or equal to ${opts.max}`, opts.sensitive);
    } else if (opts.pattern && !opts.pattern.test(value)) {
      const text = opts.patternText ?? opts.pattern.source;
      this.add(path, value, `Member must satisfy regular expression pattern: ${text}`, opts.sensitive);
    }
    return value;
  }

  integer(value: Json | undefined, path: string, opts: Check & { min?: number; max?: number } = {}) {
    if (value === undefined || value === null) {
      if (opts.required) this.required(value, path);
      return undefined;
    }
    if (typeof value !== "number" || !Number.isInteger(value)) this.typeError(path, "an integer");
    if (opts.min !== undefined && value < opts.min) {
      this.add(path, value, `Member must have value greater than or equal to ${opts.min}`);
    } else if (opts.max !== undefined && value > opts.max) {
      this.add(path, value, `Member must have value less than or equal to ${opts.max}`);
    }
    return value;
  }

  boolean(value: Json | undefined, path: string, opts: Check = {}): boolean | undefined {
    if (value === undefined || value === null) {
      if (opts.required) this.required(value, path);
      return undefined;
    }
    if (typeof value !== "boolean") this.typeError(path, "a boolean");
    return value;
  }

  enumValue<T extends string>(
    value: Json | undefined,
    path: string,
    allowed: readonly T[],
    opts: Check = {},
  ) {
    const text = this.string(value, path, opts);
    if (text === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(text)) {
      this.add(path, text, `Member must satisfy enum value set: [${allowed.join(", ")}]`);
      return undefined;
    }
    return text as T;
  }

  list(value: Json | undefined, path: string, opts: Check & { min?: number; max?: number } = {}) {
    if (value === undefined || value === null) {
      if (opts.required) this.required(value, path);
      return undefined;
    }
    if (!Array.isArray(value)) this.typeError(path, "a list");
    if (opts.min !== undefined && value.length < opts.min) {
      this.add(path, value, `Member must have length greater than or equal to ${opts.min}`);
    } else if (opts.max !== undefined && value.length > opts.max) {
      this.add(path, value, `Member must have length less than or equal to ${opts.max}`);
    }
    return value;
  }

  object(value: Json | undefined, path: string, opts: Check = {}): JsonObject | undefined {
    if (value === undefined || value === null) {
      if (opts.required) this.required(value, path);
      return undefined;
    }
    if (typeof value !== "object" || Array.isArray(value)) this.typeError(path, "an object");
    return value;
  }

  map(value: Json | undefined, path: string, opts: Check & { max?: number } = {}) {
    const object = this.object(value, path, opts);
    if (object && opts.max !== undefined && Object.keys(object).length > opts.max) {
      this.add(path, "{...}", `Member must have length less than or equal to ${opts.max}`);
    }
    return object;
  }

  /** A tagged union: exactly one member set (restJson1 unions are single-key objects). */
  union(value: Json | undefined, path: string, members: readonly string[], opts: Check = {}) {
    const object = this.object(value, path, opts);
    if (!object) return undefined;
    const keys = Object.keys(object).filter((key) => object[key] !== null);
    if (keys.length !== 1 || !members.includes(keys[0] as string)) {
      this.add(path, "{...}", `Member must have exactly one of [${members.join(", ")}] set`);
      return undefined;
    }
    const key = keys[0] as string;
    return { key, value: object[key] as Json };
  }
}

function render(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(render).join(", ")}]`;
  if (typeof value === "object" && value !== null) return "{...}";
  return String(value);
}

/** Parse a JSON request body; an empty body is `{}` (Get/Suspend/Resume/Terminate send none). */
export function parseBody(text: string): JsonObject {
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError("SerializationException", 400, "Could not parse request body into json");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ApiError("SerializationException", 400, "Request body must be a JSON object");
  }
  return parsed as JsonObject;
}
