/**
 * What one runner process guards: the workdirs being synced right now (the sync lock) and the exec
 * sessions. Passed to every handler; there is no module-level state.
 */
import { isWithin } from "../src/protocol/paths.ts";
import type { ExecRegistry } from "./exec.ts";
import type { RunnerPaths } from "./paths.ts";

export interface RunnerState {
  paths: RunnerPaths;
  version: string;
  /** In-VM workdirs with a sync in progress. */
  syncing: Set<string>;
  execs: ExecRegistry;
}

/** A workdir is busy while it, a parent or a child of it is being synced. */
export function syncingOverlap(state: RunnerState, workdir: string): string | undefined {
  for (const active of state.syncing) {
    if (isWithin(active, workdir) || isWithin(workdir, active)) return active;
  }
  return undefined;
}
