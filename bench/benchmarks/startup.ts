import { baseline } from "../lib/baselines.ts";
import { figure, measured, median, paired, ratioAtMost } from "../lib/measure.ts";
import { measureProcess } from "../lib/process.ts";
import type { Benchmark } from "../lib/types.ts";

/**
 * Startup: the compiled `crabbox --help` against a compiled hello-world from the same Bun and the
 * same build flags. Both pay the runtime's own start (mapping a ~110 MB binary); what is left is
 * crabbox's: loading its bundle and the modules `--help` evaluates.
 */

/** Startup is short and noisy: more samples than the harness default. */
const SAMPLES_PER_RUN = 4;

const benchmark: Benchmark = {
  name: "startup",
  title: "startup: crabbox --help",
  async run(ctx) {
    const hello = baseline(ctx.repoRoot, "hello");
    const runs = ctx.runs * SAMPLES_PER_RUN;
    const cpu = { subject: [] as number[], baseline: [] as number[] };
    const sample = async (argv: string[], side: "subject" | "baseline") => {
      const result = await measureProcess(argv);
      cpu[side].push(result.cpuMs);
      return result.ms;
    };
    const help = await paired({
      runs,
      warmup: 2,
      subject: () => sample([ctx.binary, "--help"], "subject"),
      baseline: () => sample([hello], "baseline"),
    });
    const version = await paired({
      runs,
      warmup: 1,
      subject: () => measureProcess([ctx.binary, "--version"]).then((r) => r.ms),
      baseline: () => measureProcess([hello]).then((r) => r.ms),
    });
    return [
      figure({
        id: "startup-help",
        title: "startup: crabbox --help",
        unit: "ms",
        subject: measured("crabbox --help", help.subject),
        baseline: measured("compiled hello-world", help.baseline),
        goal: ratioAtMost(4),
        details: {
          cpuMs: median(cpu.subject),
          baselineCpuMs: median(cpu.baseline),
          cpuRatio: median(cpu.subject) / median(cpu.baseline),
        },
      }),
      figure({
        id: "startup-version",
        title: "startup: crabbox --version",
        unit: "ms",
        subject: measured("crabbox --version", version.subject),
        baseline: measured("compiled hello-world", version.baseline),
      }),
    ];
  },
};

export default benchmark;
