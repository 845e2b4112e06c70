/**
 * Workdir checks and the symlink-safe file operations a sync is built from. Every path below a
 * workdir is checked segment by segment with lstat, so nothing is ever written or deleted through
 * a symlink, whatever a remote command or an earlier archive entry left behind.
 */
import { lstat, mkdir, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { isWithin, relativePathProblem, workdirProblem } from "../src/protocol/paths.ts";
import { badRequest, unsafePath } from "./errors.ts";
import { type RunnerPaths, STATE_DIR, TMP_DIR } from "./paths.ts";

/** Validates a requested workdir (in-VM path) and returns its host path. */
export function checkWorkdir(paths: RunnerPaths, workdir: string | null | undefined): string {
  if (workdir === null || workdir === undefined || workdir === "") throw badRequest("workdir is required");
  const problem = workdirProblem(workdir);
  if (problem) throw badRequest(problem);
  if (isWithin(workdir, STATE_DIR) || isWithin(STATE_DIR, workdir)) {
    throw badRequest(`workdir ${workdir} overlaps the runner's state directory`);
  }
  if (isWithin(workdir, TMP_DIR)) throw badRequest(`workdir ${workdir} contains ${TMP_DIR}`);
  return paths.host(workdir);
}

/** Creates the workdir if needed; refuses a workdir that is itself a symlink. */
export async function ensureWorkdir(hostWorkdir: string, workdir: string): Promise<void> {
  const stats = await lstat(hostWorkdir).catch(() => undefined);
  if (stats?.isSymbolicLink()) throw unsafePath(`workdir ${workdir} is a symlink`);
  if (stats && !stats.isDirectory()) throw badRequest(`workdir ${workdir} exists and is not a directory`);
  if (!stats) await mkdir(hostWorkdir, { recursive: true, mode: 0o755 });
}

export function checkEntryPath(path: string, what: string): void {
  const problem = relativePathProblem(path);
  if (problem) throw unsafePath(`${what} ${JSON.stringify(path)}: ${problem}`);
}

export interface ParentOptions {
  /** Create missing directories (for writes); without it a missing parent ends the walk. */
  create: boolean;
  /**
   * A non-directory sits where a directory is needed. Called before it is removed; returns nothing.
   * Only used with `create`.
   */
  onReplace?: (relPath: string) => Promise<void>;
  /**
   * Directories (relative) this caller already proved to be real directories. A sync applying
   * thousands of files into the same few directories lstats each directory once instead of once
   * per file below it; it holds the workdir's sync lock, and commands cannot start while it runs.
   */
  known?: Set<string>;
}

/**
 * Walks the parents of `relPath` below the workdir. A symlink among them is always refused.
 * Returns false when a parent is missing and `create` is off (so the path cannot exist).
 */
export async function prepareParents(
  hostWorkdir: string,
  relPath: string,
  options: ParentOptions,
): Promise<boolean> {
  const segments = relPath.split("/");
  for (let i = 1; i < segments.length; i++) {
    const rel = segments.slice(0, i).join("/");
    if (options.known?.has(rel)) continue;
    const host = join(hostWorkdir, rel);
    const stats = await lstat(host).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (stats?.isSymbolicLink()) {
      throw unsafePath(`${JSON.stringify(relPath)} has a symlink parent ${JSON.stringify(rel)}`);
    }
    if (stats?.isDirectory()) {
      options.known?.add(rel);
      continue;
    }
    if (!options.create) return false;
    if (stats) {
      await options.onReplace?.(rel);
      await rm(host, { force: true });
    }
    await mkdir(host, { mode: 0o755 });
    options.known?.add(rel);
  }
  return true;
}

/** Removes now-empty directories from `relDir` upwards, stopping at the workdir or a non-empty dir. */
export async function pruneEmptyDirs(hostWorkdir: string, relDir: string): Promise<void> {
  let dir = relDir;
  while (dir !== "" && dir !== ".") {
    try {
      await rmdir(join(hostWorkdir, dir));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") {
        // Already gone: keep climbing.
      } else if (code === "ENOTEMPTY" || code === "EEXIST" || code === "ENOTDIR") {
        return;
      } else throw error;
    }
    const slash = dir.lastIndexOf("/");
    dir = slash === -1 ? "" : dir.slice(0, slash);
  }
}

export function parentOf(relPath: string): string {
  const slash = relPath.lastIndexOf("/");
  return slash === -1 ? "" : relPath.slice(0, slash);
}
