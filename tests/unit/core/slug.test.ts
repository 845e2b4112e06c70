import { describe, expect, test } from "bun:test";
import type { CrabboxError } from "../../../src/core/errors.ts";
import {
  fnv1a32,
  generatedSlug,
  normalizeSlug,
  pickSlug,
  requestedSlug,
  slugCandidates,
} from "../../../src/core/slug.ts";

test("fnv1a32 matches the reference vectors", () => {
  expect(fnv1a32("")).toBe(0x811c9dc5);
  expect(fnv1a32("a")).toBe(0xe40c292c);
  expect(fnv1a32("foobar")).toBe(0xbf9cf968);
});

describe("normalizeSlug", () => {
  test.each([
    ["Lambda Test", "lambda-test"],
    ["  --My__Slug!!  ", "my-slug"],
    ["a.b/c", "a-b-c"],
    ["ÄPI", "pi"],
    ["---", ""],
  ])("%p → %p", (input, output) => {
    expect(normalizeSlug(input)).toBe(output);
  });
});

describe("requestedSlug", () => {
  test("normalises a usable slug", () => {
    expect(requestedSlug("Blue Crab")).toBe("blue-crab");
  });

  test("an empty result is a usage error", () => {
    const error = (() => {
      try {
        requestedSlug("!!!");
      } catch (e) {
        return e as CrabboxError;
      }
    })();
    expect(error?.exitCode).toBe(2);
    expect(error?.message).toBe("--slug must contain at least one letter or digit");
  });

  test("more than 41 characters after normalisation is a usage error", () => {
    expect(() => requestedSlug("a".repeat(41))).not.toThrow();
    expect(() => requestedSlug("a".repeat(42))).toThrow(
      "--slug must be 41 characters or fewer after normalization",
    );
  });
});

describe("generated slugs", () => {
  test("are adjective-noun, seeded by the lease id", () => {
    const hash = fnv1a32("cbx_0123456789ab");
    const adjectives =
      "amber blue brisk coral crimson golden harbor jade pearl quick silver swift tidal violet".split(" ");
    const nouns = "barnacle crab crayfish hermit krill lobster prawn shrimp".split(" ");
    expect(generatedSlug("cbx_0123456789ab")).toBe(
      `${adjectives[hash % 14]}-${nouns[Math.floor(hash / 14) % 8]}`,
    );
    expect(generatedSlug("cbx_0123456789ab")).toBe(generatedSlug("cbx_0123456789ab"));
  });

  test("collisions try 20 hashed suffixes, then a fallback seeded by the lease id", () => {
    const candidates = slugCandidates("blue-crab", "cbx_0123456789ab");
    expect(candidates).toHaveLength(22);
    expect(candidates[0]).toBe("blue-crab");
    const suffix = (seed: string) => (fnv1a32(seed) & 0xffff).toString(16).padStart(4, "0");
    expect(candidates[1]).toBe(`blue-crab-${suffix("cbx_0123456789ab-0")}`);
    expect(candidates[20]).toBe(`blue-crab-${suffix("cbx_0123456789ab-19")}`);
    expect(candidates[21]).toBe(`blue-crab-${suffix("cbx_0123456789ab")}`);
  });

  test("a long base is cut to 41 characters before the suffix", () => {
    const base = `${"a".repeat(40)}-b`;
    const [, first] = slugCandidates(base, "cbx_0123456789ab");
    expect(first).toMatch(/^a{40}-[0-9a-f]{4}$/);
  });

  test("pickSlug returns the first free candidate, or undefined when all are taken", () => {
    const taken = new Set(["blue-crab"]);
    expect(pickSlug("blue-crab", "cbx_0123456789ab", (s) => taken.has(s))).toBe(
      slugCandidates("blue-crab", "cbx_0123456789ab")[1],
    );
    expect(pickSlug("blue-crab", "cbx_0123456789ab", () => true)).toBeUndefined();
  });
});
