import { describe, expect, test } from "bun:test";
import {
  compileExcludes,
  globToRegExp,
  normalizePattern,
  parseCrabboxIgnore,
} from "../../../src/sync/excludes.ts";

function decide(path: string, options: Parameters<typeof compileExcludes>[0] = {}, tracked = false) {
  return compileExcludes(options).decide(path, tracked);
}

describe("globToRegExp (Go filepath.Match)", () => {
  const match = (pattern: string, name: string) => globToRegExp(pattern)?.test(name) ?? false;

  test("* and ? never cross /", () => {
    expect(match("*.log", "a.log")).toBe(true);
    expect(match("*.log", "dir/a.log")).toBe(false);
    expect(match("a?c", "abc")).toBe(true);
    expect(match("a?c", "a/c")).toBe(false);
    expect(match("apps/*/.build", "apps/web/.build")).toBe(true);
    expect(match("apps/*/.build", "apps/web/x/.build")).toBe(false);
  });

  test("classes, negation, ranges and escapes", () => {
    expect(match("[abc].txt", "b.txt")).toBe(true);
    expect(match("[^abc].txt", "b.txt")).toBe(false);
    expect(match("[^abc].txt", "d.txt")).toBe(true);
    expect(match("file[0-9]", "file7")).toBe(true);
    expect(match("file[0-9]", "filex")).toBe(false);
    expect(match("\\*star", "*star")).toBe(true);
    expect(match("\\*star", "xstar")).toBe(false);
    expect(match("a.b", "axb")).toBe(false);
    expect(match("[\\]]", "]")).toBe(true);
    expect(match("(x)|y+", "(x)|y+")).toBe(true);
    expect(match("é?", "éü")).toBe(true);
  });

  test("malformed patterns match nothing", () => {
    for (const bad of ["[", "[]", "[a-", "[-a]", "a\\", "[z-a]"]) expect(globToRegExp(bad)).toBeNull();
  });
});

describe("rules", () => {
  test("normalisation: trimmed, forward slashes, no outer slashes", () => {
    expect(normalizePattern("  /build\\out/ ")).toBe("build/out");
  });

  test("built-ins exclude by segment anywhere, with the reason", () => {
    expect(decide("node_modules/x/index.js")).toEqual({
      excluded: true,
      reason: "builtin",
      pattern: "node_modules",
    });
    expect(decide("pkg/node_modules/x.js")).toMatchObject({ excluded: true, reason: "builtin" });
    expect(decide(".git/config")).toMatchObject({ excluded: true });
    expect(decide("src/._DS_thing")).toMatchObject({ excluded: true, pattern: "._*" });
    expect(decide(".yarn/cache/pkg.zip")).toMatchObject({ excluded: true, pattern: ".yarn/cache" });
    expect(decide("a/.yarn/cache/pkg.zip")).toEqual({ excluded: false });
    expect(decide("src/index.ts")).toEqual({ excluded: false });
    expect(decide("node_modules_notes.md")).toEqual({ excluded: false });
  });

  test("the last matching rule wins; ! re-includes; \\! is a literal !", () => {
    const options = { configExcludes: ["*.log", "!keep.log"], crabboxIgnore: ["\\!bang"] };
    expect(decide("a/debug.log", options)).toEqual({ excluded: true, reason: "config", pattern: "*.log" });
    expect(decide("a/keep.log", options)).toEqual({ excluded: false });
    expect(decide("!bang", options)).toEqual({ excluded: true, reason: "crabboxignore", pattern: "\\!bang" });
    expect(decide("node_modules/.bin/x", { crabboxIgnore: ["!node_modules"] })).toEqual({ excluded: false });
    expect(decide("x.log", { configExcludes: ["!x.log"], crabboxIgnore: ["*.log"] })).toMatchObject({
      excluded: true,
      reason: "crabboxignore",
    });
  });

  test("patterns with a slash match the path, its prefixes, or what lies under them", () => {
    const options = { configExcludes: ["docs/generated", "src/*/fixtures"] };
    expect(decide("docs/generated/a.html", options)).toMatchObject({ excluded: true });
    expect(decide("docs/generated", options)).toMatchObject({ excluded: true });
    expect(decide("other/docs/generated/a", options)).toEqual({ excluded: false });
    expect(decide("src/pkg/fixtures/big.bin", options)).toMatchObject({ excluded: true });
    expect(decide("src/pkg/deep/fixtures/big.bin", options)).toEqual({ excluded: false });
  });

  test("ambiguous built-ins spare tracked regular files; config rules do not", () => {
    expect(decide("dist/lib.js", {}, true)).toEqual({ excluded: false, protectedFrom: "dist" });
    expect(decide("dist/lib.js", {}, false)).toMatchObject({ excluded: true, reason: "builtin" });
    expect(decide("crates/x/target/out", {}, true)).toEqual({ excluded: false, protectedFrom: "target" });
    expect(decide("node_modules/a.js", {}, true)).toMatchObject({ excluded: true });
    expect(decide("dist/lib.js", { configExcludes: ["dist"] }, true)).toMatchObject({
      excluded: true,
      reason: "config",
    });
  });

  test("crabbox's own state is protected, case-insensitively, even against re-includes", () => {
    const options = { configExcludes: ["!.crabbox/env"], crabboxIgnore: ["!.crabbox"] };
    expect(decide(".crabbox/env", options)).toMatchObject({ excluded: true, reason: "protected" });
    expect(decide(".CRABBOX/Logs/run.log", options)).toMatchObject({ excluded: true, reason: "protected" });
    expect(decide(".crabbox/config.yaml", options)).toEqual({ excluded: false });
    expect(decide(".crabbox/environment", options)).toEqual({ excluded: false });
  });

  test("includes whitelist by prefix or whole-path glob", () => {
    const options = { includes: ["src", "/docs/", "*.md"] };
    expect(decide("src/a.ts", options)).toEqual({ excluded: false });
    expect(decide("docs/x/y.md", options)).toEqual({ excluded: false });
    expect(decide("README.md", options)).toEqual({ excluded: false });
    expect(decide("test/a.ts", options)).toEqual({ excluded: true, reason: "include" });
    expect(decide("srcx/a.ts", options)).toEqual({ excluded: true, reason: "include" });
    expect(decide("src/node_modules/a", options)).toMatchObject({ excluded: true, reason: "builtin" });
  });

  test(".crabboxignore skips blanks and comments and trims lines", () => {
    expect(parseCrabboxIgnore("# comment\n\n  big/  \r\n*.bin\n  # indented comment\n")).toEqual([
      "big/",
      "*.bin",
    ]);
  });
});
