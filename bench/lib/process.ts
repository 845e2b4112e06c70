/**
 * One measured child process: wall time from spawn to exit, the CPU it used and its peak RSS (from
 * the kernel's rusage, so they cover the whole process, not a sample). Benchmarks report wall time;
 * CPU time goes into the details because on a shared machine it moves less than wall time does.
 */

export interface ProcessSample {
  code: number;
  /** Spawn to exit, ms. */
  ms: number;
  /** User + system CPU of the process, ms. */
  cpuMs: number;
  /** Peak resident set size, bytes. */
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
}

export async function measureProcess(argv: string[], options: SpawnOptions = {}): Promise<ProcessSample> {
  const started = performance.now();
  const child = Bun.spawn(argv, {
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
  if (code !== 0 && !options.allowFailure) {
    throw new Error(`${argv.join(" ")} exited ${code}: ${stderr.trim().slice(-2000)}`);
  }
  return {
    code,
    ms,
    cpuMs: usage ? Number(usage.cpuTime.total) / 1000 : Number.NaN,
    maxRssBytes: usage ? usage.maxRSS : Number.NaN,
    stdout,
    stderr,
  };
}
