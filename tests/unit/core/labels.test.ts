import { describe, expect, test } from "bun:test";
import { labelTime, shouldCleanup } from "../../../src/core/cleanup.ts";
import { directLeaseLabels, sanitizeLabelValue, touchLabels } from "../../../src/core/labels.ts";

const now = new Date("2026-06-01T12:00:00Z");
const nowSeconds = Math.floor(now.getTime() / 1000);

describe("labels", () => {
  test("values are sanitised to [A-Za-z0-9_.-], 63 chars, trimmed, never empty", () => {
    expect(sanitizeLabelValue("a b:c")).toBe("a_b_c");
    expect(sanitizeLabelValue("__x__")).toBe("x");
    expect(sanitizeLabelValue("")).toBe("unknown");
    expect(sanitizeLabelValue("a".repeat(80))).toHaveLength(63);
  });

  test("a new lease's labels", () => {
    const labels = directLeaseLabels({
      provider: "aws-lambda-microvm",
      leaseId: "cbx_0123456789ab",
      slug: "blue-crab",
      keep: true,
      now,
      idleMs: 30 * 60_000,
      ttlMs: 90 * 60_000,
    });
    expect(labels).toEqual({
      crabbox: "true",
      created_by: "crabbox",
      provider: "aws-lambda-microvm",
      lease: "cbx_0123456789ab",
      slug: "blue-crab",
      keep: "true",
      class: "beast",
      profile: "default",
      provider_key: "crabbox-steipete",
      target: "linux",
      server_type: "unknown",
      market: "serverless",
      state: "leased",
      created_at: String(nowSeconds),
      last_touched_at: String(nowSeconds),
      idle_timeout: "1800",
      idle_timeout_secs: "1800",
      ttl_secs: "5400",
      expires_at: String(nowSeconds + 1800),
    });
  });

  test("touch keeps created_at and recomputes the expiry from stored idle/ttl", () => {
    const created = nowSeconds - 5000;
    const touched = touchLabels(
      { created_at: String(created), idle_timeout_secs: "1800", ttl_secs: "5400", keep: "true" },
      { now, state: "running" },
    );
    expect(touched.state).toBe("running");
    expect(touched.created_at).toBe(String(created));
    expect(touched.last_touched_at).toBe(String(nowSeconds));
    expect(touched.expires_at).toBe(String(created + 5400));
    expect(touched.keep).toBe("true");
  });
});

describe("shouldCleanup", () => {
  const at = (offset: number) => String(nowSeconds + offset);
  test.each([
    ["missing labels", false, undefined],
    ["keep=true", false, { keep: "TRUE", state: "failed" }],
    ["state=running", false, { state: "running", expires_at: at(-3600) }],
    ["stale state=running", true, { state: "running", expires_at: at(-13 * 3600) }],
    ["state=leased", false, { state: "leased", expires_at: at(60) }],
    ["expired state=leased", true, { state: "leased", expires_at: at(-60) }],
    ["state=released", true, { state: "released" }],
    ["missing expires_at", false, { state: "suspended" }],
    ["not expired", false, { state: "suspended", expires_at: at(60) }],
    ["expired", true, { state: "missing-or-inaccessible", expires_at: at(-60) }],
    ["expired", true, { state: "pending", ttl: "2026-06-01T11:00:00Z" }],
  ])("%s → delete=%p (row %#)", (reason, remove, labels) => {
    expect(shouldCleanup(labels as Record<string, string> | undefined, now)).toEqual({
      delete: remove,
      reason,
    });
  });

  test("label times accept unix seconds and RFC 3339", () => {
    expect(labelTime("1780315200")).toBe(1780315200);
    expect(labelTime("2026-06-01T12:00:00Z")).toBe(nowSeconds);
    expect(labelTime("soon")).toBeUndefined();
  });
});
