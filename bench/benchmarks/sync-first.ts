import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateCorpus, git } from "../lib/corpus.ts";
import { benchWorld } from "../lib/emulator.ts";
import { figure, measured, paired, ratioAtMost, timed } from "../lib/measure.ts";
import type { Benchmark } from "../lib/types.ts";

/**
 * The first full sync of a generated 50 MB / 3,000-file tree into a lease's empty workdir (a new
 * workdir each round, the hash cache dropped first: nothing is known), timed by the sync phase of
 * `--timing-json` — listing, hashing, compressing, uploading through the emulator's proxy and the
 * runner's apply — against `tar czf` of the same files. Its compressed body is compared with the
 * same tar through `gzip -6`.
 */

const SLUG = "bench-first";

const benchmark: Benchmark = {
  name: "sync-first",
  title: "first full sync of a 50 MB / 3,000-file tree",
  async run(ctx) {
    const world = await benchWorld(ctx);
    const spec = ctx.quick
      ? { files: 600, bytes: 10_000_000, seed: 50 }
      : { files: 3000, bytes: 50_000_000, seed: 50 };
    const corpus = generateCorpus(world.repo, spec);
    git(world.repo, ["add", "-A"]);
    git(world.repo, ["commit", "-q", "-m", "corpus"]);
    const list = join(ctx.tmpdir("first-list"), "files");
    const files = git(world.repo, ["ls-files", "-z"]).split("\0").filter(Boolean);
    writeFileSync(list, `${files.join("\n")}\n`);
    const out = join(ctx.tmpdir("first-tar"), "tree.tgz");
    ctx.log(`tree: ${files.length} files, ${corpus.bytes} bytes`);
    await world.warmup(SLUG);

    const cacheDir = join(world.env.XDG_STATE_HOME as string, "crabbox", "sync-cache");
    const sent: number[] = [];
    const workdirs: string[] = [];
    let round = 0;
    const result = await paired({
      runs: ctx.runs,
      subject: async () => {
        const workdir = `/workspace/first-${round++}`;
        rmSync(cacheDir, { recursive: true, force: true });
        const run = await world.crabbox(
          ["run", "--id", SLUG, "--sync-only", "--timing-json", "--aws-lambda-microvm-workdir", workdir],
          { capture: true },
        );
        const line = run.stderr.split("\n").find((l) => l.startsWith('{"provider"'));
        if (!line) throw new Error(`no --timing-json line in:\n${run.stderr.slice(-2000)}`);
        const timing = JSON.parse(line) as { syncMs: number; syncBytesSent: number };
        sent.push(timing.syncBytesSent);
        // The workdirs are removed after the last round, not between rounds: on a filesystem
        // without a journal (ext4 nojournal, as on the shared bench VM) the inode allocator skips
        // every inode deleted in the last minutes one by one, so creating 3,000 files right after
        // deleting 3,000 costs several times what it costs on a fresh disk, which is what a new
        // lease's first sync writes to. Measured there: `tar xf` of this tree took 1.3–1.8 s of
        // system time right after an `rm -rf` of the previous copy, 0.65 s once nothing had been
        // deleted for minutes.
        workdirs.push(workdir);
        return timing.syncMs;
      },
      baseline: async () =>
        (
          await timed(() => {
            const tar = spawnSync("tar", ["czf", out, "-C", world.repo, "-T", list]);
            if (tar.status !== 0) throw new Error(`tar czf failed: ${tar.stderr}`);
          })
        ).ms,
    });
    await world.crabbox(["run", "--id", SLUG, "--no-sync", "--", "rm", "-rf", ...workdirs]);
    const tar = spawnSync("tar", ["cf", "-", "-C", world.repo, "-T", list], { maxBuffer: 1 << 30 });
    const gzip = spawnSync("gzip", ["-6", "-c"], { input: tar.stdout, maxBuffer: 1 << 30 });
    const gzipBytes = (gzip.stdout as Buffer).length;
    const recorded = sent.slice(sent.length - ctx.runs);
    return [
      figure({
        id: "sync-first-time",
        title: `first full sync, ${files.length} files / ${Math.round(corpus.bytes / 1e6)} MB: sync phase`,
        unit: "ms",
        subject: measured("syncMs of --timing-json (list, hash, compress, upload, apply)", result.subject),
        baseline: measured("tar czf of the same files", result.baseline),
        goal: ratioAtMost(1.0),
      }),
      figure({
        id: "sync-first-bytes",
        title: `first full sync, ${files.length} files / ${Math.round(corpus.bytes / 1e6)} MB: compressed size`,
        unit: "bytes",
        subject: measured("sync body (zstd -3, syncBytesSent)", recorded),
        baseline: measured("tar cf | gzip -6", [gzipBytes]),
        goal: ratioAtMost(1.05),
        details: { tarBytes: (tar.stdout as Buffer).length },
      }),
    ];
  },
};

export default benchmark;
