/**
 * Builds the crabbox CLI: `bun scripts/build.ts` for the host (dist/crabbox), `--all` for every
 * release target (dist/crabbox-<os>-<arch>). The runner lives inside the same binary (hidden
 * `__runner` mode), so one binary is enough for the emulator.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { allTargets, type CompileTarget, ensureRuntime, hostTarget, repoRoot } from "./bun-runtime.ts";

function gitCommit(): string {
  const result = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: repoRoot, encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : "unknown";
}

export interface CompileOptions {
  entry: string;
  outfile: string;
  target?: CompileTarget;
}

/**
 * One `bun build --compile`; cross targets use a checked runtime instead of a download.
 *
 * CommonJS output: an ESM bundle hoists every `node:` import of every module (148 of them) to its
 * top, so each command instantiated node:util, node:http, node:zlib, … at startup; in CommonJS they
 * are required where a module is first initialised (`--help` 93 -> 78 ms CPU, `--version` 93 -> 69).
 * It needs entries without top-level await.
 */
export function compile({ entry, outfile, target }: CompileOptions): void {
  const args = [
    "build",
    "--compile",
    "--minify",
    "--bytecode",
    "--format=cjs",
    `--define=CRABBOX_COMMIT=${JSON.stringify(gitCommit())}`,
    entry,
    "--outfile",
    outfile,
  ];
  if (target && target !== hostTarget()) {
    args.push(`--target=bun-${target}`, `--compile-executable-path=${ensureRuntime(target)}`);
  }
  const started = performance.now();
  const result = spawnSync(process.execPath, args, { cwd: repoRoot, stdio: ["ignore", "ignore", "inherit"] });
  if (result.status !== 0) throw new Error(`bun build failed for ${outfile} (exit ${result.status})`);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stderr.write(`built ${outfile} (${target ?? hostTarget()}) in ${seconds}s\n`);
}

if (import.meta.main) {
  const dist = join(repoRoot, "dist");
  mkdirSync(dist, { recursive: true });
  compile({ entry: "src/cli.ts", outfile: join(dist, "crabbox") });
  if (process.argv.includes("--all")) {
    for (const target of allTargets) {
      compile({ entry: "src/cli.ts", outfile: join(dist, `crabbox-${target}`), target });
    }
  }
}
