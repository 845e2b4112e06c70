import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CachedToken,
  cachedTokenProvider,
  createTokenCache,
  REFRESH_MARGIN_MS,
  tokenCacheDir,
} from "../../../src/providers/aws-lambda-microvm/token-cache.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-tokens-"));
  dirs.push(dir);
  return dir;
}

const MINUTE = 60_000;

describe("tokenCacheDir", () => {
  test("runtime dir first, else the state dir", () => {
    expect(tokenCacheDir({ XDG_RUNTIME_DIR: "/run/user/1000" }, "/state")).toBe(
      "/run/user/1000/crabbox/tokens",
    );
    expect(tokenCacheDir({ XDG_RUNTIME_DIR: "relative" }, "/state")).toBe("/state/tokens");
    expect(tokenCacheDir({}, "/state")).toBe("/state/tokens");
  });
});

describe("createTokenCache", () => {
  test("writes a 0600 file in a 0700 dir and reads it back while ≥ 5 minutes remain", async () => {
    const dir = join(tempDir(), "tokens");
    let clock = 1_000_000;
    const cache = createTokenCache({ dir, now: () => clock });
    await cache.write("microvm-abc", { token: "jwe.token", expiresAtMs: clock + 60 * MINUTE });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "microvm-abc.json")).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["microvm-abc.json"]);
    expect(await cache.read("microvm-abc")).toEqual({
      token: "jwe.token",
      expiresAtMs: 1_000_000 + 60 * MINUTE,
    });
    clock += 55 * MINUTE;
    expect(await cache.read("microvm-abc")).toBeDefined();
    clock += 1;
    expect(await cache.read("microvm-abc")).toBeUndefined();
  });

  test("delete forgets; missing and corrupt files read as no token", async () => {
    const dir = tempDir();
    const cache = createTokenCache({ dir, now: () => 0 });
    expect(await cache.read("microvm-none")).toBeUndefined();
    await cache.write("microvm-a", { token: "t", expiresAtMs: 60 * MINUTE });
    await cache.delete("microvm-a");
    await cache.delete("microvm-a");
    expect(await cache.read("microvm-a")).toBeUndefined();
    writeFileSync(join(dir, "microvm-b.json"), "{not json");
    expect(await cache.read("microvm-b")).toBeUndefined();
  });

  test("odd ids never escape the directory", async () => {
    const dir = join(tempDir(), "t");
    const cache = createTokenCache({ dir, now: () => 0 });
    await cache.write("../../escape", { token: "t", expiresAtMs: 60 * MINUTE });
    const files = readdirSync(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^[0-9a-f]{32}\.json$/);
    expect(await cache.read("../../escape")).toMatchObject({ token: "t" });
  });
});

describe("cachedTokenProvider", () => {
  function setup(start = 0) {
    const dir = tempDir();
    const state = { clock: start, mints: 0 };
    const now = () => state.clock;
    const cache = createTokenCache({ dir, now });
    const mint = async (): Promise<CachedToken> => {
      state.mints++;
      await Bun.sleep(5);
      return { token: `tok-${state.mints}`, expiresAtMs: state.clock + 60 * MINUTE };
    };
    return {
      dir,
      state,
      cache,
      provider: () => cachedTokenProvider({ cache, microvmId: "microvm-1", mint, now }),
    };
  }

  test("mints once, then reuses from memory and, in a new process, from the file", async () => {
    const { state, provider, dir } = setup();
    const first = provider();
    expect(await first({ forceRefresh: false })).toEqual({ value: "tok-1", fromCache: false });
    expect(await first({ forceRefresh: false })).toEqual({ value: "tok-1", fromCache: true });
    expect(await provider()({ forceRefresh: false })).toEqual({ value: "tok-1", fromCache: true });
    expect(state.mints).toBe(1);
    expect(JSON.parse(readFileSync(join(dir, "microvm-1.json"), "utf8")).token).toBe("tok-1");
  });

  test("near expiry (less than 5 minutes left) a new token is minted", async () => {
    const { state, provider } = setup();
    const get = provider();
    await get({ forceRefresh: false });
    state.clock += 60 * MINUTE - REFRESH_MARGIN_MS + 1;
    expect(await get({ forceRefresh: false })).toEqual({ value: "tok-2", fromCache: false });
  });

  test("forceRefresh always mints; concurrent callers share one mint", async () => {
    const { state, provider } = setup();
    const get = provider();
    const results = await Promise.all([1, 2, 3].map(() => get({ forceRefresh: false })));
    expect(new Set(results.map((r) => r.value))).toEqual(new Set(["tok-1"]));
    expect(state.mints).toBe(1);
    expect(await get({ forceRefresh: true })).toEqual({ value: "tok-2", fromCache: false });
  });
});
