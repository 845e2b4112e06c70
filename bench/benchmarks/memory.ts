import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { generateCorpus } from "../lib/corpus.ts";
import { benchWorld } from "../lib/emulator.ts";
import { atMost, figure, measured, median } from "../lib/measure.ts";
import type { Benchmark } from "../lib/types.ts";

/**
 * Memory: the peak RSS (measured by GNU time, see lib/process.ts) of `crabbox run --sync-only`
 * syncing a 1 GiB checkout into a fresh MicroVM — list, hash, archive, compress and upload all
 * stream, so the peak must not grow with the tree. The tree is one generated 128 MiB corpus copied eight times (generating 1 GiB of
 * seeded text would take most of a minute; copies cost seconds and stress the same paths).
 */

const MiB = 1024 * 1024;

const benchmark: Benchmark = {
  name: "memory",
  title: "memory: peak RSS syncing a 1 GiB tree",
  async run(ctx) {
    const copies = ctx.quick ? 1 : 8;
    const world = await benchWorld(ctx);
    const seed = join(ctx.tmpdir("memory-seed"), "corpus");
    const corpus = generateCorpus(seed, { files: 500, bytes: 128 * MiB, seed: 9 });
    for (let i = 0; i < copies; i++) {
      const target = join(world.repo, `copy${i}`);
      mkdirSync(target, { recursive: true });
      cpSync(seed, target, { recursive: true });
    }
    const treeBytes = corpus.bytes * copies;
    ctx.log(`tree ${corpus.paths.length * copies} files, ${(treeBytes / MiB).toFixed(0)} MiB`);
    const rss: number[] = [];
    const ms: number[] = [];
    const runs = Math.min(ctx.runs, ctx.quick ? 1 : 2);
    for (let i = 0; i < runs; i++) {
      // A fresh one-shot MicroVM each time, so every sample is a full sync.
      const r = await world.crabbox(["run", "--sync-only"], { peakRss: true });
      rss.push(r.maxRssBytes / MiB);
      ms.push(r.ms);
    }
    return [
      figure({
        id: "memory-sync-1g",
        title: `memory: peak RSS of crabbox syncing ${(treeBytes / MiB).toFixed(0)} MiB`,
        unit: "MiB",
        subject: measured("crabbox run --sync-only (fresh MicroVM)", rss),
        goal: atMost(200, "MiB"),
        details: {
          files: corpus.paths.length * copies,
          treeBytes,
          syncRunMs: median(ms),
        },
      }),
    ];
  },
};

export default benchmark;
