/**
 * `GET /v1/sync/manifest` and `POST /v1/sync`: the runner side of delta sync. The base fingerprint
 * is checked before a byte of the body is read; then the metadata member, `clean`, deletes and
 * writes are applied in that order; the manifest is saved last and always describes the disk, even
 * after a refused or interrupted apply.
 */
import {
  type BigIntStats,
  closeSync,
  fchmodSync,
  fstatSync,
  lstatSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { lstat, open, readlink, rename, rm, symlink, unlink } from "node:fs/promises";
import { join } from "node:path";
import { normalizeMode } from "../src/protocol/fingerprint.ts";
import { readBody, readTar, TarFormatError } from "../src/protocol/tar.ts";
import {
  EMPTY_FINGERPRINT,
  MAX_SYNC_BODY_BYTES,
  type ManifestResponse,
  SYNC_BASE_HEADER,
  SYNC_META_NAME,
  type SyncMeta,
  type SyncResult,
} from "../src/protocol/types.ts";
import { decompressStream } from "../src/sync/compress.ts";
import { badRequest, jsonResponse, RunnerError } from "./errors.ts";
import {
  describePath,
  loadManifest,
  type Manifest,
  manifestFingerprint,
  publicEntries,
  refreshManifest,
  type StoredEntry,
  saveManifest,
  stamp,
  unsyncedSummary,
  walk,
} from "./manifest.ts";
import { type RunnerState, syncingOverlap } from "./state.ts";
import {
  checkEntryPath,
  checkWorkdir,
  ensureWorkdir,
  parentOf,
  prepareParents,
  pruneEmptyDirs,
} from "./workdir.ts";

const MAX_META_BYTES = 64 * 1024 * 1024;
const FINGERPRINT_PATTERN = /^[0-9a-f]{64}$/;

function busy(workdir: string, active: string): RunnerError {
  return new RunnerError(
    "busy",
    active === workdir
      ? `a sync into ${workdir} is in progress`
      : `a sync into ${active} (overlapping ${workdir}) is in progress`,
  );
}

/**
 * Loads and refreshes a workdir's manifest, saving it when the disk had changed. Readers outside a
 * sync save only while no sync holds the workdir, so a slow refresh can never overwrite the
 * manifest a sync just wrote.
 */
export async function currentManifest(
  state: RunnerState,
  workdir: string,
  hostWorkdir: string,
  holdsLock = false,
): Promise<Manifest | undefined> {
  const manifest = await loadManifest(state.paths, workdir);
  if (manifest && (await refreshManifest(hostWorkdir, manifest))) {
    if (holdsLock || !syncingOverlap(state, workdir)) await saveManifest(state.paths, workdir, manifest);
  }
  return manifest;
}

export async function handleManifest(state: RunnerState, url: URL): Promise<Response> {
  const workdir = url.searchParams.get("workdir") ?? "";
  const hostWorkdir = checkWorkdir(state.paths, workdir);
  const active = syncingOverlap(state, workdir);
  if (active) throw busy(workdir, active);
  const manifest = await currentManifest(state, workdir, hostWorkdir);
  const body: ManifestResponse = {
    workdir,
    fingerprint: manifestFingerprint(manifest),
    entries: manifest
      ? publicEntries(manifest).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
      : [],
  };
  if (url.searchParams.get("unsynced") === "1") body.unsynced = await unsyncedSummary(hostWorkdir, manifest);
  return jsonResponse(body);
}

export async function handleSync(state: RunnerState, request: Request, url: URL): Promise<Response> {
  const workdir = url.searchParams.get("workdir") ?? "";
  const hostWorkdir = checkWorkdir(state.paths, workdir);
  const base = request.headers.get(SYNC_BASE_HEADER);
  if (base === null || (base !== EMPTY_FINGERPRINT && !FINGERPRINT_PATTERN.test(base))) {
    throw badRequest(`X-Crabbox-Sync-Base must be '${EMPTY_FINGERPRINT}' or a lowercase sha256 fingerprint`);
  }
  const encoding = (request.headers.get("content-encoding") ?? "identity").trim().toLowerCase();
  if (encoding !== "identity" && encoding !== "gzip" && encoding !== "zstd") {
    throw badRequest(`unsupported Content-Encoding ${JSON.stringify(encoding)} (gzip, zstd or identity)`);
  }
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_SYNC_BODY_BYTES) {
    throw new RunnerError("too_large", `sync body of ${declared} bytes exceeds ${MAX_SYNC_BODY_BYTES} bytes`);
  }
  if (!request.body) throw badRequest("sync needs a tar body");

  const active = syncingOverlap(state, workdir);
  if (active) throw busy(workdir, active);
  // Taken synchronously right after the check: no other request can slip in between.
  state.syncing.add(workdir);
  try {
    await ensureWorkdir(hostWorkdir, workdir);
    const manifest = await currentManifest(state, workdir, hostWorkdir, true);
    const current = manifestFingerprint(manifest);
    if (current !== base) {
      throw new RunnerError(
        "base_mismatch",
        `workdir ${workdir} has fingerprint ${current}, the sync was built on ${base}`,
        current,
      );
    }
    const counter = countingStream(MAX_SYNC_BODY_BYTES);
    let body = request.body.pipeThrough(counter.stream);
    if (encoding !== "identity") body = decompressStream(body, encoding);
    const apply = new Apply(hostWorkdir, manifest ?? new Map());
    try {
      await apply.run(body);
    } catch (error) {
      await saveManifest(state.paths, workdir, apply.manifest);
      throw classify(error);
    }
    await saveManifest(state.paths, workdir, apply.manifest);
    const fingerprint = manifestFingerprint(apply.manifest);
    const expect = apply.meta?.expect;
    if (fingerprint !== expect) {
      throw new RunnerError(
        "expect_mismatch",
        `after the sync ${workdir} has fingerprint ${fingerprint}, the client expected ${expect}`,
        fingerprint,
      );
    }
    const result: SyncResult = {
      fingerprint,
      written: apply.written,
      deleted: apply.deleted,
      removedUnsynced: apply.removedUnsynced,
      bytesIn: counter.bytes(),
    };
    return jsonResponse(result);
  } finally {
    state.syncing.delete(workdir);
  }
}

