import { baseline } from "../lib/baselines.ts";
import { benchWorld } from "../lib/emulator.ts";
import { figure, measured, median, paired, ratioAtMost } from "../lib/measure.ts";
import { measureProcess } from "../lib/process.ts";
import type { Benchmark } from "../lib/types.ts";

/**
 * First API call: `crabbox status --id L --json` (config, claim, one GetMicrovm, JSON out) against
 * a compiled Bun program that makes the same GetMicrovm with the same SDK and prints it. Both start
 * cold, per measurement, against the same emulator.
 */
const benchmark: Benchmark = {
  name: "first-api-call",
  title: "first API call: crabbox status --id L --json",
  async run(ctx) {
    const world = await benchWorld(ctx);
    const lease = await world.warmup("bench-status");
    const sdkCall = baseline(ctx.repoRoot, "sdk-call");
    const cpu = { subject: [] as number[], baseline: [] as number[] };
    const result = await paired({
      runs: ctx.runs * 2,
      warmup: 1,
      subject: async () => {
        const r = await world.crabbox(["status", "--id", lease.slug, "--json"]);
        cpu.subject.push(r.cpuMs);
        return r.ms;
      },
      baseline: async () => {
        const r = await measureProcess([sdkCall, world.emu.url, lease.microvmId]);
        cpu.baseline.push(r.cpuMs);
        return r.ms;
      },
    });
    const mark = world.mark();
    await world.crabbox(["status", "--id", lease.slug, "--json"]);
    const requests = await world.requestsSince(mark);
    return [
      figure({
        id: "first-api-call",
        title: "first API call: crabbox status --id L --json",
        unit: "ms",
        subject: measured("crabbox status --id L --json", result.subject),
        baseline: measured("compiled Bun program, same GetMicrovm", result.baseline),
        goal: ratioAtMost(1.5),
        details: {
          cpuMs: median(cpu.subject),
          baselineCpuMs: median(cpu.baseline),
          cpuRatio: median(cpu.subject) / median(cpu.baseline),
          requests: requests.map((r) => r.op ?? `${r.method} ${r.path}`),
        },
      }),
    ];
  },
};

export default benchmark;
