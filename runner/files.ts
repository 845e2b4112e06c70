/**
 * `GET /v1/files?workdir=W&path=…&since=<ms>`: artifacts out of a workdir as a tar stream. Paths
 * and globs (`*`, `**`, `?`, `[…]`, `{a,b}`) are relative to W; walks never follow symlinks, a
 * symlink is returned as a symlink, and a path below a symlink is simply not matched, so nothing
 * outside W is ever read. The last member, `.crabbox-files.json`, lists what was stale (older
 * than `since`, runner clock) and what matched nothing.
 */
import { lstat, readlink } from "node:fs/promises";
import { join } from "node:path";
import { cwdProblem } from "../src/protocol/paths.ts";
import { createTarStream, type TarWriteEntry } from "../src/protocol/tar.ts";
import { FILES_META_NAME, type FilesMeta } from "../src/protocol/types.ts";
import { badRequest, RunnerError } from "./errors.ts";
import { walk } from "./manifest.ts";
import type { RunnerState } from "./state.ts";
import { checkWorkdir, prepareParents } from "./workdir.ts";

const GLOB_CHARS = /[*?[\]{}]/;
const encoder = new TextEncoder();

export async function handleFiles(state: RunnerState, url: URL): Promise<Response> {
  const workdir = url.searchParams.get("workdir") ?? "";
  const hostWorkdir = checkWorkdir(state.paths, workdir);
  const patterns = url.searchParams.getAll("path");
  if (patterns.length === 0) throw badRequest("at least one path= is required");
  for (const pattern of patterns) {
    const problem = cwdProblem(pattern);
    if (problem) throw new RunnerError("unsafe_path", `path ${JSON.stringify(pattern)}: ${problem}`);
  }
  const sinceText = url.searchParams.get("since");
  const since = sinceText === null ? undefined : Number(sinceText);
  if (since !== undefined && !Number.isFinite(since))
    throw badRequest("since must be milliseconds since the epoch");

  const rootStats = await lstat(hostWorkdir).catch(() => undefined);
  const matched = new Set<string>();
  const unmatched: string[] = [];
  if (!rootStats?.isDirectory()) {
    unmatched.push(...patterns);
  } else {
    let tree: { path: string; kind: string }[] | undefined;
    const allPaths = async () => {
      tree ??= await Array.fromAsync(walk(hostWorkdir));
      return tree;
    };
    for (const pattern of patterns) {
      const before = matched.size;
      let found = false;
      if (pattern === ".") {
        for (const entry of await allPaths()) {
          if (entry.kind !== "other" && entry.path !== FILES_META_NAME) matched.add(entry.path);
        }
        found = true;
      } else if (GLOB_CHARS.test(pattern)) {
        const glob = new Bun.Glob(pattern);
        const hits = (await allPaths()).filter((entry) => glob.match(entry.path));
        for (const hit of hits) await addWithChildren(hostWorkdir, hit.path, matched);
        found = hits.length > 0;
      } else {
        found = await addExact(hostWorkdir, pattern, matched);
      }
      if (!found && matched.size === before) unmatched.push(pattern);
    }
  }

  const stale: string[] = [];
  const ordered = [...matched].sort();
  async function* entries(): AsyncGenerator<TarWriteEntry> {
    for (const path of ordered) {
      const host = join(hostWorkdir, path);
      const stats = await lstat(host).catch(() => undefined);
      if (!stats) {
        unmatched.push(path);
        continue;
      }
      if (!stats.isDirectory() && since !== undefined && stats.mtimeMs < since) {
        stale.push(path);
        continue;
      }
      const mtime = Math.floor(stats.mtimeMs / 1000);
      if (stats.isSymbolicLink()) {
        yield { type: "symlink", path, target: await readlink(host), mtime };
      } else if (stats.isDirectory()) {
        yield { type: "directory", path, mode: stats.mode & 0o777, mtime };
      } else if (stats.isFile()) {
        yield {
          type: "file",
          path,
          mode: stats.mode & 0o777,
          size: stats.size,
          body: Bun.file(host).slice(0, stats.size).stream(),
          mtime,
        };
      }
    }
    const meta: FilesMeta = { stale, unmatched };
    const bytes = encoder.encode(JSON.stringify(meta));
    yield { type: "file", path: FILES_META_NAME, mode: 0o644, size: bytes.length, body: bytes };
  }
  return new Response(createTarStream(entries()), { headers: { "content-type": "application/x-tar" } });
}

/** An exact path: matched when it exists below real directories and is a file, symlink or dir. */
async function addExact(hostWorkdir: string, path: string, matched: Set<string>): Promise<boolean> {
  try {
    if (!(await prepareParents(hostWorkdir, path, { create: false }))) return false;
  } catch (error) {
    if (error instanceof RunnerError) return false; // below a symlink: outside W as far as we care
    throw error;
  }
  const stats = await lstat(join(hostWorkdir, path)).catch(() => undefined);
  if (!stats || !(stats.isFile() || stats.isSymbolicLink() || stats.isDirectory())) return false;
  await addWithChildren(hostWorkdir, path, matched);
  return true;
}

async function addWithChildren(hostWorkdir: string, path: string, matched: Set<string>): Promise<void> {
  if (path === FILES_META_NAME) return;
  const stats = await lstat(join(hostWorkdir, path)).catch(() => undefined);
  if (!stats || !(stats.isFile() || stats.isSymbolicLink() || stats.isDirectory())) return;
  matched.add(path);
  if (!stats.isDirectory()) return;
  for await (const entry of walk(hostWorkdir, path)) {
    if (entry.kind !== "other") matched.add(entry.path);
  }
}
