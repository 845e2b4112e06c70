/**
 * Durations as users type them (`90m`, `1h30m`, `45s`, `1.5h`, `500ms`) and as upstream prints them
 * (Go's time.Duration String). Values are milliseconds.
 */

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
const DURATION_RE = /^(?:(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s))+$/;
const PART_RE = /(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)/g;

/**
 * Parses a duration into milliseconds, or undefined when it is not one. `0` alone is allowed (Go
 * accepts it); negative values are not durations here — nothing in crabbox can last less than nothing.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "0") return 0;
  if (!DURATION_RE.test(trimmed)) return undefined;
  let total = 0;
  for (const match of trimmed.matchAll(PART_RE)) {
    total += Number(match[1]) * (UNIT_MS[match[2] as string] as number);
  }
  return Math.round(total);
}

/** Go's `time.Duration.String()` after rounding to whole milliseconds: `0s`, `850ms`, `1.234s`, `1m2.5s`, `1h0m0s`. */
export function formatDuration(ms: number): string {
  let rounded = Math.round(ms);
  if (rounded === 0) return "0s";
  const sign = rounded < 0 ? "-" : "";
  rounded = Math.abs(rounded);
  if (rounded < 1000) return `${sign}${rounded}ms`;
  const hours = Math.floor(rounded / 3_600_000);
  const minutes = Math.floor((rounded % 3_600_000) / 60_000);
  const millis = rounded % 60_000;
  const whole = Math.floor(millis / 1000);
  const fraction = millis % 1000;
  const seconds =
    fraction === 0 ? `${whole}` : `${whole}.${String(fraction).padStart(3, "0").replace(/0+$/, "")}`;
  if (hours > 0) return `${sign}${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${sign}${minutes}m${seconds}s`;
  return `${sign}${seconds}s`;
}

/** Whole seconds, truncated, as upstream converts durations for the control plane and labels. */
export function wholeSeconds(ms: number): number {
  return ms <= 0 ? 0 : Math.floor(ms / 1000);
}

const BYTE_UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** Go's `%.1f` rounds exact ties to even; JS toFixed rounds them up. Match Go byte for byte. */
function oneDecimal(value: number): string {
  const scaled = value * 10;
  const floor = Math.floor(scaled);
  const rounded = scaled - floor === 0.5 ? (floor % 2 === 0 ? floor : floor + 1) : Math.round(scaled);
  return (rounded / 10).toFixed(1);
}

/** Upstream's humanBytes: `512 B`, `1.5 KiB`, … falling back to PiB. */
export function humanBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${oneDecimal(value)} ${BYTE_UNITS[unit]}`;
}
