import { chmod, mkdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { sha256Hex } from "../../core/crypto.ts";
import { writeFileAtomic } from "../../core/state.ts";
import type { DataPlaneToken, TokenProvider } from "./http.ts";

/**
 * The one place a data-plane token may be stored: a 0600 file per MicroVM, so consecutive crabbox
 * commands reuse a token instead of minting one per request (CreateMicrovmAuthToken is limited to
 * 50 TPS per account). Tokens are reused until REFRESH_MARGIN_MS before expiry, deleted when the
 * lease stops, and never printed — not even in errors.
 */

/** Stop using a token this long before it expires: a request must not outlive its token. */
export const REFRESH_MARGIN_MS = 5 * 60 * 1000;

export interface CachedToken {
  token: string;
  /** Absolute expiry on the injected clock (ms). */
  expiresAtMs: number;
}

export interface TokenCacheOptions {
  /** Directory for the token files (see tokenCacheDir). */
  dir: string;
  /** Clock, injectable so tests (and the emulator's time scale) control expiry. */
  now?: () => number;
  refreshMarginMs?: number;
}

export interface TokenCache {
  /** A token with at least the refresh margin left, or undefined. */
  read(microvmId: string): Promise<CachedToken | undefined>;
  write(microvmId: string, token: CachedToken): Promise<void>;
  /** Forget the MicroVM's token (on stop/terminate). Missing is fine. */
  delete(microvmId: string): Promise<void>;
}

/** `$XDG_RUNTIME_DIR/crabbox/tokens` (tmpfs, per-user, cleared at logout) else `<state dir>/tokens`. */
export function tokenCacheDir(env: Readonly<Record<string, string | undefined>>, stateDir: string): string {
  const runtime = env.XDG_RUNTIME_DIR;
  return runtime?.startsWith("/") ? join(runtime, "crabbox", "tokens") : join(stateDir, "tokens");
}

/** MicroVM ids are plain (`microvm-…`); anything else is hashed so it can never name another path. */
function fileName(microvmId: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(microvmId)) return `${microvmId}.json`;
  return `${sha256Hex(microvmId).slice(0, 32)}.json`;
}

function parse(text: string): CachedToken | undefined {
  try {
    const value = JSON.parse(text) as Partial<CachedToken>;
    if (typeof value.token === "string" && value.token !== "" && typeof value.expiresAtMs === "number") {
      return { token: value.token, expiresAtMs: value.expiresAtMs };
    }
  } catch {
    // A torn or foreign file is treated as no token at all.
  }
  return undefined;
}

export function createTokenCache(options: TokenCacheOptions): TokenCache {
  const now = options.now ?? Date.now;
  const margin = options.refreshMarginMs ?? REFRESH_MARGIN_MS;
  const pathOf = (microvmId: string) => join(options.dir, fileName(microvmId));
  return {
    async read(microvmId) {
      let text: string;
      try {
        text = await readFile(pathOf(microvmId), "utf8");
      } catch {
        return undefined;
      }
      const cached = parse(text);
      if (!cached) {
        await unlink(pathOf(microvmId)).catch(() => {});
        return undefined;
      }
      return cached.expiresAtMs - now() >= margin ? cached : undefined;
    },
    async write(microvmId, token) {
      await mkdir(options.dir, { recursive: true, mode: 0o700 });
      await chmod(options.dir, 0o700).catch(() => {});
      await writeFileAtomic(pathOf(microvmId), JSON.stringify(token), 0o600);
    },
    async delete(microvmId) {
      await unlink(pathOf(microvmId)).catch(() => {});
    },
  };
}

export interface CachedTokenProviderOptions {
  cache: TokenCache;
  microvmId: string;
  /** Calls CreateMicrovmAuthToken (port 8080) and says when the token expires. */
  mint: () => Promise<CachedToken>;
  now?: () => number;
  refreshMarginMs?: number;
}

/**
 * The TokenProvider the data-plane client uses: memory, then the cache file, then a mint (stored
 * for the next command). Concurrent callers share one mint. `forceRefresh` (after a proxy 403 with
 * a cached token) always mints.
 */
export function cachedTokenProvider(options: CachedTokenProviderOptions): TokenProvider {
  const now = options.now ?? Date.now;
  const margin = options.refreshMarginMs ?? REFRESH_MARGIN_MS;
  let current: CachedToken | undefined;
  let minting: Promise<CachedToken> | undefined;

  const mint = () => {
    minting ??= (async () => {
      try {
        const fresh = await options.mint();
        current = fresh;
        // The file only saves the next command a mint; a full disk must not fail this one.
        await options.cache.write(options.microvmId, fresh).catch(() => {});
        return fresh;
      } finally {
        minting = undefined;
      }
    })();
    return minting;
  };

  return async ({ forceRefresh }): Promise<DataPlaneToken> => {
    if (!forceRefresh) {
      if (current && current.expiresAtMs - now() >= margin) return { value: current.token, fromCache: true };
      const stored = await options.cache.read(options.microvmId);
      if (stored) {
        current = stored;
        return { value: stored.token, fromCache: true };
      }
    }
    const fresh = await mint();
    return { value: fresh.token, fromCache: false };
  };
}
