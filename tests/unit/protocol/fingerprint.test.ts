import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { sha256Hex } from "../../../src/core/crypto.ts";
import {
  comparePathBytes,
  fingerprint,
  fingerprintLine,
  modeOctal,
  normalizeMode,
  sortEntries,
  symlinkEntry,
} from "../../../src/protocol/fingerprint.ts";
import type { ManifestEntry } from "../../../src/protocol/types.ts";

const file = (path: string, mode: number, content: string): ManifestEntry => ({
  path,
  type: "file",
  mode,
  size: Buffer.byteLength(content),
  sha256: sha256Hex(content),
});

describe("fingerprint", () => {
  test("is sha256 over the documented line format, sorted by path bytes", () => {
    const a = file("b.txt", 0o644, "bee");
    const b = file("a/x.sh", 0o755, "#!/bin/sh\n");
    const link = symlinkEntry("link", "a/x.sh");
    const expected = createHash("sha256")
      .update(`a/x.sh\u0000f\u0000755\u0000${10}\u0000${sha256Hex("#!/bin/sh\n")}\n`)
      .update(`b.txt\u0000f\u0000644\u0000${3}\u0000${sha256Hex("bee")}\n`)
      .update(`link\u0000l\u0000777\u0000${6}\u0000${sha256Hex("a/x.sh")}\n`)
      .digest("hex");
    expect(fingerprint([a, link, b])).toBe(expected);
    expect(fingerprint([link, b, a])).toBe(expected);
  });

  test("normalises modes: type bits and setuid are ignored, symlinks are always 777", () => {
    expect(normalizeMode(0o100755)).toBe(0o755);
    expect(modeOctal(0o4755)).toBe("755");
    expect(modeOctal(0o7)).toBe("007");
    expect(fingerprint([file("x", 0o100644, "1")])).toBe(fingerprint([file("x", 0o644, "1")]));
    const link = symlinkEntry("l", "t");
    expect(fingerprintLine(link)).toContain("\u0000l\u0000777\u0000");
  });

  test("mode and content changes change the fingerprint", () => {
    const base = fingerprint([file("x", 0o644, "1")]);
    expect(fingerprint([file("x", 0o755, "1")])).not.toBe(base);
    expect(fingerprint([file("x", 0o644, "2")])).not.toBe(base);
    expect(fingerprint([symlinkEntry("x", "1")])).not.toBe(base);
  });

  test("sorts by UTF-8 bytes, not UTF-16 code units", () => {
    // U+FF21 (EF BC A1) sorts before U+1F600 (F0 9F 98 80) in bytes, after it in UTF-16.
    const paths = ["😀", "Ａ", "a", "B"];
    expect(sortEntries(paths.map((path) => ({ path }))).map((e) => e.path)).toEqual(["B", "a", "Ａ", "😀"]);
    expect(comparePathBytes("Ａ", "😀")).toBeLessThan(0);
    expect("Ａ" < "😀").toBe(false);
  });

  test("an empty manifest hashes the empty string; duplicates are refused", () => {
    expect(fingerprint([])).toBe(sha256Hex(""));
    expect(() => fingerprint([file("x", 0o644, "1"), file("x", 0o644, "1")])).toThrow(/twice/);
  });
});
