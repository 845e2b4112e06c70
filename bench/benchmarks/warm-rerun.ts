import { baseline } from "../lib/baselines.ts";
import { benchWorld } from "../lib/emulator.ts";
import { figure, measured, median, paired, ratioAtMost } from "../lib/measure.ts";
import { measureProcess } from "../lib/process.ts";
import type { Benchmark } from "../lib/types.ts";

/**
 * Warm rerun: `crabbox run --id L -- true` on a retained lease whose tree is already synced,
 * against a compiled Bun program (started per measurement) that sends one exec through the same
 * emulator proxy and reads the stream. Also counts the requests the rerun made: the goal is one.
 */

const WORKDIR = "/workspace/crabbox";

const benchmark: Benchmark = {
  name: "warm-rerun",
  title: "warm rerun: crabbox run --id L -- true",
  async run(ctx) {
    const world = await benchWorld(ctx);
    const lease = await world.warmup("bench-warm");
    // The first run syncs the checkout; from here on the tree is unchanged.
    await world.crabbox(["run", "--id", lease.slug, "--", "true"]);
    const token = await world.token(lease.microvmId);
    const execOnce = baseline(ctx.repoRoot, "exec-once");
    const cpu = { subject: [] as number[], baseline: [] as number[] };
    const requests: number[] = [];
    let lastRequests: string[] = [];
    const result = await paired({
      runs: ctx.runs * 2,
      warmup: 1,
      subject: async () => {
        const mark = world.mark();
        const r = await world.crabbox(["run", "--id", lease.slug, "--", "true"]);
        cpu.subject.push(r.cpuMs);
        const made = await world.requestsSince(mark);
        requests.push(made.length);
        lastRequests = made.map((record) => record.op ?? `${record.method} ${record.path}`);
        return r.ms;
      },
      baseline: async () => {
        const r = await measureProcess([execOnce, world.emu.url, lease.endpoint, token, WORKDIR, "true"]);
        cpu.baseline.push(r.cpuMs);
        return r.ms;
      },
    });
    const maxRequests = Math.max(...requests);
    return [
      figure({
        id: "warm-rerun",
        title: "warm rerun: crabbox run --id L -- true",
        unit: "ms",
        subject: measured("crabbox run --id L -- true", result.subject),
        baseline: measured("compiled Bun program, one exec through the proxy", result.baseline),
        goal: ratioAtMost(2),
        details: {
          cpuMs: median(cpu.subject),
          baselineCpuMs: median(cpu.baseline),
          cpuRatio: median(cpu.subject) / median(cpu.baseline),
        },
      }),
      figure({
        id: "warm-rerun-requests",
        title: "warm rerun: HTTP requests (control + data plane)",
        unit: "count",
        subject: measured("requests per warm rerun", requests),
        goal: { description: "exactly 1", pass: requests.every((n) => n === 1) },
        details: { max: maxRequests, lastRun: lastRequests },
      }),
    ];
  },
};

export default benchmark;
