import { describe, expect, test } from "bun:test";
import type { ArgsDef } from "citty";
import { assertKnownFlags, splitArgv } from "../../../src/core/argv.ts";
import { CrabboxError } from "../../../src/core/errors.ts";

const runArgs = {
  keep: { type: "boolean" },
  slug: { type: "string" },
  "allow-env": { type: "string" },
} as const satisfies ArgsDef;

describe("splitArgv", () => {
  test("the remote command starts after --", () => {
    expect(splitArgv(["--keep", "--", "bun", "test", "--keep"], runArgs, true)).toEqual({
      own: ["--keep"],
      rest: ["bun", "test", "--keep"],
    });
  });

  test("the remote command starts at the first bare word, as upstream", () => {
    expect(splitArgv(["--slug", "x", "go", "test", "--help"], runArgs, true)).toEqual({
      own: ["--slug", "x"],
      rest: ["go", "test", "--help"],
    });
  });

  test("without passthrough, -- stays with the command's own args", () => {
    expect(splitArgv(["a", "--", "b"], { x: { type: "positional" } }, false)).toEqual({
      own: ["a", "--", "b"],
      rest: [],
    });
  });
});

describe("assertKnownFlags", () => {
  test("a typo is refused with a suggestion and exit 2", () => {
    try {
      assertKnownFlags(["--kep"], runArgs, "run");
      throw new Error("accepted an unknown flag");
    } catch (error) {
      expect(error).toBeInstanceOf(CrabboxError);
      const crabboxError = error as CrabboxError;
      expect(crabboxError.exitCode).toBe(2);
      expect(crabboxError.message).toContain("--kep");
      expect(crabboxError.hint).toContain("--keep");
    }
  });

  test("camelCase, kebab-case, =values and negations are known", () => {
    expect(() =>
      assertKnownFlags(["--allow-env=A", "--no-keep", "--slug", "s"], runArgs, "run"),
    ).not.toThrow();
  });

  test("a valued flag without its value is a usage error", () => {
    expect(() => assertKnownFlags(["--slug"], runArgs, "run")).toThrow(/needs a value/);
  });
});
