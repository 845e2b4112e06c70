import { usageError } from "./errors.ts";

/** A slug's maximum length after normalisation. */
export const MAX_SLUG_LENGTH = 41;

const ADJECTIVES = [
  "amber",
  "blue",
  "brisk",
  "coral",
  "crimson",
  "golden",
  "harbor",
  "jade",
  "pearl",
  "quick",
  "silver",
  "swift",
  "tidal",
  "violet",
] as const;
const NOUNS = ["barnacle", "crab", "crayfish", "hermit", "krill", "lobster", "prawn", "shrimp"] as const;

/** Collision suffix attempts before the final fallback (upstream §3.3). */
const SUFFIX_ATTEMPTS = 20;

/** FNV-1a, 32 bit, over the UTF-8 bytes — the hash upstream derives slugs from. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** Lowercase, runs of anything but [a-z0-9] become one `-`, no `-` at either end. */
export function normalizeSlug(text: string): string {
  return text
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

/** A user's `--slug`, normalised, or a usage error (exit 2) saying why it cannot be one. */
export function requestedSlug(text: string, flag = "--slug"): string {
  const slug = normalizeSlug(text);
  if (slug === "") throw usageError(`${flag} must contain at least one letter or digit`);
  if (slug.length > MAX_SLUG_LENGTH) {
    throw usageError(`${flag} must be ${MAX_SLUG_LENGTH} characters or fewer after normalization`);
  }
  return slug;
}

/** `<adjective>-<noun>` seeded by the lease id, e.g. `blue-crab`. */
export function generatedSlug(leaseId: string): string {
  const hash = fnv1a32(leaseId);
  return `${ADJECTIVES[hash % ADJECTIVES.length]}-${NOUNS[Math.floor(hash / ADJECTIVES.length) % NOUNS.length]}`;
}

function suffixed(base: string, seed: string): string {
  const trimmed = base.slice(0, MAX_SLUG_LENGTH).replace(/-+$/g, "");
  const suffix = (fnv1a32(seed) & 0xffff).toString(16).padStart(4, "0");
  return `${trimmed}-${suffix}`;
}

/**
 * The candidates to try, in upstream's order: the base, then twenty hashed suffixes of it, then a
 * fallback seeded by the lease id alone. The first one not taken wins.
 */
export function slugCandidates(base: string, leaseId: string): string[] {
  const candidates = [base];
  for (let attempt = 0; attempt < SUFFIX_ATTEMPTS; attempt++) {
    candidates.push(suffixed(base, `${leaseId}-${attempt}`));
  }
  candidates.push(suffixed(base, leaseId));
  return candidates;
}

/** The first candidate for which `taken` is false, or undefined if all are taken. */
export function pickSlug(
  base: string,
  leaseId: string,
  taken: (slug: string) => boolean,
): string | undefined {
  return slugCandidates(base, leaseId).find((candidate) => !taken(candidate));
}
