import type { Labels } from "./labels.ts";

/** What cleanup does with one machine, and why (printed as `skip … reason=<reason>`). */
export interface CleanupDecision {
  delete: boolean;
  reason: string;
}

/** A running or provisioning machine is only stale this long after it expired. */
const STALE_GRACE_SECONDS = 12 * 3600;

/** Unix seconds from a label holding Unix seconds or an RFC 3339 time. */
export function labelTime(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

/**
 * Upstream's `shouldCleanupServer` (§3.7): kept leases are never swept; live ones only long after
 * expiry; finished ones always; anything else once it has expired.
 */
export function shouldCleanup(labels: Labels | undefined, now: Date): CleanupDecision {
  if (!labels || Object.keys(labels).length === 0) return { delete: false, reason: "missing labels" };
  if ((labels.keep ?? "").toLowerCase() === "true") return { delete: false, reason: "keep=true" };
  const state = (labels.state ?? "").toLowerCase();
  const nowSeconds = Math.floor(now.getTime() / 1000);
  const expires = labelTime(labels.expires_at) ?? labelTime(labels.ttl);
  if (state === "running" || state === "provisioning") {
    if (expires !== undefined && nowSeconds > expires + STALE_GRACE_SECONDS) {
      return { delete: true, reason: `stale state=${state}` };
    }
    return { delete: false, reason: `state=${state}` };
  }
  if (state === "leased" || state === "ready" || state === "active") {
    if (expires !== undefined && nowSeconds > expires)
      return { delete: true, reason: `expired state=${state}` };
    return { delete: false, reason: `state=${state}` };
  }
  if (state === "failed" || state === "released" || state === "expired") {
    return { delete: true, reason: `state=${state}` };
  }
  if (expires === undefined) return { delete: false, reason: "missing expires_at" };
  if (nowSeconds < expires) return { delete: false, reason: "not expired" };
  return { delete: true, reason: "expired" };
}
