import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { commitCorpus, git, rng } from "../lib/corpus.ts";
import { benchWorld } from "../lib/emulator.ts";
import { atMostBaselinePlus, figure, measured, paired, ratioAtMost, timed } from "../lib/measure.ts";
import type { Benchmark } from "../lib/types.ts";

/**
 * The agent's edit-run loop on a retained lease: one file changes in a generated 10,000-file repo,
 * then `crabbox run --id L --sync-only --timing-json`. Two figures from the same runs:
 *
 * - bytes on the wire (the POST /v1/sync body, from the emulator's log) against the edited file
 *   compressed on its own with the sync codec (zstd 3) — goal: at most 4 KiB more;
 * - planning time with a warm hash cache (the manifest, hash and diff phases of --timing-json)
 *   against `git ls-files --cached --others --exclude-standard -z` on the same repo — goal: ≤ 3×.
 */

const SLUG = "bench-edit";

interface Phase {
  name: string;
  ms?: number;
}

function timingOf(stderr: string): {
  syncPhases: Phase[];
  syncBytesSent?: number;
  syncFilesWritten?: number;
} {
  const line = stderr.split("\n").find((l) => l.startsWith('{"provider"'));
  if (!line) throw new Error(`no --timing-json line in:\n${stderr.slice(-2000)}`);
  return JSON.parse(line);
}

const benchmark: Benchmark = {
  name: "sync-edit",
  title: "one-file edit in a 10,000-file repo: bytes sent and planning time",
  async run(ctx) {
    const world = await benchWorld(ctx);
    const spec = ctx.quick
      ? { files: 2000, bytes: 8_000_000, seed: 10 }
      : { files: 10_000, bytes: 40_000_000, seed: 10 };
    const corpus = commitCorpus(world.repo, spec);
    ctx.log(`repo: ${corpus.paths.length} files, ${corpus.bytes} bytes`);
    await world.warmup(SLUG);
    await world.crabbox(["run", "--id", SLUG, "--sync-only"]);

    const random = rng(99);
    const textFiles = corpus.paths.filter((p) => /\.(ts|js|md|go|py|css|txt)$/.test(p));
    let edited = "";
    const bytes: number[] = [];
    const ideal: number[] = [];
    const written: number[] = [];
    const result = await paired({
      runs: ctx.runs,
      // The first rerun re-hashes files written within the racy window of the first sync.
      warmup: 2,
      subject: async () => {
        edited = textFiles[Math.floor(random() * textFiles.length)] as string;
        appendFileSync(join(world.repo, edited), `export const edit${Date.now()} = ${random()};\n`);
        const mark = world.mark();
        const run = await world.crabbox(["run", "--id", SLUG, "--sync-only", "--timing-json"], {
          capture: true,
        });
        const records = await world.requestsSince(mark);
        const timing = timingOf(run.stderr);
        const sync = records.find((r) => r.path === "/v1/sync");
        bytes.push(sync?.bytesIn ?? 0);
        ideal.push(
          Bun.zstdCompressSync(await Bun.file(join(world.repo, edited)).bytes(), { level: 3 }).length,
        );
        written.push(timing.syncFilesWritten ?? 0);
        const planning = timing.syncPhases
          .filter((p) => p.name === "manifest" || p.name === "hash" || p.name === "diff")
          .reduce((sum, p) => sum + (p.ms ?? 0), 0);
        return planning;
      },
      baseline: async () =>
        (await timed(() => git(world.repo, ["ls-files", "--cached", "--others", "--exclude-standard", "-z"])))
          .ms,
    });
    // paired() interleaves warm-up rounds first; keep the recorded rounds only.
    const recorded = (values: number[]) => values.slice(values.length - ctx.runs);
    const sent = recorded(bytes);
    const alone = recorded(ideal);
    return [
      figure({
        id: "sync-edit-bytes",
        title: `one-file edit in a ${corpus.paths.length}-file repo: bytes sent`,
        unit: "bytes",
        subject: measured("POST /v1/sync body (emulator log)", sent),
        baseline: measured("the edited file alone, zstd -3", alone),
        goal: atMostBaselinePlus(4096),
        details: { filesWritten: recorded(written), repoFiles: corpus.paths.length, repoBytes: corpus.bytes },
      }),
      figure({
        id: "sync-edit-planning",
        title: `one-file edit in a ${corpus.paths.length}-file repo: planning with a warm cache`,
        unit: "ms",
        subject: measured("manifest + hash + diff phases (--timing-json)", result.subject),
        baseline: measured("git ls-files --cached --others --exclude-standard -z", result.baseline),
        goal: ratioAtMost(3),
      }),
    ];
  },
};

export default benchmark;
