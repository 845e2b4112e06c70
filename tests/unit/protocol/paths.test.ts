import { describe, expect, test } from "bun:test";
import { cwdProblem, isWithin, relativePathProblem, workdirProblem } from "../../../src/protocol/paths.ts";

describe("protocol path rules", () => {
  test("relative entry paths: canonical, no escape", () => {
    for (const ok of ["a", "a/b.txt", "ü/日本", ".hidden", "a..b", "with space", "back\\slash"]) {
      expect(relativePathProblem(ok)).toBeUndefined();
    }
    for (const bad of ["", "/abs", "../x", "a/../b", "a/./b", "./a", "a//b", "a/", "a\0b", ".", ".."]) {
      expect(relativePathProblem(bad)).toBeString();
    }
    expect(relativePathProblem(`${"x".repeat(256)}`)).toContain("255");
    expect(cwdProblem(".")).toBeUndefined();
    expect(cwdProblem("..")).toBeString();
  });

  test("workdirs: clean, absolute, not too broad", () => {
    for (const ok of ["/workspace/crabbox", "/work/project", "/srv/app", "/tmp/work", "/home/user/repo"]) {
      expect(workdirProblem(ok)).toBeUndefined();
    }
    for (const bad of [
      "",
      "relative",
      "/",
      "/etc",
      "/workspace",
      "/work",
      "/usr",
      "/tmp",
      "/var",
      "/proc/1",
      "/sys/x",
      "/a/../b",
      "/a/",
      "/a//b",
    ]) {
      expect(workdirProblem(bad)).toBeString();
    }
  });

  test("isWithin compares whole segments", () => {
    expect(isWithin("/a/b", "/a/b")).toBe(true);
    expect(isWithin("/a/b", "/a/b/c")).toBe(true);
    expect(isWithin("/a/b", "/a/bc")).toBe(false);
  });
});
