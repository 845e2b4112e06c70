import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { compile } from "../../scripts/build.ts";

/**
 * The compiled baseline programs (`bench/baselines/*.ts`), built once per `npm run bench` with
 * exactly the flags `dist/crabbox` gets (scripts/build.ts `compile`), so a ratio compares crabbox's
 * own work and nothing about how it was built.
 */

export type BaselineName = "hello" | "sdk-call" | "exec-once";

const built = new Map<BaselineName, string>();

export function baseline(repoRoot: string, name: BaselineName): string {
  const known = built.get(name);
  if (known) return known;
  const dir = join(repoRoot, ".cache", "bench-baselines");
  mkdirSync(dir, { recursive: true });
  const outfile = join(dir, name);
  compile({ entry: join("bench", "baselines", `${name}.ts`), outfile });
  built.set(name, outfile);
  return outfile;
}
