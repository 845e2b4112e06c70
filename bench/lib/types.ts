/**
 * The benchmark harness's vocabulary. A benchmark is one file in `bench/benchmarks/` that returns
 * figures; a figure is a median of repeated samples, paired with a baseline measured in the same
 * run (so a slow machine or a busy CI runner moves both), and judged against its goal.
 */

export type Unit = "ms" | "bytes" | "count" | "MiB" | "MB/s" | "x";

/** One measured quantity: its median and every sample it came from. */
export interface Measured {
  /** What was measured, e.g. `git ls-files --cached --others --exclude-standard -z`. */
  label: string;
  value: number;
  samples: number[];
}

export interface Goal {
  /** Human form, e.g. `≤ 3× baseline`. */
  description: string;
  pass: boolean;
}

export interface Figure {
  /** Stable id for tracking across runs, e.g. `plan-warm-10k`. */
  id: string;
  title: string;
  unit: Unit;
  subject: Measured;
  baseline?: Measured;
  /** subject / baseline, when both are measured. */
  ratio?: number;
  goal?: Goal;
  /** Anything else worth recording (sizes, phase splits, the corpus). */
  details?: Record<string, unknown>;
}

export interface BenchContext {
  /** Samples per figure (after warm-up). */
  runs: number;
  /** `--quick`: smaller corpora and fewer runs, for checking that a benchmark works. */
  quick: boolean;
  repoRoot: string;
  /** The compiled CLI (`dist/crabbox`), built before the run unless `--no-build`. */
  binary: string;
  /** A fresh directory that is removed when the benchmark ends. */
  tmpdir(label: string): string;
  /** Registers teardown (emulators, leases) run when the benchmark ends, even on failure. */
  onCleanup(fn: () => unknown): void;
  log(line: string): void;
}

export interface Benchmark {
  /** Registry key and `bun bench/run.ts <name>` selector. */
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<Figure[]>;
}

export interface BenchmarkResult {
  name: string;
  title: string;
  ms: number;
  figures: Figure[];
  /** Set when the benchmark threw; its figures are then whatever it returned before (none). */
  error?: string;
}

export interface RunResult {
  date: string;
  host: string;
  platform: string;
  arch: string;
  cpus: number;
  bun: string;
  commit: string;
  runs: number;
  quick: boolean;
  benchmarks: BenchmarkResult[];
}
