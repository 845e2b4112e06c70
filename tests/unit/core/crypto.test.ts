import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { randomHex, sha256, sha256Hex } from "../../../src/core/crypto.ts";

describe("core/crypto", () => {
  test("sha256 agrees with node:crypto for strings (UTF-8), bytes and incremental updates", () => {
    const reference = (...parts: (string | Uint8Array)[]) => {
      const hash = createHash("sha256");
      for (const part of parts) hash.update(part);
      return hash.digest("hex");
    };
    expect(sha256Hex("")).toBe(reference(""));
    expect(sha256Hex("héllo 🦀")).toBe(reference("héllo 🦀"));
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(sha256Hex(bytes)).toBe(reference(bytes));
    expect(sha256().update("a").update(bytes).update("b").hex()).toBe(reference("a", bytes, "b"));
  });

  test("randomHex gives the asked number of random bytes as lowercase hex", () => {
    const seen = new Set(Array.from({ length: 50 }, () => randomHex(6)));
    expect(seen.size).toBe(50);
    for (const value of seen) expect(value).toMatch(/^[0-9a-f]{12}$/);
    expect(randomHex(16)).toMatch(/^[0-9a-f]{32}$/);
  });
});
