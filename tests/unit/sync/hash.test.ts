import { afterEach, describe, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Hex } from "../../../src/core/crypto.ts";
import {
  type HashCache,
  hashLocalFiles,
  isRacy,
  memoryHashCache,
  type StatKey,
} from "../../../src/sync/hash.ts";
import type { LocalFile } from "../../../src/sync/manifest.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-hash-"));
  dirs.push(dir);
  return dir;
}

function local(root: string, path: string): LocalFile {
  const stat = lstatSync(join(root, path));
  const symlink = stat.isSymbolicLink();
  return {
    path,
    type: symlink ? "symlink" : "file",
    mode: symlink ? 0o777 : stat.mode & 0o777,
    size: stat.size,
    mtimeMs: stat.mtimeMs,
    ctimeMs: stat.ctimeMs,
    ino: stat.ino,
    dev: stat.dev,
    tracked: true,
  };
}

describe("hashLocalFiles", () => {
  test("files and symlinks become protocol entries, in order", async () => {
    const root = tempDir();
    writeFileSync(join(root, "a"), "alpha");
    writeFileSync(join(root, "big"), new Uint8Array(1024 * 1024 + 3).fill(7), { mode: 0o755 });
    symlinkSync("a", join(root, "l"));
    const files = ["a", "big", "l"].map((p) => local(root, p));
    const { entries, stats } = await hashLocalFiles(root, files, { concurrency: 2 });
    expect(entries).toEqual([
      { path: "a", type: "file", mode: files[0]?.mode ?? 0, size: 5, sha256: sha256Hex("alpha") },
      {
        path: "big",
        type: "file",
        mode: files[1]?.mode ?? 0,
        size: 1024 * 1024 + 3,
        sha256: sha256Hex(new Uint8Array(1024 * 1024 + 3).fill(7)),
      },
      { path: "l", type: "symlink", target: "a", size: 1, sha256: sha256Hex("a") },
    ]);
    expect(stats).toEqual({ hashed: 3, cached: 0, bytesRead: 5 + 1024 * 1024 + 3 });
  });

  test("a cache answers unchanged, non-racy files and is filled by hashing", async () => {
    const root = tempDir();
    writeFileSync(join(root, "a"), "alpha");
    const files = [local(root, "a")];
    let clock = (files[0]?.mtimeMs ?? 0) + 10_000;
    const cache = memoryHashCache();
    const first = await hashLocalFiles(root, files, { cache, now: () => clock });
    expect(first.stats.hashed).toBe(1);
    clock += 1000;
    const second = await hashLocalFiles(root, files, { cache, now: () => clock });
    expect(second.stats).toEqual({ hashed: 0, cached: 1, bytesRead: 0 });
    expect(second.entries).toEqual(first.entries);
  });

  test("a stat change misses the cache", async () => {
    const root = tempDir();
    writeFileSync(join(root, "a"), "alpha");
    const cache: HashCache = {
      get: (_path, key: StatKey) => (key.size === 5 ? "f".repeat(64) : undefined),
      set: () => {},
    };
    const before = await hashLocalFiles(root, [local(root, "a")], { cache });
    expect(before.entries[0]).toMatchObject({ sha256: "f".repeat(64) });
    writeFileSync(join(root, "a"), "alphabet");
    const after = await hashLocalFiles(root, [local(root, "a")], { cache });
    expect(after.entries[0]).toMatchObject({ sha256: sha256Hex("alphabet") });
  });

  test("a file rewritten between stat and hash is an exit-6 error naming it", async () => {
    const root = tempDir();
    writeFileSync(join(root, "a"), "alpha");
    const files = [local(root, "a")];
    writeFileSync(join(root, "a"), "alphabet soup");
    await expect(hashLocalFiles(root, files)).rejects.toThrow(
      "sync path a changed while it was being hashed",
    );
    rmSync(join(root, "a"));
    await expect(hashLocalFiles(root, files)).rejects.toMatchObject({ exitCode: 6 });
  });
});

describe("racy-clean rule", () => {
  const key = (mtimeMs: number, ctimeMs = mtimeMs): StatKey => ({
    size: 1,
    mtimeMs,
    ctimeMs,
    ino: 1,
    mode: 0o644,
  });

  test("a hash is trusted only when the file was older than the read by the granularity", () => {
    expect(isRacy(key(10_000), 10_500)).toBe(true);
    expect(isRacy(key(10_000), 12_000)).toBe(false);
    expect(isRacy(key(10_000, 11_000), 12_000)).toBe(true);
  });

  test("the memory cache refuses racy records (same size, same second rewrite)", () => {
    const cache = memoryHashCache();
    cache.set("a", key(10_000), "h", 10_400);
    expect(cache.get("a", key(10_000))).toBeUndefined();
    cache.set("a", key(10_000), "h", 20_000);
    expect(cache.get("a", key(10_000))).toBe("h");
    expect(cache.get("a", { ...key(10_000), ino: 2 })).toBeUndefined();
  });
});
