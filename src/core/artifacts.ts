import {
  lstat,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  symlink,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { relativePathProblem } from "../protocol/paths.ts";
import { randomHex } from "./crypto.ts";
import { usageError } from "./errors.ts";

/**
 * `run --download <remote>[=<local>]`: what to fetch from the remote workdir after the command, and
 * where each fetched entry lands in the artifact dir. Entries come from the MicroVM, so they are
 * untrusted: every destination is a canonical relative path below the artifact dir, no entry is
 * written through a symlink, and nothing but plain files, directories and symlinks that stay inside
 * the dir is created.
 */

const GLOB_CHARS = /[*?[\]{}]/;

export interface DownloadSpec {
  /** As the user typed it. */
  raw: string;
  /** A file, directory or glob (`**` allowed), relative to the remote cwd; `.` = all of it. */
  remote: string;
  /** Relative to the artifact dir; undefined = the remote path (relative to the remote cwd). */
  local: string | undefined;
}

function tidy(path: string): string {
  return path
    .trim()
    .replace(/^(\.\/)+/, "")
    .replace(/\/+$/, "");
}

/** Parses one `--download` value; a path that could escape either side is a usage error (exit 2). */
export function parseDownloadSpec(value: string): DownloadSpec {
  const eq = value.indexOf("=");
  const remote = tidy(eq === -1 ? value : value.slice(0, eq)) || ".";
  const local = eq === -1 ? undefined : tidy(value.slice(eq + 1));
  const hint =
    "give paths relative to the remote working directory, e.g. --download coverage/lcov.info=lcov.info";
  if (remote !== ".") {
    const problem = relativePathProblem(remote);
    if (problem) throw usageError(`--download ${JSON.stringify(value)}: remote ${problem}`, hint);
  }
  if (local !== undefined) {
    const problem = local === "" ? "empty local path" : relativePathProblem(local);
    if (problem) {
      throw usageError(
        `--download ${JSON.stringify(value)}: local ${problem}`,
        "the local side is relative to the artifact dir (--artifact-dir); crabbox never writes outside it",
      );
    }
  }
  return { raw: value, remote, local };
}

/** The spec's pattern as the runner takes it: relative to the workdir. */
export function remotePattern(spec: DownloadSpec, cwd: string): string {
  if (cwd === ".") return spec.remote;
  return spec.remote === "." ? cwd : `${cwd}/${spec.remote}`;
}

/** The part of a pattern before its first glob segment (`reports/**\/*.xml` → `reports`). */
export function staticBase(pattern: string): string {
  if (pattern === ".") return "";
  const segments = pattern.split("/");
  const first = segments.findIndex((segment) => GLOB_CHARS.test(segment));
  return (first === -1 ? segments : segments.slice(0, first)).join("/");
}

/**
 * Where a fetched entry (relative to the workdir) goes, relative to the artifact dir; undefined when
 * the entry is not one the spec asked for (a hostile or confused runner).
 */
export function destinationFor(spec: DownloadSpec, cwd: string, entry: string): string | undefined {
  if (relativePathProblem(entry) !== undefined) return undefined;
  const underCwd =
    cwd === "." ? entry : entry.startsWith(`${cwd}/`) ? entry.slice(cwd.length + 1) : undefined;
  if (underCwd === undefined) return undefined;
  const base = staticBase(spec.remote);
  let rest: string;
  if (base === "") rest = underCwd;
  else if (underCwd === base) rest = "";
  else if (underCwd.startsWith(`${base}/`)) rest = underCwd.slice(base.length + 1);
  else return undefined;
  if (spec.local === undefined) return underCwd;
  return rest === "" ? spec.local : `${spec.local}/${rest}`;
}

/** `<repo root>/.crabbox/runs/<run id>`: the default artifact dir. */
export function defaultArtifactDir(repoRoot: string, runId: string): string {
  return join(repoRoot, ".crabbox", "runs", runId);
}

/**
 * `.crabbox/.gitignore` with `*`, so run artifacts are never committed — and never synced back up,
 * since sync follows git's ignore rules.
 */
export async function ensureCrabboxGitignore(repoRoot: string): Promise<void> {
  const file = join(repoRoot, ".crabbox", ".gitignore");
  const current = await readFile(file, "utf8").catch(() => undefined);
  if (current !== undefined) return;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, "*\n", { flag: "wx" }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
  });
}

