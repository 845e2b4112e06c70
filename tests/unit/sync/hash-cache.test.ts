import { afterEach, describe, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Hex } from "../../../src/core/crypto.ts";
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
    const file = join(dir, "c.cache");
    const made = await loadHashCache(file, "/r");
    made.set("x", key(), SHA, 9_000);
    made.set("y/z", key(), SHA, 9_000);
    made.setListing({ key: "k", paths: ["x", "y/z"], flags: [1, 3], note: "kept" });
    await made.save();
    const good = readFileSync(file);
    const reloaded = await loadHashCache(file, "/r");
    expect(reloaded.size).toBe(2);
    expect(reloaded.get("y/z", key())).toBe(SHA);
    const listing = reloaded.listing as Record<string, unknown> & { flags: Uint8Array };
    expect({ ...listing, flags: Array.from(listing.flags) } as Record<string, unknown>).toEqual({
      key: "k",
      paths: ["x", "y/z"],
      flags: [1, 3],
      note: "kept",
    });
    expect(await loadHashCache(file, "/other").then((c) => c.size)).toBe(0);

    const text = good.toString("latin1");
    const shaAt = text.indexOf(SHA);
    const damaged = (at: number, byte: string) => {
      const copy = Buffer.from(good);
      copy.write(byte, at, "latin1");
      return copy;
    };
    for (const content of [
      Buffer.from("{torn"),
      Buffer.from(
        JSON.stringify({ version: 1, root: "/r", entries: { x: [5, 1000, 1000, 7, 420, SHA, 9000] } }),
      ),
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.from("x")]),
      damaged(0, "X"),
      damaged(shaAt + 3, "g"),
      damaged(text.indexOf('"count":2'), '"count":3'),
    ]) {
      writeFileSync(file, content);
      const cache = await loadHashCache(file, "/r");
      expect(cache.size).toBe(0);
      expect(cache.listing).toBeUndefined();
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

  test("carries the listing memo across saves, and a changed memo alone is saved", async () => {
    const file = join(tempDir(), "c.json");
    const cache = await loadHashCache(file, "/r");
    expect(cache.listing).toBeUndefined();
    cache.setListing({ key: "k1" });
    await cache.save();
    const reloaded = await loadHashCache(file, "/r");
    expect(reloaded.listing).toEqual({ key: "k1" });
    reloaded.set("a", key(), SHA, 9_000);
    await reloaded.save();
    expect((await loadHashCache(file, "/r")).listing).toEqual({ key: "k1" });
    // Memo paths that are not the records' paths are stored on their own.
    const third = await loadHashCache(file, "/r");
    third.setListing({ key: "k2", paths: ["a", "gone"], flags: [1, 0] });
    await third.save();
    const memo = (await loadHashCache(file, "/r")).listing as { paths: string[]; flags: Uint8Array };
    expect([memo.paths, Array.from(memo.flags)]).toEqual([
      ["a", "gone"],
      [1, 0],
    ]);
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
