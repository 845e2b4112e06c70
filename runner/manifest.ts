/**
 * The runner's record of what crabbox synced into a workdir, kept outside the workdir (under the
 * runner state dir) so neither a sync nor a remote command can forge it. Each entry carries the
 * stat it was hashed at; any change of size, mtime, ctime or inode means the file is hashed again
 * before the manifest is reported, so a file a remote command changed shows up as changed.
 */
import type { BigIntStats } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fingerprint, normalizeMode, symlinkEntry } from "../src/protocol/fingerprint.ts";
import { EMPTY_FINGERPRINT, type ManifestEntry } from "../src/protocol/types.ts";
import type { RunnerPaths } from "./paths.ts";

export interface StatStamp {
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
}

export type StoredEntry = ManifestEntry & { stat: StatStamp };

/** path -> entry. `undefined` means the workdir has no manifest yet (fingerprint `empty`). */
export type Manifest = Map<string, StoredEntry>;

interface ManifestFile {
  version: 1;
  workdir: string;
  entries: StoredEntry[];
}

export function stamp(stats: BigIntStats): StatStamp {
  return {
    size: String(stats.size),
    mtimeNs: String(stats.mtimeNs),
    ctimeNs: String(stats.ctimeNs),
    ino: String(stats.ino),
  };
}

function sameStamp(a: StatStamp, b: StatStamp): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

export async function loadManifest(paths: RunnerPaths, workdir: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(paths.manifestFile(workdir), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as ManifestFile;
    return new Map(parsed.entries.map((entry) => [entry.path, entry]));
  } catch {
    // A damaged state file must not wedge the workdir: report it as never synced, so the client
    // sends everything again (synced entries win over what is on disk).
    process.stderr.write(`crabbox-runner: manifest of ${workdir} is unreadable; treating it as empty\n`);
    return undefined;
  }
}

/** Atomically replaces the stored manifest (temp file + rename): a crash leaves the old or the new one. */
export async function saveManifest(paths: RunnerPaths, workdir: string, manifest: Manifest): Promise<void> {
  const file = paths.manifestFile(workdir);
  await mkdir(dirname(file), { recursive: true });
  const body: ManifestFile = { version: 1, workdir, entries: [...manifest.values()] };
  const temp = `${file}.${process.pid}.${crypto.randomUUID()}.tmp`;
  await writeFile(temp, JSON.stringify(body), { mode: 0o600 });
  await rename(temp, file);
}

export function manifestFingerprint(manifest: Manifest | undefined): string {
  return manifest === undefined ? EMPTY_FINGERPRINT : fingerprint(publicEntries(manifest));
}

export function publicEntries(manifest: Manifest): ManifestEntry[] {
  return [...manifest.values()].map(({ stat: _stat, ...entry }) => entry as ManifestEntry);
}

/** sha256 hex of a file's content, streamed. */
export async function hashFile(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

/** The current truth about one path inside the workdir, as a manifest entry (undefined if not a file/symlink). */
export async function describePath(hostWorkdir: string, path: string): Promise<StoredEntry | undefined> {
  const hostPath = join(hostWorkdir, path);
  const stats = await lstat(hostPath, { bigint: true }).catch(() => undefined);
  if (!stats) return undefined;
  if (stats.isSymbolicLink()) {
    const target = await readlink(hostPath);
    return { ...symlinkEntry(path, target), stat: stamp(stats) };
  }
  if (!stats.isFile()) return undefined;
  const sha256 = await hashFile(hostPath);
  // Re-stat: if the file changed while it was hashed, the next read hashes it again.
  const after = await lstat(hostPath, { bigint: true });
  const entry: StoredEntry = {
    path,
    type: "file",
    mode: normalizeMode(Number(stats.mode)),
    size: Number(stats.size),
    sha256,
    stat: stamp(stats),
  };
  if (!sameStamp(stamp(stats), stamp(after))) entry.stat = { ...entry.stat, ctimeNs: "changed" };
  return entry;
}

/**
 * Brings a manifest in line with the disk: entries whose stat changed are hashed again, entries that
 * vanished, changed type or now sit below a symlink are dropped. Returns whether anything changed.
 */
export async function refreshManifest(hostWorkdir: string, manifest: Manifest): Promise<boolean> {
  let changed = false;
  const realDirs = new Map<string, boolean>();
  const isRealDir = async (relDir: string): Promise<boolean> => {
    const known = realDirs.get(relDir);
    if (known !== undefined) return known;
    const stats = await lstat(join(hostWorkdir, relDir)).catch(() => undefined);
    const real = stats?.isDirectory() === true;
    realDirs.set(relDir, real);
    return real;
  };
  for (const [path, entry] of manifest) {
    const segments = path.split("/");
    let parentsOk = true;
    for (let i = 1; i < segments.length && parentsOk; i++) {
      parentsOk = await isRealDir(segments.slice(0, i).join("/"));
    }
    const stats = parentsOk
      ? await lstat(join(hostWorkdir, path), { bigint: true }).catch(() => undefined)
      : undefined;
    const sameType =
      stats !== undefined && (entry.type === "symlink" ? stats.isSymbolicLink() : stats.isFile());
    if (!stats || !sameType) {
      manifest.delete(path);
      changed = true;
      continue;
    }
    if (sameStamp(entry.stat, stamp(stats))) continue;
    const fresh = await describePath(hostWorkdir, path);
    if (!fresh || fresh.type !== entry.type) manifest.delete(path);
    else manifest.set(path, fresh);
    changed = true;
  }
  return changed;
}

export interface WalkEntry {
  /** Relative to the workdir, `/`-separated. */
  path: string;
  kind: "file" | "symlink" | "directory" | "other";
}

/** Walks a tree without following symlinks; directories are yielded before their contents. */
export async function* walk(hostDir: string, prefix = ""): AsyncGenerator<WalkEntry> {
  let names: import("node:fs").Dirent[];
  try {
    names = await readdir(prefix === "" ? hostDir : join(hostDir, prefix), { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return;
    throw error;
  }
  names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const dirent of names) {
    const path = prefix === "" ? dirent.name : `${prefix}/${dirent.name}`;
    const kind = dirent.isSymbolicLink()
      ? "symlink"
      : dirent.isDirectory()
        ? "directory"
        : dirent.isFile()
          ? "file"
          : "other";
    yield { path, kind };
    if (kind === "directory") yield* walk(hostDir, path);
  }
}

/** Files and symlinks in the workdir that the manifest does not list. */
export async function unsyncedSummary(
  hostWorkdir: string,
  manifest: Manifest | undefined,
): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  for await (const entry of walk(hostWorkdir)) {
    if (entry.kind === "directory" || manifest?.has(entry.path)) continue;
    count++;
    if (entry.kind === "file") {
      const stats = await lstat(join(hostWorkdir, entry.path)).catch(() => undefined);
      bytes += stats?.size ?? 0;
    }
  }
  return { count, bytes };
}
