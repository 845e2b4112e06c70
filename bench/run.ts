/**
 * `npm run bench`: runs every registered benchmark (bench/benchmarks/index.ts) and writes
 * `bench/results/<date>-<host>.json` plus a markdown table next to it. Never part of `npm test`.
 *
 *   bun bench/run.ts [name…] [--runs N] [--quick] [--no-build] [--out DIR] [--list]
 *
 * Exit status: 0 when every figure met its goal, 1 when one missed or a benchmark failed.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BENCHMARKS } from "./benchmarks/index.ts";
import { markdown, writeResults } from "./lib/results.ts";
import type { BenchContext, BenchmarkResult, RunResult } from "./lib/types.ts";

const repoRoot = resolve(import.meta.dir, "..");

interface Options {
  names: string[];
  runs: number | undefined;
  quick: boolean;
  build: boolean;
  out: string;
  list: boolean;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    names: [],
    runs: undefined,
    quick: false,
    build: true,
    out: join(repoRoot, "bench", "results"),
    list: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--quick") options.quick = true;
    else if (arg === "--no-build") options.build = false;
    else if (arg === "--list") options.list = true;
    else if (arg === "--runs") options.runs = Number(argv[++i]);
    else if (arg === "--out") options.out = resolve(argv[++i] ?? ".");
    else if (arg.startsWith("-")) throw new Error(`unknown option ${arg}`);
    else options.names.push(arg);
  }
  if (options.runs !== undefined && !(Number.isInteger(options.runs) && options.runs > 0)) {
    throw new Error("--runs wants a positive integer");
  }
  for (const name of options.names) {
    if (!(name in BENCHMARKS)) {
      throw new Error(`unknown benchmark ${name}; one of: ${Object.keys(BENCHMARKS).join(", ")}`);
    }
  }
  return options;
}

function gitCommit(): string {
  const result = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : "unknown";
}

const log = (line: string) => process.stderr.write(`${line}\n`);

async function runOne(name: string, options: Options, runs: number): Promise<BenchmarkResult> {
  const bench = await (BENCHMARKS[name] as () => Promise<import("./lib/types.ts").Benchmark>)();
  const dirs: string[] = [];
  const cleanups: (() => unknown)[] = [];
  const ctx: BenchContext = {
    runs,
    quick: options.quick,
    repoRoot,
    binary: join(repoRoot, "dist", "crabbox"),
    tmpdir(label) {
      const dir = mkdtempSync(join(tmpdir(), `crabbox-bench-${label}-`));
      dirs.push(dir);
      return dir;
    },
    onCleanup(fn) {
      cleanups.push(fn);
    },
    log: (line) => log(`  ${name}: ${line}`),
  };
  log(`bench ${name}: ${bench.title}`);
  const started = performance.now();
  try {
    const figures = await bench.run(ctx);
    return { name, title: bench.title, ms: performance.now() - started, figures };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log(`bench ${name} failed: ${message}`);
    return { name, title: bench.title, ms: performance.now() - started, figures: [], error: message };
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        log(`bench ${name}: cleanup failed: ${String(error)}`);
      }
    }
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  if (options.list) {
    for (const [name, load] of Object.entries(BENCHMARKS)) log(`${name}\t${(await load()).title}`);
    return 0;
  }
  if (options.build) {
    const build = spawnSync(process.execPath, ["scripts/build.ts"], { cwd: repoRoot, stdio: "inherit" });
    if (build.status !== 0) return build.status ?? 1;
  }
  const runs = options.runs ?? (options.quick ? 3 : 7);
  const names = options.names.length > 0 ? options.names : Object.keys(BENCHMARKS);
  const result: RunResult = {
    date: new Date().toISOString(),
    host: hostname(),
    platform: process.platform,
    arch: process.arch,
    cpus: cpus().length,
    bun: Bun.version,
    commit: gitCommit(),
    runs,
    quick: options.quick,
    benchmarks: [],
  };
  for (const name of names) result.benchmarks.push(await runOne(name, options, runs));
  const files = writeResults(options.out, result);
  process.stdout.write(markdown(result));
  log(`wrote ${files.json}\nwrote ${files.md}`);
  const failed = result.benchmarks.some((b) => b.error || b.figures.some((f) => f.goal && !f.goal.pass));
  return failed ? 1 : 0;
}

if (import.meta.main)
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      log(`bench: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(2);
    },
  );
