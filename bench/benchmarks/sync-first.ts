import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commitCorpus, git } from "../lib/corpus.ts";
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

/**
 * Where the emulator keeps its MicroVMs' disks. A MicroVM's disk is its own; on the shared bench
 * VM the host's filesystem (ext4 without a journal) makes creating files slow for minutes after
 * anything deletes thousands of them (the inode allocator skips each recently deleted inode one by
 * one: `tar xf` of this tree took 1.3–1.8 s of system time right after an `rm -rf` of a copy,
 * 0.65 s after minutes without deletes, 0.11 s on tmpfs) — so the figure with the goal puts the
 * MicroVMs' disks on tmpfs, and the same rounds on the host's filesystem are reported beside it.
 */
function tmpfsStateDir(ctx: Parameters<Benchmark["run"]>[0]): string | undefined {
  try {
    const fs = statfsSync("/dev/shm");
    if (fs.bavail * fs.bsize < 2 * 1024 ** 3) return undefined;
  } catch {
    return undefined;
  }
  const dir = mkdtempSync("/dev/shm/crabbox-bench-");
  ctx.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "state");
}

interface Rounds {
  files: number;
  bytes: number;
  subject: number[];
  baseline: number[];
  sent: number[];
  list: string;
  repo: string;
}

/** Warms a lease up, then times `ctx.runs` first syncs into new workdirs, paired with `tar czf`. */
async function firstSyncRounds(
  ctx: Parameters<Benchmark["run"]>[0],
  stateDir: string | undefined,
): Promise<Rounds> {
  const world = await benchWorld(ctx, stateDir ? { stateDir } : {});
  const spec = ctx.quick
    ? { files: 600, bytes: 10_000_000, seed: 50 }
    : { files: 3000, bytes: 50_000_000, seed: 50 };
  const corpus = commitCorpus(world.repo, spec);
  const list = join(ctx.tmpdir("first-list"), "files");
  const files = git(world.repo, ["ls-files", "-z"]).split("\0").filter(Boolean);
  writeFileSync(list, `${files.join("\n")}\n`);
  const out = join(ctx.tmpdir("first-tar"), "tree.tgz");
  ctx.log(
    `tree: ${files.length} files, ${corpus.bytes} bytes; MicroVM disks on ${stateDir ? "tmpfs" : "the host's filesystem"}`,
  );
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
      // Removed after the last round, not between rounds (see tmpfsStateDir).
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
  return {
    files: files.length,
    bytes: corpus.bytes,
    subject: result.subject,
    baseline: result.baseline,
    sent: sent.slice(sent.length - ctx.runs),
    list,
    repo: world.repo,
  };
}

const benchmark: Benchmark = {
  name: "sync-first",
  title: "first full sync of a 50 MB / 3,000-file tree",
  async run(ctx) {
    const tmpfs = tmpfsStateDir(ctx);
    const primary = await firstSyncRounds(ctx, tmpfs);
    const onHost = tmpfs ? await firstSyncRounds(ctx, undefined) : undefined;
    const tar = spawnSync("tar", ["cf", "-", "-C", primary.repo, "-T", primary.list], { maxBuffer: 1 << 30 });
    const gzip = spawnSync("gzip", ["-6", "-c"], { input: tar.stdout, maxBuffer: 1 << 30 });
    const gzipBytes = (gzip.stdout as Buffer).length;
    const tree = `${primary.files} files / ${Math.round(primary.bytes / 1e6)} MB`;
    const figures = [
      figure({
        id: "sync-first-time",
        title: `first full sync, ${tree}: sync phase${tmpfs ? " (MicroVM disk on tmpfs)" : ""}`,
        unit: "ms",
        subject: measured("syncMs of --timing-json (list, hash, compress, upload, apply)", primary.subject),
        baseline: measured("tar czf of the same files", primary.baseline),
        goal: ratioAtMost(1.0),
      }),
    ];
    if (onHost) {
      figures.push(
        figure({
          id: "sync-first-time-host-disk",
          title: `first full sync, ${tree}: sync phase (MicroVM disk on the host's filesystem)`,
          unit: "ms",
          subject: measured("syncMs of --timing-json", onHost.subject),
          baseline: measured("tar czf of the same files", onHost.baseline),
        }),
      );
    }
    figures.push(
      figure({
        id: "sync-first-bytes",
        title: `first full sync, ${tree}: compressed size`,
        unit: "bytes",
        subject: measured("sync body (zstd -3, syncBytesSent)", primary.sent),
        baseline: measured("tar cf | gzip -6", [gzipBytes]),
        goal: ratioAtMost(1.05),
        details: { tarBytes: (tar.stdout as Buffer).length },
      }),
    );
    return figures;
  },
};

export default benchmark;
