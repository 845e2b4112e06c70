import { expect, test } from "bun:test";
import { CrabboxError, ExitCode } from "../../../src/core/errors.ts";
import { DEFAULT_COMPRESSION, formatCompression, parseCompression } from "../../../src/sync/compress.ts";

test("sync.compression: zstd:3 by default; encodings and levels as written", () => {
  expect(parseCompression(undefined)).toEqual(DEFAULT_COMPRESSION);
  expect(parseCompression(" ")).toEqual({ encoding: "zstd", level: 3 });
  expect(parseCompression("zstd")).toEqual({ encoding: "zstd", level: 3 });
  expect(parseCompression("ZSTD:19")).toEqual({ encoding: "zstd", level: 19 });
  expect(parseCompression("gzip")).toEqual({ encoding: "gzip", level: 6 });
  expect(parseCompression("gzip:1")).toEqual({ encoding: "gzip", level: 1 });
  expect(parseCompression("none")).toEqual({ encoding: "identity" });
  expect(formatCompression(parseCompression("gzip"))).toBe("gzip:6");
  expect(formatCompression(parseCompression("none"))).toBe("none");
  expect(formatCompression(DEFAULT_COMPRESSION)).toBe("zstd:3");
});

test("a malformed sync.compression is a usage error naming the choices", () => {
  for (const bad of ["brotli", "gzip:0", "gzip:10", "zstd:20", "zstd:", "none:1", "gzip-6"]) {
    let error: unknown;
    try {
      parseCompression(bad);
    } catch (caught) {
      error = caught;
    }
    expect(error, bad).toBeInstanceOf(CrabboxError);
    expect((error as CrabboxError).exitCode).toBe(ExitCode.usage);
    expect((error as CrabboxError).hint).toContain("zstd:<1-19>");
  }
});
