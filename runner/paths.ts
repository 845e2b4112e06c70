/**
 * In-VM paths versus host paths. Inside a MicroVM they are the same; under the emulator's
 * isolation `none` the runner gets `--root DIR` and every in-VM absolute path (workdirs, /tmp,
 * runner state) lives under DIR. Requests and responses always speak in-VM paths.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

/** Where the runner keeps manifests: outside every workdir, so a sync can never touch them. */
export const STATE_DIR = "/var/lib/crabbox-runner";
export const TMP_DIR = "/tmp";

export interface RunnerPaths {
  root: string | undefined;
  /** Host path of an in-VM absolute path. */
  host(inVm: string): string;
  /** Host path of the file holding `workdir`'s manifest. */
  manifestFile(workdir: string): string;
  /** Host path of the directory exec scripts are written to. */
  tmpDir: string;
}

export function runnerPaths(root: string | undefined): RunnerPaths {
  const host = (inVm: string) => (root === undefined ? inVm : join(root, inVm));
  return {
    root,
    host,
    manifestFile: (workdir) =>
      join(host(STATE_DIR), "manifests", `${createHash("sha256").update(workdir).digest("hex")}.json`),
    tmpDir: host(TMP_DIR),
  };
}
