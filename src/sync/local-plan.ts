import { resolveConfig } from "../config/resolve.ts";
import { debug } from "../core/output.ts";
import { stateDir } from "../core/paths.ts";
import { formatCompression, parseCompression } from "./compress.ts";
import { runGit } from "./git.ts";
import { EXAMPLE_LIMIT } from "./manifest.ts";
import { previewSync, type SyncPreview } from "./preview.ts";
import { snapshotWithCache } from "./snapshot.ts";

/**
 * `crabbox sync-plan` without a lease: the checkout as a new MicroVM's first sync would see it.
 * Needs no provider, no credentials and no network — only git and the files.
 */
export async function localSyncPlan(): Promise<SyncPreview> {
  const config = await resolveConfig();
  const compression = formatCompression(parseCompression(config.sync.compression));
  const snap = await snapshotWithCache({
    cwd: config.cwd,
    sync: config.sync,
    stateDir: stateDir(),
    allowLarge: true,
    onCacheError: (error) => debug(`hash cache not saved: ${String(error)}`),
  });
  return previewSync(snap, { compression, ignored: await gitIgnored(snap.manifest.root) });
}

/**
 * What .gitignore keeps out, as git reports it: an ignored directory is one entry (`node_modules/`),
 * so this stays cheap however much it holds. Only sync-plan asks; a run never needs it.
 */
export async function gitIgnored(root: string): Promise<{ count: number; examples: string[] } | undefined> {
  const result = await runGit(
    ["ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z"],
    root,
  );
  if (result.code !== 0) return undefined;
  const paths = result.stdout.toString("utf8").split("\0").filter(Boolean);
  return { count: paths.length, examples: paths.slice(0, EXAMPLE_LIMIT) };
}
