/** Reads bun's junit report into counts; `undefined` when the file is missing. */
import { existsSync, readFileSync } from "node:fs";

export interface JunitCounts {
  passed: number;
  failed: number;
  skipped: number;
}

export function readJunit(file: string): JunitCounts | undefined {
  if (!existsSync(file)) return undefined;
  const xml = readFileSync(file, "utf8");
  const root = /<testsuites\b([^>]*)>/.exec(xml)?.[1];
  if (root === undefined) return undefined;
  const attr = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(root)?.[1] ?? 0);
  const tests = attr("tests");
  const failed = attr("failures") + attr("errors");
  const skipped = attr("skipped");
  return { passed: tests - failed - skipped, failed, skipped };
}

/** Sums several reports: `.ci/run` prints one final line for every suite it ran. */
if (import.meta.main) {
  const totals = { passed: 0, failed: 0, skipped: 0 };
  let missing = 0;
  for (const file of process.argv.slice(2)) {
    const counts = readJunit(file);
    if (!counts) {
      missing++;
      continue;
    }
    totals.passed += counts.passed;
    totals.failed += counts.failed;
    totals.skipped += counts.skipped;
  }
  // A suite that did not report counts as a failure, never as silence.
  totals.failed += missing;
  process.stdout.write(`${totals.passed} passed, ${totals.failed} failed\n`);
  process.exit(totals.failed > 0 || totals.passed === 0 ? 1 : 0);
}
