import type { Benchmark } from "../lib/types.ts";

/**
 * Every benchmark, in the order `npm run bench` runs them. Adding one: write
 * `bench/benchmarks/<name>.ts` with `export default { name, title, run } satisfies Benchmark`, then
 * add one line here. Imports are lazy so `bun bench/run.ts <name>` loads only what it runs.
 */
export const BENCHMARKS: Record<string, () => Promise<Benchmark>> = {
  compression: () => import("./compression.ts").then((m) => m.default),
  "sync-edit": () => import("./sync-edit.ts").then((m) => m.default),
  "sync-first": () => import("./sync-first.ts").then((m) => m.default),
  startup: () => import("./startup.ts").then((m) => m.default),
  "first-api-call": () => import("./first-api-call.ts").then((m) => m.default),
  "warm-rerun": () => import("./warm-rerun.ts").then((m) => m.default),
  "stdout-throughput": () => import("./stdout-throughput.ts").then((m) => m.default),
  memory: () => import("./memory.ts").then((m) => m.default),
  "emulator-boot": () => import("./emulator-boot.ts").then((m) => m.default),
};
