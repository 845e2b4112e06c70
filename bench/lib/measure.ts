import type { Figure, Goal, Measured, Unit } from "./types.ts";

/** Medians, paired sampling and goals: the arithmetic every benchmark shares. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Wall time of `fn` in ms, with its result. */
export async function timed<T>(fn: () => T | Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

export interface PairedOptions {
  runs: number;
  /** Unrecorded rounds first (page cache, JIT, lazy files). Default 1. */
  warmup?: number;
  /** Each returns one sample (ms, bytes, …) — it decides what to measure. */
  subject: () => Promise<number>;
  baseline: () => Promise<number>;
}

/**
 * Samples subject and baseline in alternating order (B S, S B, B S, …), so drift in the machine's
 * load or the page cache touches both sides equally.
 */
export async function paired(options: PairedOptions): Promise<{ subject: number[]; baseline: number[] }> {
  const subject: number[] = [];
  const baseline: number[] = [];
  for (let round = -(options.warmup ?? 1); round < options.runs; round++) {
    const order = round % 2 === 0 ? ["b", "s"] : ["s", "b"];
    for (const side of order) {
      const value = side === "s" ? await options.subject() : await options.baseline();
      if (round >= 0) (side === "s" ? subject : baseline).push(value);
    }
  }
  return { subject, baseline };
}

export function measured(label: string, samples: number[]): Measured {
  return { label, value: median(samples), samples };
}

/** Goal: subject ≤ max × baseline. */
export function ratioAtMost(max: number): (subject: number, baseline: number) => Goal {
  return (subject, baseline) => ({ description: `≤ ${max}× baseline`, pass: subject <= max * baseline });
}

/** Goal: subject ≥ min × baseline (throughputs). */
export function ratioAtLeast(min: number): (subject: number, baseline: number) => Goal {
  return (subject, baseline) => ({ description: `≥ ${min}× baseline`, pass: subject >= min * baseline });
}

/** Goal: subject ≤ baseline + slack (bytes over the ideal). */
export function atMostBaselinePlus(
  slack: number,
  unit = "bytes",
): (subject: number, baseline: number) => Goal {
  return (subject, baseline) => ({
    description: `≤ baseline + ${slack} ${unit}`,
    pass: subject <= baseline + slack,
  });
}

/** Goal on the subject alone. */
export function atMost(max: number, unit: string): Goal & { check(value: number): Goal } {
  const description = `≤ ${max} ${unit}`;
  return {
    description,
    pass: true,
    check: (value) => ({ description, pass: value <= max }),
  };
}

export interface FigureInput {
  id: string;
  title: string;
  unit: Unit;
  subject: Measured;
  baseline?: Measured;
  goal?: ((subject: number, baseline: number) => Goal) | Goal;
  details?: Record<string, unknown>;
}

/** Assembles a figure: the ratio and the goal's verdict follow from the medians. */
export function figure(input: FigureInput): Figure {
  const out: Figure = { id: input.id, title: input.title, unit: input.unit, subject: input.subject };
  if (input.baseline) {
    out.baseline = input.baseline;
    out.ratio = input.baseline.value === 0 ? Number.NaN : input.subject.value / input.baseline.value;
  }
  if (typeof input.goal === "function") {
    if (input.baseline) out.goal = input.goal(input.subject.value, input.baseline.value);
  } else if (input.goal) {
    const goal = input.goal as Goal & { check?: (value: number) => Goal };
    out.goal = goal.check ? goal.check(input.subject.value) : goal;
  }
  if (input.details) out.details = input.details;
  return out;
}
