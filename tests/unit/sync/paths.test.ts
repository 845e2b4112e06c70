import { describe, expect, test } from "bun:test";
import { comparePathBytes as reference } from "../../../src/protocol/fingerprint.ts";
import { comparePathBytes, sequentialIndex, topDir } from "../../../src/sync/paths.ts";

describe("comparePathBytes", () => {
  test("agrees with the protocol's byte comparison on tricky pairs", () => {
    const samples = [
      "",
      "a",
      "a/b",
      "a-b",
      "a.b",
      "ab",
      "Z",
      "\u00e9",
      "\uFF5E",
      "\uE000",
      "\uD7FF",
      "\u{1F600}",
      "\u{10FFFF}",
      "a\u{1F600}",
      "a\uFFFF",
    ];
    for (const a of samples) {
      for (const b of samples) {
        expect(Math.sign(comparePathBytes(a, b))).toBe(Math.sign(reference(a, b)));
      }
    }
  });

  test("topDir groups root files as .", () => {
    expect(topDir("a/b/c")).toBe("a");
    expect(topDir("README.md")).toBe(".");
  });
});

describe("sequentialIndex", () => {
  test("answers in order, out of order, and for paths it does not hold", () => {
    const indexOf = sequentialIndex(["a", "b/c", "b/d", "e"]);
    expect(["a", "b/c", "b/d"].map(indexOf)).toEqual([0, 1, 2]);
    expect(indexOf("a")).toBe(0);
    expect(indexOf("b/c")).toBe(1);
    expect(indexOf("new")).toBeUndefined();
    expect(indexOf("e")).toBe(3);
    expect(indexOf("b/d")).toBe(2);
    expect(indexOf("e")).toBe(3);
    expect(sequentialIndex([])("a")).toBeUndefined();
  });
});
