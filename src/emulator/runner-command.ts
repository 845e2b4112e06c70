/**
 * How to start the host runner: the pre-registered `crabbox-runner` image runs the CLI binary
 * itself in its hidden `__runner` mode, so one binary is enough to run the emulator.
 *
 * Compiled or from source? `isCompiledBinary` (core/compiled.ts) — independent of how the binary
 * was named, copied or symlinked. From source (`bun src/cli.ts`, `bun test`), `process.execPath`
 * is bun and the runner is `runner/main.ts` next to this tree.
 */
import { realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import { isCompiledBinary } from "../core/compiled.ts";

export interface HostRunner {
  argv: string[];
  /** Host paths the runner needs visible inside a sandbox. */
  readOnly: string[];
}

export function hostRunner(): HostRunner {
  const executable = realpathSync(process.execPath);
  if (isCompiledBinary()) return { argv: [executable, "__runner"], readOnly: [executable] };
  const repo = resolve(import.meta.dir, "..", "..");
  return { argv: [executable, join(repo, "runner", "main.ts")], readOnly: [executable, repo] };
}
