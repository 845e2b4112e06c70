import { closeSync, lstatSync, openSync, readlinkSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { setImmediate } from "node:timers";
import { sha256 } from "../core/crypto.ts";
import { CrabboxError, ExitCode } from "../core/errors.ts";
import { symlinkEntry } from "../protocol/fingerprint.ts";
import type { ManifestEntry } from "../protocol/types.ts";
import type { LocalFile } from "./manifest.ts";

/**
 * Content hashes for the local manifest. Files are read in bounded chunks by a bounded pool of
 * workers, so memory stays flat for a 1 GiB tree; a stat-keyed cache lets a rerun hash only what
 * changed (issue 6 plugs in the persistent cache from hash-cache.ts).
 */

/** What identifies a file's content without reading it (git's stat data). */
export interface StatKey {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  mode: number;
}

export function statKeyOf(file: LocalFile): StatKey {
  return { size: file.size, mtimeMs: file.mtimeMs, ctimeMs: file.ctimeMs, ino: file.ino, mode: file.mode };
}

/**
 * A cache of sha256 by (path, stat key). `get` must return undefined unless it can vouch for the
 * hash — including the racy-clean case (a file modified within the timestamp granularity of when
 * it was hashed); `set` records a hash computed from content read after `hashedAtMs`.
 */
export interface HashCache {
  get(path: string, key: StatKey): string | undefined;
  set(path: string, key: StatKey, sha256: string, hashedAtMs: number): void;
}

export interface HashOptions {
  /** Files read at once (default 8). */
  concurrency?: number;
  cache?: HashCache;
  /** Injected clock for the cache's racy-clean rule (default Date.now). */
  now?: () => number;
}

export interface HashStats {
  /** Entries whose content was read. */
  hashed: number;
  /** Entries answered by the cache. */
  cached: number;
  bytesRead: number;
}

const CHUNK_BYTES = 256 * 1024;
/**
 * Files up to this size are read with synchronous calls into one reused buffer: for thousands of
 * small files, an open/read/close round trip through the thread pool per file cost more than the
 * hashing. Bigger files stay asynchronous, a chunk at a time, so the event loop keeps turning.
 */
const SYNC_READ_MAX_BYTES = 1024 * 1024;
/** Synchronous reads between turns of the event loop (progress, Ctrl-C). */
const SYNC_READS_PER_TURN = 64;

async function hashFile(absolute: string, buffer: Buffer): Promise<{ sha256: string; bytes: number }> {
  const handle = await open(absolute, "r");
  try {
    const hash = sha256();
    let bytes = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    return { sha256: hash.hex(), bytes };
  } finally {
    await handle.close();
  }
}

function hashFileSync(absolute: string, buffer: Buffer): { sha256: string; bytes: number } {
  const fd = openSync(absolute, "r");
  try {
    const hash = sha256();
    let bytes = 0;
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, null);
      if (read === 0) break;
      hash.update(buffer.subarray(0, read));
      bytes += read;
    }
    return { sha256: hash.hex(), bytes };
  } finally {
    closeSync(fd);
  }
}

function changedWhileHashing(path: string, cause?: unknown): CrabboxError {
  return new CrabboxError(`sync path ${path} changed while it was being hashed`, {
    exitCode: ExitCode.sync,
    hint: "something is still writing to the checkout; let it finish (or exclude the path) and run again",
    cause,
  });
}

/** The manifest entry of one local file, reading it; throws when it changed under us. */
async function entryFor(
  root: string,
  file: LocalFile,
  buffer: Buffer,
): Promise<{ entry: ManifestEntry; bytes: number }> {
  const absolute = join(root, file.path);
  if (file.type === "symlink") {
    let target: string;
    try {
      target = readlinkSync(absolute);
    } catch (error) {
      throw changedWhileHashing(file.path, error);
    }
    return { entry: symlinkEntry(file.path, target), bytes: 0 };
  }
  let result: { sha256: string; bytes: number };
  try {
    result =
      file.size <= SYNC_READ_MAX_BYTES && buffer.length >= SYNC_READ_MAX_BYTES
        ? hashFileSync(absolute, buffer)
        : await hashFile(absolute, buffer);
  } catch (error) {
    throw changedWhileHashing(file.path, error);
  }
  if (result.bytes !== file.size) throw changedWhileHashing(file.path);
  return {
    entry: { path: file.path, type: "file", mode: file.mode, size: file.size, sha256: result.sha256 },
    bytes: result.bytes,
  };
}