/** RunnerErrors pass; filesystem failures are ours (500); everything else is a malformed body. */
function classify(error: unknown): unknown {
  if (error instanceof RunnerError) return error;
  const errno = error as NodeJS.ErrnoException;
  if (typeof errno?.code === "string" && typeof errno.syscall === "string") return error;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof TarFormatError) return badRequest(`malformed sync archive: ${message}`);
  return badRequest(`malformed sync body: ${message}`);
}

function countingStream(limit: number): { stream: TransformStream<Uint8Array, Uint8Array>; bytes(): number } {
  let total = 0;
  const stream = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      total += chunk.length;
      if (total > limit) {
        controller.error(new RunnerError("too_large", `sync body exceeds ${limit} bytes`));
        return;
      }
      controller.enqueue(chunk);
    },
  });
  return { stream, bytes: () => total };
}

function parseMeta(bytes: Uint8Array): SyncMeta {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw badRequest(`${SYNC_META_NAME} is not valid JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest(`${SYNC_META_NAME} must be an object`);
  }
  const meta = value as Record<string, unknown>;
  if (meta.version !== 1) throw badRequest(`${SYNC_META_NAME} version must be 1`);
  if (!Array.isArray(meta.deletes) || !meta.deletes.every((path) => typeof path === "string")) {
    throw badRequest(`${SYNC_META_NAME} deletes must be an array of paths`);
  }
  if (typeof meta.expect !== "string" || !FINGERPRINT_PATTERN.test(meta.expect)) {
    throw badRequest(`${SYNC_META_NAME} expect must be a sha256 fingerprint`);
  }
  const result: SyncMeta = { version: 1, deletes: meta.deletes as string[], expect: meta.expect };
  if (meta.clean !== undefined) {
    const clean = meta.clean as { keep?: unknown } | null;
    const keep = clean?.keep ?? [];
    if (
      typeof clean !== "object" ||
      clean === null ||
      !Array.isArray(keep) ||
      !keep.every((g) => typeof g === "string")
    ) {
      throw badRequest(`${SYNC_META_NAME} clean must be {keep: [globs]}`);
    }
    result.clean = { keep: keep as string[] };
  }
  for (const path of result.deletes) checkEntryPath(path, "delete path");
  return result;
}

/** Files up to this size are received whole and written with synchronous calls (writeSmallFile). */
const SMALL_FILE_BYTES = 1024 * 1024;

/** Writes all of `content` to a new file's descriptor and gives it `mode`. */
function fillSync(fd: number, content: Uint8Array, mode: number): void {
  let offset = 0;
  while (offset < content.length) offset += writeSync(fd, content, offset, content.length - offset);
  // Explicit chmod, never through the umask: the fingerprint includes the mode.
  fchmodSync(fd, mode);
}

/** One sync apply. Its manifest is updated after every completed step, so it is always the truth. */
class Apply {
  meta: SyncMeta | undefined;
  written = 0;
  deleted = 0;
  removedUnsynced = 0;
  /** Directories proven real in this apply (see prepareParents); anything this apply removes leaves it. */
  private readonly knownDirs = new Set<string>();

  constructor(
    private readonly hostWorkdir: string,
    readonly manifest: Manifest,
  ) {}

  async run(body: ReadableStream<Uint8Array>): Promise<void> {
    // `entry.body` is made on first use: small files never need the stream, only bytes().
    for await (const entry of readTar(body)) {
      const header = entry.header;
      if (this.meta === undefined) {
        if (header.path !== SYNC_META_NAME || header.type !== "file") {
          throw badRequest(`the first member of a sync archive must be ${SYNC_META_NAME}`);
        }
        this.meta = parseMeta(await readBody(entry.body, MAX_META_BYTES));
        if (this.meta.clean) await this.clean(this.meta.clean.keep);
        for (const path of this.meta.deletes) await this.delete(path);
        continue;
      }
      if (header.path === SYNC_META_NAME) throw badRequest(`${SYNC_META_NAME} may only be the first member`);
      checkEntryPath(header.path, "tar entry");
      switch (header.type) {
        case "file":
          if (header.size <= SMALL_FILE_BYTES) {
            const existing = await this.clearFor(header.path);
            this.writeSmallFile(header.path, normalizeMode(header.mode), await entry.bytes(), existing);
          } else {
            await this.writeFile(header.path, normalizeMode(header.mode), entry.body);
          }
          break;
        case "symlink":
          if (header.linkpath === "" || header.linkpath.includes("\0")) {
            throw badRequest(`symlink ${JSON.stringify(header.path)} has an empty target`);
          }
          await this.writeSymlink(header.path, header.linkpath);
          break;
        case "directory":
          // Directories follow from the files in them; empty ones are not part of a manifest.
          break;
        default:
          throw new RunnerError(
            "unsafe_path",
            `tar entry ${JSON.stringify(header.path)} is a ${header.type}: only regular files and symlinks are synced`,
          );
      }
    }
    if (this.meta === undefined) throw badRequest(`the sync archive has no ${SYNC_META_NAME}`);
  }

  /** Drops manifest entries at or below `rel` (something else now lives there). */
  private forget(rel: string): boolean {
    let wasSynced = false;
    for (const path of [...this.manifest.keys()]) {
      if (path === rel || path.startsWith(`${rel}/`)) {
        this.manifest.delete(path);
        wasSynced = true;
      }
    }
    return wasSynced;
  }

  private async clean(keep: string[]): Promise<void> {
    const globs = keep.map((pattern) => new Bun.Glob(pattern));
    const kept = (path: string) => {
      const segments = path.split("/");
      for (let i = 1; i <= segments.length; i++) {
        const prefix = segments.slice(0, i).join("/");
        if (globs.some((glob) => glob.match(prefix))) return true;
      }
      return false;
    };
    const dirs: string[] = [];
    for await (const entry of walk(this.hostWorkdir)) {
      if (kept(entry.path)) continue;
      if (entry.kind === "directory") {
        dirs.push(entry.path);
        continue;
      }
      if (this.manifest.has(entry.path)) continue;
      await rm(join(this.hostWorkdir, entry.path), { force: true, recursive: entry.kind === "other" });
      this.removedUnsynced++;
    }
    // Deepest first, so parents are empty by the time they are tried.
    for (const dir of dirs.reverse()) await pruneEmptyDirs(this.hostWorkdir, dir);
    this.knownDirs.clear();
  }

  private async delete(path: string): Promise<void> {
    const exists = await prepareParents(this.hostWorkdir, path, { create: false, known: this.knownDirs });
    this.manifest.delete(path);
    if (!exists) return;
    const host = join(this.hostWorkdir, path);
    const stats = await lstat(host).catch(() => undefined);
    // A directory now stands where a synced file was: not crabbox's, left alone.
    if (!stats || stats.isDirectory()) return;
    await unlink(host);
    this.deleted++;
    await pruneEmptyDirs(this.hostWorkdir, parentOf(path));
    this.knownDirs.clear();
  }

  /**
   * Makes room for a synced entry at `path`: its parents become real dirs, a dir in its place goes.
   * Returns whether a file or symlink still stands at `path` (to be replaced by a rename).
   */
  private async clearFor(path: string): Promise<boolean> {
    await prepareParents(this.hostWorkdir, path, {
      create: true,
      known: this.knownDirs,
      onReplace: async (rel) => {
        if (!this.forget(rel)) this.removedUnsynced++;
      },
    });
    const host = join(this.hostWorkdir, path);
    // Synchronous: on a first sync this is one cheap ENOENT per file, not worth a thread-pool hop.
    const stats = lstatSync(host, { throwIfNoEntry: false });
    if (!stats) return false;
    if (stats.isDirectory()) {
      for await (const entry of walk(host)) {
        if (entry.kind !== "directory" && !this.manifest.has(`${path}/${entry.path}`)) this.removedUnsynced++;
      }
      this.forget(path);
      await rm(host, { recursive: true, force: true });
      this.knownDirs.clear();
      return false;
    }
    if (!this.manifest.has(path)) this.removedUnsynced++;
    return true;
  }

  private tempName(path: string): string {
    const parent = parentOf(path);
    const name = `.crabbox-tmp-${crypto.randomUUID()}`;
    return join(this.hostWorkdir, parent, name);
  }

  private async writeFile(path: string, mode: number, content: ReadableStream<Uint8Array>): Promise<void> {
    await this.clearFor(path);
    const temp = this.tempName(path);
    let renamed = false;
    try {
      // O_EXCL | O_NOFOLLOW: the temp name is fresh and never a link someone planted.
      const handle = await open(temp, "wx", 0o600);
      const hasher = new Bun.CryptoHasher("sha256");
      let size = 0;
      try {
        const reader = content.getReader();
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          hasher.update(value);
          size += value.length;
          let offset = 0;
          while (offset < value.length) {
            const { bytesWritten } = await handle.write(value, offset, value.length - offset);
            offset += bytesWritten;
          }
        }
        // Explicit chmod, never through the umask: the fingerprint includes the mode.
        await handle.chmod(mode);
      } finally {
        await handle.close();
      }
      await rename(temp, join(this.hostWorkdir, path));
      renamed = true;
      const stats = await lstat(join(this.hostWorkdir, path), { bigint: true });
      const entry: StoredEntry = {
        path,
        type: "file",
        mode,
        size,
        sha256: hasher.digest("hex"),
        stat: stamp(stats),
      };
      this.manifest.set(path, entry);
      this.written++;
    } finally {
      if (!renamed) await rm(temp, { force: true });
    }
  }

  /**
   * A small file in one go, with synchronous calls: a checkout is mostly small files, and a
   * thread-pool round trip for each of open, write, chmod, close, rename and lstat made a
   * 3,000-file first sync slower than the upload. Same guarantees as writeFile.
   *
   * When nothing stands at `path` (every file of a first sync) the file is created in place with
   * O_EXCL, which no planted file or symlink survives (it fails, and the temp-and-rename path
   * runs instead): no temp name, no rename, and its stat comes from the open descriptor. A
   * failed write removes what it created, so an interrupted apply leaves no partial file behind.
   */
  private writeSmallFile(path: string, mode: number, content: Uint8Array, existing: boolean): void {
    const host = join(this.hostWorkdir, path);
    if (!existing && this.createSmallFile(path, host, mode, content)) return;
    const temp = this.tempName(path);
    let renamed = false;
    try {
      // O_EXCL | O_NOFOLLOW: the temp name is fresh and never a link someone planted.
      const fd = openSync(temp, "wx", 0o600);
      try {
        fillSync(fd, content, mode);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, host);
      renamed = true;
      this.recordSmallFile(path, mode, content, lstatSync(host, { bigint: true }));
    } finally {
      if (!renamed) rmSync(temp, { force: true });
    }
  }

  /** A small file now on disk, in the manifest: its content was in hand, so no re-read. */
  private recordSmallFile(path: string, mode: number, content: Uint8Array, stat: BigIntStats): void {
    this.manifest.set(path, {
      path,
      type: "file",
      mode,
      size: content.length,
      sha256: new Bun.CryptoHasher("sha256").update(content).digest("hex"),
      stat: stamp(stat),
    });
    this.written++;
  }

  /** writeSmallFile's in-place create; false when something appeared at `path` meanwhile. */
  private createSmallFile(path: string, host: string, mode: number, content: Uint8Array): boolean {
    let fd: number;
    try {
      // O_CREAT | O_EXCL: fails on anything already there, a dangling symlink included.
      fd = openSync(host, "wx", 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw error;
    }
    let done = false;
    try {
      fillSync(fd, content, mode);
      this.recordSmallFile(path, mode, content, fstatSync(fd, { bigint: true }));
      done = true;
    } finally {
      closeSync(fd);
      if (!done) rmSync(host, { force: true });
    }
    return true;
  }

  private async writeSymlink(path: string, target: string): Promise<void> {
    await this.clearFor(path);
    const temp = this.tempName(path);
    let renamed = false;
    try {
      await symlink(target, temp);
      await rename(temp, join(this.hostWorkdir, path));
      renamed = true;
      const entry = await describePath(this.hostWorkdir, path);
      if (entry?.type !== "symlink" || (await readlink(join(this.hostWorkdir, path))) !== target) {
        throw new Error(`symlink ${path} changed while it was written`);
      }
      this.manifest.set(path, entry);
      this.written++;
    } finally {
      if (!renamed) await rm(temp, { force: true });
    }
  }
}