/** An entry crabbox will not write, and why. */
export class UnsafeArtifactError extends Error {
  override readonly name = "UnsafeArtifactError";
}

/**
 * Writes entries below one directory and nowhere else. Parents are created one segment at a time
 * and must be real directories (a symlink or file in the way refuses the entry); files are written
 * to an exclusive temp name and renamed over the target, so an existing symlink is replaced, never
 * followed.
 */
export interface ArtifactWriter {
  readonly dir: string;
  directory(path: string, mode: number): Promise<void>;
  /** Returns the bytes written. */
  file(path: string, mode: number, mtime: number, body: ReadableStream<Uint8Array>): Promise<number>;
  /** A symlink whose target stays inside the dir; anything else is refused. */
  symlink(path: string, target: string): Promise<void>;
}

export async function createArtifactWriter(dir: string): Promise<ArtifactWriter> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true });

  const check = (path: string) => {
    const problem = relativePathProblem(path);
    if (problem) throw new UnsafeArtifactError(problem);
  };

  /** Creates (or verifies) every directory of `segments` below root; never follows a symlink. */
  async function ensureDirs(segments: readonly string[], mode = 0o755): Promise<void> {
    let current = root;
    for (const [index, segment] of segments.entries()) {
      current = join(current, segment);
      const stats = await lstat(current).catch(() => undefined);
      if (stats?.isDirectory()) continue;
      const where = segments.slice(0, index + 1).join("/");
      if (stats)
        throw new UnsafeArtifactError(`${where} is ${stats.isSymbolicLink() ? "a symlink" : "a file"}`);
      await mkdir(current, { mode: mode | 0o700 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "EEXIST") throw error;
      });
      if (!(await lstat(current)).isDirectory()) throw new UnsafeArtifactError(`${where} is not a directory`);
    }
  }

  /** Makes room for a non-directory at `target`: an old file or link goes, a directory refuses. */
  async function clear(target: string): Promise<void> {
    const stats = await lstat(target).catch(() => undefined);
    if (stats?.isDirectory()) throw new UnsafeArtifactError("a directory is in the way");
  }

  return {
    dir: root,
    async directory(path, mode) {
      check(path);
      await ensureDirs(path.split("/"), mode & 0o777);
    },
    async file(path, mode, mtime, body) {
      check(path);
      const segments = path.split("/");
      await ensureDirs(segments.slice(0, -1));
      const target = join(root, ...segments);
      await clear(target);
      const temp = join(dirname(target), `.${basename(target)}.crabbox-tmp-${randomHex(6)}`);
      const handle = await open(temp, "wx", 0o600);
      let bytes = 0;
      try {
        try {
          for await (const chunk of body) {
            await handle.write(chunk);
            bytes += chunk.byteLength;
          }
          await handle.chmod((mode & 0o777) | 0o600);
        } finally {
          await handle.close();
        }
        if (mtime > 0) await utimes(temp, mtime, mtime).catch(() => {});
        await rename(temp, target);
      } catch (error) {
        await rm(temp, { force: true }).catch(() => {});
        throw error;
      }
      return bytes;
    },
    async symlink(path, linkTarget) {
      check(path);
      const segments = path.split("/");
      const target = join(root, ...segments);
      // Relative and never `..`: every link then points at or below its own directory, so no chain
      // of links, however built, can lead out of the artifact dir.
      const segmentsOfTarget = linkTarget.split("/");
      if (
        linkTarget === "" ||
        linkTarget.startsWith("/") ||
        segmentsOfTarget.includes("..") ||
        linkTarget.includes("\0")
      ) {
        throw new UnsafeArtifactError(
          `symlink to ${JSON.stringify(linkTarget)} could point outside the artifact dir`,
        );
      }
      await ensureDirs(segments.slice(0, -1));
      await clear(target);
      await unlink(target).catch(() => {});
      await symlink(linkTarget, target);
    },
  };
}
