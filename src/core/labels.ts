import { wholeSeconds } from "./duration.ts";

/**
 * Lease labels as upstream writes them (§3.5): a flat string map recorded in the claim and shown
 * by list/status, and the input of the cleanup decision.
 */
export type Labels = Record<string, string>;

const DEFAULT_IDLE_MS = 30 * 60_000;
const DEFAULT_TTL_MS = 90 * 60_000;

/** Only [A-Za-z0-9_.-], everything else `_`, at most 63 chars, no `_.-` at the ends, never empty. */
export function sanitizeLabelValue(value: string): string {
  const cleaned = value
    .replace(/[^A-Za-z0-9_.-]/g, "_")
    .slice(0, 63)
    .replace(/^[_.-]+|[_.-]+$/g, "");
  return cleaned === "" ? "unknown" : cleaned;
}

function unix(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

function expiresAt(createdAt: number, now: number, idleSeconds: number, ttlSeconds: number): number {
  const byTtl = createdAt + ttlSeconds;
  return idleSeconds > 0 ? Math.min(now + idleSeconds, byTtl) : byTtl;
}

export interface LeaseLabelInput {
  provider: string;
  leaseId: string;
  slug: string;
  keep: boolean;
  now: Date;
  idleMs: number;
  ttlMs: number;
  target?: string;
  pond?: string;
  class?: string;
  profile?: string;
  providerKey?: string;
  serverType?: string;
  market?: string;
}

/** The base labels of a new lease (upstream `directLeaseLabels`), every value sanitised. */
export function directLeaseLabels(input: LeaseLabelInput): Labels {
  const now = unix(input.now);
  const idle = wholeSeconds(input.idleMs);
  const ttl = wholeSeconds(input.ttlMs);
  const raw: Labels = {
    crabbox: "true",
    created_by: "crabbox",
    provider: input.provider,
    lease: input.leaseId,
    slug: input.slug,
    keep: input.keep ? "true" : "false",
    class: input.class ?? "beast",
    profile: input.profile ?? "default",
    provider_key: input.providerKey ?? "crabbox-steipete",
    target: input.target ?? "linux",
    server_type: input.serverType ?? "unknown",
    market: input.market ?? "serverless",
    state: "leased",
    created_at: String(now),
    last_touched_at: String(now),
    idle_timeout: String(idle),
    idle_timeout_secs: String(idle),
    ttl_secs: String(ttl),
    expires_at: String(expiresAt(now, now, idle, ttl)),
  };
  if (input.pond) raw.pond = input.pond;
  return Object.fromEntries(Object.entries(raw).map(([key, value]) => [key, sanitizeLabelValue(value)]));
}

function positiveInt(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  const parsed = Number(value);
  return parsed > 0 ? parsed : undefined;
}

export interface TouchInput {
  now: Date;
  /** The live machine state, lowercase. */
  state: string;
  /** Config fallbacks when the labels carry no idle/ttl. */
  idleMs?: number;
  ttlMs?: number;
}

/** Refreshes labels on reuse (upstream touch): state, last touch, idle/ttl and the new expiry. */
export function touchLabels(labels: Labels, input: TouchInput): Labels {
  const now = unix(input.now);
  const next: Labels = { ...labels, state: input.state };
  const createdAt = positiveInt(next.created_at) ?? now;
  const idle =
    positiveInt(next.idle_timeout_secs) ??
    positiveInt(next.idle_timeout) ??
    wholeSeconds(input.idleMs ?? DEFAULT_IDLE_MS);
  const ttl = positiveInt(next.ttl_secs) ?? wholeSeconds(input.ttlMs ?? DEFAULT_TTL_MS);
  next.created_at = String(createdAt);
  next.last_touched_at = String(now);
  next.idle_timeout = String(idle);
  next.idle_timeout_secs = String(idle);
  next.ttl_secs = String(ttl);
  next.expires_at = String(expiresAt(createdAt, now, idle, ttl));
  return next;
}
