/**
 * The manifest fingerprint both sides compare before and after a sync. One implementation, used by
 * the CLI (under Bun and Deno), the runner and the emulator, so a fingerprint never differs because
 * two pieces of code disagreed about sorting or modes.
 *
 *   sha256 hex over, per entry sorted by path BYTES:
 *   `<path>\0<f|l>\0<mode: 3 octal digits>\0<size>\0<sha256 of content or of link target>\n`
 */
import { sha256, sha256Hex } from "../core/crypto.ts";
import type { ManifestEntry } from "./types.ts";

/** Symlink modes are meaningless and differ by OS (macOS reports 755, Linux 777); always 777. */
export const SYMLINK_MODE = 0o777;

const encoder = new TextEncoder();

/** Permission bits only: type bits, setuid/setgid/sticky never take part in a sync. */
export function normalizeMode(mode: number): number {
  return mode & 0o777;
}

/** Mode text by permission bits, filled as modes are met: 10⁵ lines do not each format a number. */
const MODE_TEXT: string[] = [];

/** The mode as the fingerprint spells it: exactly 3 octal digits. */
export function modeOctal(mode: number): string {
  const bits = normalizeMode(mode);
  MODE_TEXT[bits] ??= bits.toString(8).padStart(3, "0");
  return MODE_TEXT[bits];
}

/** The mode an entry of this type takes part in the fingerprint with. */
export function entryMode(entry: ManifestEntry): number {
  return entry.type === "symlink" ? SYMLINK_MODE : normalizeMode(entry.mode);
}

/** Compares paths by their UTF-8 bytes (JS string order is UTF-16 order, which differs above U+FFFF). */
export function comparePathBytes(a: string, b: string): number {
  return a === b ? 0 : compareBytes(encoder.encode(a), encoder.encode(b));
}

/** Sorts a copy of the entries the way the fingerprint (and every manifest on the wire) orders them. */
export function sortEntries<T extends { path: string }>(entries: readonly T[]): T[] {
  const keyed = entries.map((entry) => ({ entry, key: encoder.encode(entry.path) }));
  keyed.sort((a, b) => compareBytes(a.key, b.key));
  return keyed.map(({ entry }) => entry);
}

function compareBytes(left: Uint8Array, right: Uint8Array): number {
  const length = Math.min(left.length, right.length);
  for (let i = 0; i < length; i++) {
    const l = left[i] as number;
    const r = right[i] as number;
    if (l !== r) return l - r;
  }
  return left.length - right.length;
}

/** One manifest line, without hashing: useful for diagnostics and tests. */
export function fingerprintLine(entry: ManifestEntry): string {
  const kind = entry.type === "symlink" ? "l" : "f";
  return `${entry.path}\0${kind}\0${modeOctal(entryMode(entry))}\0${entry.size}\0${entry.sha256}\n`;
}

/** A UTF-16 surrogate: the one case where string order and UTF-8 byte order can disagree. */
const SURROGATE = /[\ud800-\udfff]/;

/** Lowercase hex sha256 of the manifest. Duplicate paths are a caller bug and are rejected. */
export function fingerprint(entries: readonly ManifestEntry[]): string {
  // Manifests almost always arrive sorted (both sides keep them that way): one string comparison
  // per entry proves it (strictly increasing: no duplicates either), and the surrogate test runs
  // once per batch of lines rather than once per path.
  for (let i = 1; i < entries.length; i++) {
    if (!((entries[i - 1] as ManifestEntry).path < (entries[i] as ManifestEntry).path)) {
      return hashLines(sortEntries(entries));
    }
  }
  const hash = sha256();
  let batch = "";
  for (let i = 0; i < entries.length; i++) {
    batch += fingerprintLine(entries[i] as ManifestEntry);
    if (batch.length >= 64 * 1024 || i === entries.length - 1) {
      // A surrogate means string order may not be byte order: take the exact, encoding sort.
      if (SURROGATE.test(batch)) return hashLines(sortEntries(entries));
      hash.update(batch);
      batch = "";
    }
  }
  return hash.hex();
}

/** The fingerprint of entries in byte order; a duplicate path is a caller bug. */
function hashLines(entries: readonly ManifestEntry[]): string {
  const hash = sha256();
  let previous: string | undefined;
  let batch = "";
  for (const entry of entries) {
    if (entry.path === previous) throw new Error(`manifest lists ${JSON.stringify(entry.path)} twice`);
    previous = entry.path;
    batch += fingerprintLine(entry);
    // Lines are hashed in batches: one update per line dominated large manifests (10⁵ entries).
    if (batch.length >= 64 * 1024) {
      hash.update(batch);
      batch = "";
    }
  }
  hash.update(batch);
  return hash.hex();
}

/** The manifest entry for a symlink: size and hash describe the target string's UTF-8 bytes. */
export function symlinkEntry(path: string, target: string): ManifestEntry {
  const bytes = encoder.encode(target);
  return { path, type: "symlink", target, size: bytes.length, sha256: sha256Hex(bytes) };
}
