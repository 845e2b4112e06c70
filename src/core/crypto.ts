/**
 * The two crypto primitives the CLI needs — sha256 and random hex — without node:crypto where the
 * runtime has its own: under Bun, loading node:crypto costs ~15 ms, and every run paid it (the
 * warm rerun names its cache files by hash and its temp files by random suffix). Deno and Node
 * take node:crypto, loaded on first use.
 */

export interface Sha256 {
  update(data: string | Uint8Array): Sha256;
  /** Lowercase hex; the hasher is spent afterwards. */
  hex(): string;
}

interface NativeHasher {
  update(data: string | Uint8Array): unknown;
  digest(encoding: "hex"): string;
}

type NativeCrypto = { CryptoHasher: new (algorithm: "sha256") => NativeHasher };

let nodeCrypto: typeof import("node:crypto") | undefined;

function hasher(): NativeHasher {
  const bun = (globalThis as { Bun?: NativeCrypto }).Bun;
  if (bun) return new bun.CryptoHasher("sha256");
  nodeCrypto ??= process.getBuiltinModule("node:crypto") as typeof import("node:crypto");
  return nodeCrypto.createHash("sha256");
}

/** An incremental sha256 (strings are hashed as UTF-8). */
export function sha256(): Sha256 {
  const inner = hasher();
  const api: Sha256 = {
    update(data) {
      inner.update(data);
      return api;
    },
    hex: () => inner.digest("hex"),
  };
  return api;
}

/** Lowercase hex sha256 of bytes or a string (UTF-8). */
export function sha256Hex(data: string | Uint8Array): string {
  return sha256().update(data).hex();
}

/** `bytes` random bytes as lowercase hex (ids, temp-file suffixes). */
export function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
}
