import { describe, expect, test } from "bun:test";
import { fingerprint, symlinkEntry } from "../../../src/protocol/fingerprint.ts";
import { EMPTY_FINGERPRINT, type ManifestEntry } from "../../../src/protocol/types.ts";
import { describePlan, EMPTY_REMOTE, isNoopPlan, planSync } from "../../../src/sync/plan.ts";

function remote(entries: ManifestEntry[]) {
  return { fingerprint: fingerprint(entries), entries };
}

function file(path: string, sha = "a", size = 1, mode = 0o644): ManifestEntry {
  return { path, type: "file", mode, size, sha256: sha.repeat(64).slice(0, 64) };
}

describe("planSync", () => {
  test("an empty remote gets everything, against the empty base", () => {
    const local = [file("b"), file("a/x", "b", 10)];
    const plan = planSync(local, EMPTY_REMOTE);
    expect(plan.base).toBe(EMPTY_FINGERPRINT);
    expect(plan.writes.map((e) => e.path)).toEqual(["a/x", "b"]);
    expect(plan.deletes).toEqual([]);
    expect(plan.bytes).toBe(11);
    expect(plan.expect).toBe(fingerprint(local));
  });

  test("identical trees are a no-op", () => {
    const local = [file("a"), symlinkEntry("l", "a")];
    const plan = planSync(local, remote([...local].reverse()));
    expect(plan.writes).toEqual([]);
    expect(plan.deletes).toEqual([]);
    expect(plan.unchanged).toBe(2);
    expect(plan.base).toBe(plan.expect);
    expect(isNoopPlan(plan)).toBe(true);
  });

  test("content, size and mode changes are writes; remote-only paths are deletes", () => {
    const before = [
      file("same"),
      file("content", "a"),
      file("mode", "a", 1, 0o644),
      file("gone"),
      file("size", "a", 1),
    ];
    const local = [
      file("same"),
      file("content", "b"),
      file("mode", "a", 1, 0o755),
      file("size", "a", 2),
      file("new"),
    ];
    const plan = planSync(local, remote(before));
    expect(plan.writes.map((e) => e.path)).toEqual(["content", "mode", "new", "size"]);
    expect(plan.deletes).toEqual(["gone"]);
    expect(plan.unchanged).toBe(1);
    expect(isNoopPlan(plan)).toBe(false);
  });

  test("a symlink retarget and a file↔symlink swap are writes", () => {
    const before = [symlinkEntry("link", "old"), file("became-link"), symlinkEntry("became-file", "x")];
    const local = [symlinkEntry("link", "new"), symlinkEntry("became-link", "t"), file("became-file")];
    expect(planSync(local, remote(before)).writes.map((e) => e.path)).toEqual([
      "became-file",
      "became-link",
      "link",
    ]);
  });

  test("file → directory: the file is deleted and the children written", () => {
    const plan = planSync([file("a/b"), file("a/c")], remote([file("a")]));
    expect(plan.deletes).toEqual(["a"]);
    expect(plan.writes.map((e) => e.path)).toEqual(["a/b", "a/c"]);
  });

  test("directory → file: the children are deleted and the file written", () => {
    const plan = planSync([file("a")], remote([file("a/b"), file("a/c/d")]));
    expect(plan.deletes).toEqual(["a/b", "a/c/d"]);
    expect(plan.writes.map((e) => e.path)).toEqual(["a"]);
  });

  test("paths are ordered by UTF-8 bytes, not UTF-16", () => {
    const plan = planSync([file("\u{1F600}"), file("\uFF5E"), file("z")], EMPTY_REMOTE);
    expect(plan.writes.map((e) => e.path)).toEqual(["z", "\uFF5E", "\u{1F600}"]);
  });

  test("a given base is kept (the fingerprint the runner reported)", () => {
    expect(planSync([file("a")], { fingerprint: "runner-fp", entries: [file("a")] }).base).toBe("runner-fp");
  });
});

describe("describePlan", () => {
  test("counts, bytes and where the bytes are", () => {
    const plan = planSync(
      [file("src/a", "b", 2048), file("src/b", "c", 10), file("top", "d", 5)],
      remote([file("old")]),
    );
    const description = describePlan(plan);
    expect(description).toMatchObject({ writes: 3, deletes: 1, unchanged: 0, bytes: 2063 });
    expect(description.topDirs).toEqual([
      { dir: "src", files: 2, bytes: 2058 },
      { dir: ".", files: 1, bytes: 5 },
    ]);
    expect(description.line).toBe("sync plan: 3 to write (2.0 KiB), 1 to delete, 0 unchanged");
  });
});
