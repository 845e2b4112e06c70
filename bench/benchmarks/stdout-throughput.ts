import { benchWorld } from "../lib/emulator.ts";
import { figure, measured, median, paired, ratioAtLeast } from "../lib/measure.ts";
import { measureProcess } from "../lib/process.ts";
import type { Benchmark } from "../lib/types.ts";

/**
 * Stdout throughput: `crabbox run --id L --no-sync -- head -c 1G /dev/zero` (the exec event stream
 * in the encoding the CLI negotiates, binary frames with the output raw; NDJSON with base64 before
 * that) against the same bytes streamed raw through the same emulator proxy from the same runner
 * (`GET /_echo/raw`, a test-echo route) by curl. Both write to /dev/null. MB/s = 10^6 bytes per
 * second of wall time, spawn to exit. `details.proxyBytes` is what the proxy carried for the
 * check run (1 MiB + 7 bytes of output), which shows the encoding in use.
 */

const MiB = 1024 * 1024;

const benchmark: Benchmark = {
  name: "stdout-throughput",
  title: "stdout throughput: run --no-sync -- head -c 1G /dev/zero",
  async run(ctx) {
    const bytes = ctx.quick ? 64 * MiB : 1024 * MiB;
    const world = await benchWorld(ctx, { testApi: true });
    const lease = await world.warmup("bench-stdout");
    const token = await world.token(lease.microvmId);
    const crabbox = (count: number) =>
      world.crabbox(["run", "--id", lease.slug, "--no-sync", "--", "head", "-c", String(count), "/dev/zero"]);
    const curl = (count: number, capture = false) =>
      measureProcess(
        [
          "curl",
          "-sS",
          "--fail",
          "-o",
          "/dev/null",
          "-w",
          "%{size_download}",
          "-H",
          `host: ${lease.endpoint}`,
          "-H",
          `x-aws-proxy-auth: ${token}`,
          `${world.emu.url}/_echo/raw?bytes=${count}`,
        ],
        { capture },
      );

    // Both sides deliver every byte (checked once, small, before timing anything).
    const mark = world.mark();
    const check = await world.crabbox(
      ["run", "--id", lease.slug, "--no-sync", "--", "head", "-c", String(MiB + 7), "/dev/zero"],
      { capture: true },
    );
    if (check.stdout.length !== MiB + 7) throw new Error(`crabbox delivered ${check.stdout.length} bytes`);
    const proxyBytes = (await world.requestsSince(mark))
      .filter((record) => record.path === "/v1/exec")
      .reduce((sum, record) => sum + record.bytesOut, 0);
    const raw = await curl(MiB + 7, true);
    if (Number(raw.stdout) !== MiB + 7) throw new Error(`curl received ${raw.stdout} bytes`);

    const cpu = { subject: [] as number[], baseline: [] as number[] };
    const rate = (ms: number) => bytes / 1e6 / (ms / 1000);
    const result = await paired({
      runs: Math.min(ctx.runs, 3),
      warmup: 0,
      subject: async () => {
        const r = await crabbox(bytes);
        cpu.subject.push(r.cpuMs);
        return rate(r.ms);
      },
      baseline: async () => {
        const r = await curl(bytes);
        cpu.baseline.push(r.cpuMs);
        return rate(r.ms);
      },
    });
    return [
      figure({
        id: "stdout-throughput",
        title: `stdout throughput: run --no-sync -- head -c ${bytes / MiB}M /dev/zero`,
        unit: "MB/s",
        subject: measured("crabbox run --no-sync", result.subject),
        baseline: measured("curl, raw bytes through the same proxy", result.baseline),
        goal: ratioAtLeast(0.5),
        details: {
          bytes,
          proxyBytes,
          cliCpuMs: median(cpu.subject),
          curlCpuMs: median(cpu.baseline),
        },
      }),
    ];
  },
};

export default benchmark;