/** Re-stats a file and reports whether it still matches what the manifest recorded. */
function unchangedSince(root: string, file: LocalFile): boolean {
  try {
    const stat = lstatSync(join(root, file.path));
    return (
      stat.size === file.size &&
      stat.mtimeMs === file.mtimeMs &&
      stat.ctimeMs === file.ctimeMs &&
      stat.ino === file.ino &&
      (file.type === "symlink" ? stat.isSymbolicLink() : stat.isFile() && (stat.mode & 0o777) === file.mode)
    );
  } catch {
    return false;
  }
}

/**
 * Turns stat'ed local files into protocol manifest entries (same order). A file whose stat changes
 * between the manifest and the read is an exit-6 error naming it: syncing a half-written file would
 * be worse than asking the user to wait.
 */
export async function hashLocalFiles(
  root: string,
  files: readonly LocalFile[],
  options: HashOptions = {},
): Promise<{ entries: ManifestEntry[]; stats: HashStats }> {
  const cache = options.cache;
  const now = options.now ?? Date.now;
  const entries = new Array<ManifestEntry>(files.length);
  const stats: HashStats = { hashed: 0, cached: 0, bytesRead: 0 };
  const pending: number[] = [];
  for (let i = 0; i < files.length; i++) {
    const file = files[i] as LocalFile;
    // A LocalFile is a StatKey: no per-file key object on the path every run takes.
    const cached = file.type === "file" ? cache?.get(file.path, file) : undefined;
    if (cached !== undefined && file.type === "file") {
      entries[i] = { path: file.path, type: "file", mode: file.mode, size: file.size, sha256: cached };
      stats.cached++;
    } else {
      pending.push(i);
    }
  }

  // Small files first, read synchronously by this loop; big ones after, by a pool of async readers.
  const small = pending.filter((index) => (files[index] as LocalFile).size <= SYNC_READ_MAX_BYTES);
  const big = pending.filter((index) => (files[index] as LocalFile).size > SYNC_READ_MAX_BYTES);
  const hashOne = async (index: number, buffer: Buffer) => {
    const file = files[index] as LocalFile;
    const hashedAtMs = now();
    const { entry, bytes } = await entryFor(root, file, buffer);
    if (!unchangedSince(root, file)) throw changedWhileHashing(file.path);
    entries[index] = entry;
    stats.hashed++;
    stats.bytesRead += bytes;
    if (entry.type === "file") cache?.set(file.path, statKeyOf(file), entry.sha256, hashedAtMs);
  };

  const readBuffer = Buffer.allocUnsafe(SYNC_READ_MAX_BYTES);
  for (let i = 0; i < small.length; i++) {
    if (i % SYNC_READS_PER_TURN === SYNC_READS_PER_TURN - 1) await new Promise((r) => setImmediate(r));
    await hashOne(small[i] as number, readBuffer);
  }
  let next = 0;
  const worker = async () => {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    while (next < big.length) await hashOne(big[next++] as number, buffer);
  };
  const workers = Math.max(1, Math.min(options.concurrency ?? 8, big.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return { entries, stats };
}

/** An in-memory HashCache (tests, and one process hashing twice); trusts only non-racy entries. */
export function memoryHashCache(granularityMs = RACY_GRANULARITY_MS): HashCache {
  const map = new Map<string, { key: StatKey; sha256: string; hashedAtMs: number }>();
  return {
    get(path, key) {
      const record = map.get(path);
      if (!record || !sameStatKey(record.key, key)) return undefined;
      return isRacy(record.key, record.hashedAtMs, granularityMs) ? undefined : record.sha256;
    },
    set(path, key, sha256, hashedAtMs) {
      map.set(path, { key, sha256, hashedAtMs });
    },
  };
}

/**
 * Coarsest file-timestamp granularity we defend against (FAT: 2 s; HFS+: 1 s). A hash is trusted
 * only when the file's mtime is older than the moment its content was read by at least this much:
 * otherwise a rewrite with the same size in the same timestamp tick would keep the same stat key.
 */
export const RACY_GRANULARITY_MS = 2000;

export function isRacy(key: StatKey, hashedAtMs: number, granularityMs = RACY_GRANULARITY_MS): boolean {
  return !(key.mtimeMs + granularityMs <= hashedAtMs && key.ctimeMs + granularityMs <= hashedAtMs);
}

export function sameStatKey(a: StatKey, b: StatKey): boolean {
  return (
    a.size === b.size &&
    a.mtimeMs === b.mtimeMs &&
    a.ctimeMs === b.ctimeMs &&
    a.ino === b.ino &&
    a.mode === b.mode
  );
}
