import { afterEach, describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Hex } from "../../../src/protocol/fingerprint.ts";
import { hashLocalFiles, type StatKey } from "../../../src/sync/hash.ts";
import { hashCacheFile, loadHashCache } from "../../../src/sync/hash-cache.ts";
import type { LocalFile } from "../../../src/sync/manifest.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-hash-cache-"));
  dirs.push(dir);
  return dir;
}

const key = (over: Partial<StatKey> = {}): StatKey => ({
  size: 5,
  mtimeMs: 1_000,
  ctimeMs: 1_000,
  ino: 7,
  mode: 0o644,
  ...over,
});
const SHA = "a".repeat(64);

function local(root: string, path: string): LocalFile {
  const stat = lstatSync(join(root, path));
  return {
    path,
    type: "file",
    mode: stat.mode & 0o777,
    size: stat.size,
    mtimeMs: stat.mtimeMs,
    ctimeMs: stat.ctimeMs,
    ino: stat.ino,
    dev: stat.dev,
    tracked: true,
  };
}

describe("persistent hash cache", () => {
  test("round-trips through its file (0600), one file per repository root", async () => {
    const state = tempDir();
    const file = hashCacheFile(state, "/repo/a");
    expect(file).not.toBe(hashCacheFile(state, "/repo/b"));
    const cache = await loadHashCache(file, "/repo/a");
    expect(cache.size).toBe(0);
    cache.set("x.txt", key(), SHA, 10_000);
    await cache.save();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = await loadHashCache(file, "/repo/a");
    expect(again.get("x.txt", key())).toBe(SHA);
    expect(again.get("x.txt", key({ ino: 8 }))).toBeUndefined();
    expect(again.get("x.txt", key({ size: 6 }))).toBeUndefined();
    expect(again.get("x.txt", key({ mtimeMs: 1_001 }))).toBeUndefined();
    expect(again.get("x.txt", key({ ctimeMs: 1_001 }))).toBeUndefined();
    expect(again.get("x.txt", key({ mode: 0o755 }))).toBeUndefined();
    expect(again.get("y.txt", key())).toBeUndefined();
  });

  test("racy records (hashed within the timestamp granularity of their mtime) are not trusted", async () => {
    const cache = await loadHashCache(join(tempDir(), "c.json"), "/r");
    cache.set("racy", key(), SHA, 1_500);
    cache.set("clean", key(), SHA, 3_000);
    expect(cache.get("racy", key())).toBeUndefined();
    expect(cache.get("clean", key())).toBe(SHA);
  });

  test("a corrupt, foreign or tampered file is rebuilt, never trusted", async () => {
    const dir = tempDir();
    const file = join(dir, "sync-cache", "c.json");
    mkdirSync(join(dir, "sync-cache"));
    for (const content of [
      "{torn",
      JSON.stringify({ version: 2, root: "/r", entries: { x: [5, 1000, 1000, 7, 420, SHA, 9000] } }),
      JSON.stringify({ version: 1, root: "/other", entries: { x: [5, 1000, 1000, 7, 420, SHA, 9000] } }),
      JSON.stringify({
        version: 1,
        root: "/r",
        entries: { x: [5, 1000, 1000, 7, 420, SHA, 9000], y: [1, "x"] },
      }),
      JSON.stringify({ version: 1, root: "/r", entries: { x: [5, 1000, 1000, 7, 420, "not-a-hash", 9000] } }),
    ]) {
      writeFileSync(file, content);
      const cache = await loadHashCache(file, "/r");
      expect(cache.size).toBe(0);
    }
  });

  test("retain drops paths that left the manifest; save is skipped when nothing changed", async () => {
    const dir = tempDir();
    const file = join(dir, "c.json");
    const cache = await loadHashCache(file, "/r");
    cache.set("a", key(), SHA, 9_000);
    cache.set("b", key(), SHA, 9_000);
    cache.retain(["a"]);
    await cache.save();
    const reloaded = await loadHashCache(file, "/r");
    expect(reloaded.size).toBe(1);
    writeFileSync(file, "sentinel");
    await reloaded.save();
    expect(readFileSync(file, "utf8")).toBe("sentinel");
  });

  test("with hashLocalFiles: a rerun reads only what changed", async () => {
    const root = tempDir();
    const state = tempDir();
    writeFileSync(join(root, "a"), "alpha");
    writeFileSync(join(root, "b"), "bravo");
    const file = hashCacheFile(state, root);
    const later = () => Date.now() + 60_000;

    const first = await loadHashCache(file, root);
    const run1 = await hashLocalFiles(root, [local(root, "a"), local(root, "b")], {
      cache: first,
      now: later,
    });
    expect(run1.stats.hashed).toBe(2);
    await first.save();

    writeFileSync(join(root, "b"), "bravo!");
    const second = await loadHashCache(file, root);
    const run2 = await hashLocalFiles(root, [local(root, "a"), local(root, "b")], {
      cache: second,
      now: later,
    });
    expect(run2.stats).toMatchObject({ hashed: 1, cached: 1 });
    expect(run2.entries[1]).toMatchObject({ sha256: sha256Hex("bravo!") });
  });

  test("a file hashed right after it was written is re-hashed next time (racy-clean)", async () => {
    const root = tempDir();
    writeFileSync(join(root, "a"), "alpha");
    const file = join(tempDir(), "c.json");
    const first = await loadHashCache(file, root);
    await hashLocalFiles(root, [local(root, "a")], { cache: first });
    await first.save();
    const second = await loadHashCache(file, root);
    const run = await hashLocalFiles(root, [local(root, "a")], {
      cache: second,
      now: () => Date.now() + 60_000,
    });
    expect(run.stats).toMatchObject({ hashed: 1, cached: 0 });
    const third = await hashLocalFiles(root, [local(root, "a")], { cache: second });
    expect(third.stats).toMatchObject({ hashed: 0, cached: 1 });
  });
});
