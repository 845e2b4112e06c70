import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * One measured child process: wall time from spawn to exit, the CPU it used and its peak RSS (from
 * the kernel's rusage, so they cover the whole process, not a sample). Benchmarks report wall time;
 * CPU time goes into the details because on a shared machine it moves less than wall time does.
 *
 * Peak RSS needs care: a child's ru_maxrss includes the memory image it was forked from (Linux
 * folds the pre-exec image's high-water mark into it), so a child of this harness "peaks" at least
 * at the harness's own RSS — 813 MiB after the corpus benchmarks, for a CLI that never passed
 * 180 MiB. `peakRss` runs the command under GNU time, whose own small image is what gets forked.
 */

export interface ProcessSample {
  code: number;
  /** Spawn to exit, ms. */
  ms: number;
  /** User + system CPU of the process, ms. */
  cpuMs: number;
  /** Peak resident set size, bytes: exact with `peakRss`, else an upper bound (see above). */
  maxRssBytes: number;
  /** Captured output (empty unless `capture`). */
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Keep stdout/stderr (default: stdout to /dev/null, stderr kept for error messages). */
  capture?: boolean;
  /** A non-zero exit is an error unless allowed. */
  allowFailure?: boolean;
  /** Measure peak RSS exactly (under /usr/bin/time; adds a process, so not for timings). */
  peakRss?: boolean;
}

const GNU_TIME = "/usr/bin/time";

export async function measureProcess(argv: string[], options: SpawnOptions = {}): Promise<ProcessSample> {
  let rssDir: string | undefined;
  let command = argv;
  if (options.peakRss) {
    if (!existsSync(GNU_TIME)) throw new Error(`${GNU_TIME} (GNU time) is needed to measure peak RSS`);
    rssDir = mkdtempSync(join(tmpdir(), "crabbox-bench-rss-"));
    command = [GNU_TIME, "-f", "%M", "-o", join(rssDir, "kib"), ...argv];
  }
  const started = performance.now();
  const child = Bun.spawn(command, {
    cwd: options.cwd,
    env: options.env,
    stdin: "ignore",
    stdout: options.capture ? "pipe" : "ignore",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([
    options.capture ? new Response(child.stdout as ReadableStream).text() : Promise.resolve(""),
    new Response(child.stderr).text(),
  ]);
  const code = await child.exited;
  const ms = performance.now() - started;
  const usage = child.resourceUsage();
  let maxRssBytes = usage ? usage.maxRSS : Number.NaN;
  if (rssDir) {
    maxRssBytes = Number(readFileSync(join(rssDir, "kib"), "utf8").trim().split("\n").pop()) * 1024;
    rmSync(rssDir, { recursive: true, force: true });
  }
  if (code !== 0 && !options.allowFailure) {
    throw new Error(`${argv.join(" ")} exited ${code}: ${stderr.trim().slice(-2000)}`);
  }
  return {
    code,
    ms,
    cpuMs: usage ? Number(usage.cpuTime.total) / 1000 : Number.NaN,
    maxRssBytes,
    stdout,
    stderr,
  };
}
