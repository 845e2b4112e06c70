import type { Benchmark } from "../lib/types.ts";

/**
 * Every benchmark, in the order `npm run bench` runs them. Adding one: write
 * `bench/benchmarks/<name>.ts` with `export default { name, title, run } satisfies Benchmark`, then
 * add one line here. Imports are lazy so `bun bench/run.ts <name>` loads only what it runs.
 */
export const BENCHMARKS: Record<string, () => Promise<Benchmark>> = {
  compression: () => import("./compression.ts").then((m) => m.default),
};
