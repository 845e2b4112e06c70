import { humanBytes } from "../core/duration.ts";
import { type DirSize, formatTopDirs, topDirs } from "./guard.ts";
import { EMPTY_REMOTE, planSync, type RemoteManifest } from "./plan.ts";
import type { LocalSnapshot } from "./snapshot.ts";

/**
 * `crabbox sync-plan`: what a run would send, described rather than done (the nypm `--dry`
 * model — the library returns a description, the command decides how to show it). Without a
 * lease the delta is against an empty workdir: the full first sync of a new MicroVM.
 */

export interface SyncPreviewLease {
  leaseId: string;
  slug: string;
  microvmId: string;
  workdir: string;
  /** The runner's workdir fingerprint (`empty` when never synced). */
  fingerprint: string;
  /** What this machine remembers having synced there: `current`, `stale` (differs) or `none`. */
  remembered: "current" | "stale" | "none";
  /** Files in the workdir crabbox did not sync (build output, caches); they survive syncs. */
  unsynced: { count: number; bytes: number } | undefined;
}

export interface SyncPreview {
  root: string;
  /** The candidate: every file a sync would make the workdir hold. */
  files: number;
  bytes: number;
  /** Paths left out, by reason; `gitignore` counts an ignored directory once (`node_modules/`). */
  excluded: { reason: string; count: number; examples: string[] }[];
  submodules: string[];
  /** Warning lines a run would print (submodules, protected tracked files, size thresholds). */
  warnings: string[];
  /** Against what the delta was planned. */
  against: "empty-workdir" | "lease";
  lease: SyncPreviewLease | undefined;
  /** What would travel. */
  send: { files: number; deletes: number; unchanged: number; bytes: number; topDirs: DirSize[] };
  /** The fingerprint the workdir would have afterwards. */
  fingerprint: string;
  compression: string;
  hash: { hashed: number; cached: number };
  timings: { manifestMs: number; hashMs: number; diffMs: number };
}

export interface PreviewOptions {
  compression: string;
  /** Paths .gitignore keeps out (an ignored directory counts once), when known. */
  ignored?: { count: number; examples: string[] };
  /** The lease's runner manifest and what is remembered for it; undefined = a new MicroVM. */
  lease?: Omit<SyncPreviewLease, "fingerprint" | "remembered"> & {
    remote: RemoteManifest;
    remembered: RemoteManifest | undefined;
  };
}

export function previewSync(snap: LocalSnapshot, options: PreviewOptions): SyncPreview {
  const diffStarted = performance.now();
  const remote = options.lease?.remote ?? EMPTY_REMOTE;
  const plan = planSync(snap.entries, remote);
  const diffMs = performance.now() - diffStarted;
  const { manifest } = snap;
  const excluded = Object.entries(manifest.excluded.counts)
    .map(([reason, count]) => ({
      reason,
      count: count ?? 0,
      examples: manifest.excluded.examples[reason as keyof typeof manifest.excluded.examples] ?? [],
    }))
    .sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1));
  if (options.ignored && options.ignored.count > 0) {
    excluded.push({ reason: "gitignore", count: options.ignored.count, examples: options.ignored.examples });
  }
  let lease: SyncPreviewLease | undefined;
  if (options.lease) {
    const { remote: runnerManifest, remembered, ...rest } = options.lease;
    lease = {
      ...rest,
      fingerprint: runnerManifest.fingerprint,
      remembered: !remembered
        ? "none"
        : remembered.fingerprint === runnerManifest.fingerprint
          ? "current"
          : "stale",
    };
  }
  return {
    root: manifest.root,
    files: snap.guard.files,
    bytes: snap.guard.bytes,
    excluded,
    submodules: manifest.submodules,
    warnings: [...manifest.warnings, ...snap.guard.warnings],
    against: lease ? "lease" : "empty-workdir",
    lease,
    send: {
      files: plan.writes.length,
      deletes: plan.deletes.length,
      unchanged: plan.unchanged,
      bytes: plan.bytes,
      topDirs: topDirs(plan.writes),
    },
    fingerprint: plan.expect,
    compression: options.compression,
    hash: { hashed: snap.hash.hashed, cached: snap.hash.cached },
    timings: {
      manifestMs: tenth(snap.timings.manifestMs),
      hashMs: tenth(snap.timings.hashMs),
      diffMs: tenth(diffMs),
    },
  };
}

const tenth = (ms: number) => Math.round(ms * 10) / 10;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The human form: one fact per line, on stdout (it is the command's answer, not progress). */
export function previewText(p: SyncPreview): string {
  const lines = [`sync candidate: ${plural(p.files, "file")}, ${humanBytes(p.bytes)} (${p.root})`];
  if (p.lease) {
    lines.push(
      `against lease ${p.lease.leaseId} (${p.lease.slug}) microvm=${p.lease.microvmId} workdir=${p.lease.workdir} remembered=${p.lease.remembered}`,
    );
  } else {
    lines.push("against an empty workdir (a new MicroVM; pass --id to compare with a lease)");
  }
  if (p.send.files === 0 && p.send.deletes === 0) {
    lines.push(`send: nothing — unchanged (${plural(p.send.unchanged, "file")} already there)`);
  } else {
    lines.push(
      `send: ${plural(p.send.files, "file")} (${humanBytes(p.send.bytes)} before ${p.compression}), delete ${plural(p.send.deletes, "path")}, ${p.send.unchanged} unchanged`,
    );
  }
  if (p.send.topDirs.length > 0) lines.push(`top dirs: ${formatTopDirs(p.send.topDirs)}`);
  if (p.lease?.unsynced) {
    lines.push(
      `remote unsynced: ${plural(p.lease.unsynced.count, "file")}, ${humanBytes(p.lease.unsynced.bytes)} (created in the MicroVM; kept by syncs)`,
    );
  }
  for (const entry of p.excluded) {
    const examples =
      entry.examples.length > 0
        ? `: ${entry.examples.join(", ")}${entry.count > entry.examples.length ? ", …" : ""}`
        : "";
    lines.push(`excluded ${entry.reason}: ${entry.count}${examples}`);
  }
  for (const warning of p.warnings) lines.push(`warning: ${warning}`);
  lines.push(
    `hashed ${p.hash.hashed}, from cache ${p.hash.cached}; manifest ${Math.round(p.timings.manifestMs)}ms hash ${Math.round(p.timings.hashMs)}ms diff ${Math.round(p.timings.diffMs)}ms`,
  );
  return `${lines.join("\n")}\n`;
}
