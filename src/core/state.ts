import { mkdir, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomHex } from "./crypto.ts";

/** Creates a state directory (and its parents) readable by the user only. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/**
 * Writes a file so readers see either the old or the new content, never a torn one, and a crash
 * leaves no half-written claim: temp file in the same directory (mode 0600), fsync, rename over
 * the target, fsync the directory so the rename itself survives a power cut.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  await ensurePrivateDir(dir);
  const temp = join(dir, `.${basename(path)}.tmp-${randomHex(6)}`);
  const handle = await open(temp, "wx", mode);
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
  await syncDir(dir);
}

/** Temp files `writeFileAtomic` leaves only if the process dies mid-write. */
export function isAtomicTempName(name: string): boolean {
  return name.startsWith(".") && name.includes(".tmp-");
}

async function syncDir(dir: string): Promise<void> {
  // Some platforms (and Deno's node:fs) refuse fsync on a directory handle; the rename already
  // happened, so durability of the directory entry is best effort there.
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    /* best effort */
  }
}
