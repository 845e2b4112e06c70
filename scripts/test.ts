/**
 * `npm test` and its siblings. Builds the binary the integration tests drive, runs one suite with
 * bun's junit reporter, and prints the plain `N passed, N failed` line that bun test itself never
 * prints. Suites: `default` (unit + integration; needs only Node, npm and git), `platform` (needs
 * Debian packages: qemu-user-static, bubblewrap, ruby), `reliability` (the slow fault suite).
 *
 *   bun scripts/test.ts [suite] [-- extra bun test args]
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./bun-runtime.ts";
import { readJunit } from "./junit.ts";

const suites: Record<string, string[]> = {
  default: ["./tests/unit", "./tests/integration"],
  platform: ["./tests/platform"],
  reliability: ["./tests/reliability"],
};

const separator = process.argv.indexOf("--");
const own = separator === -1 ? process.argv.slice(2) : process.argv.slice(2, separator);
const extra = separator === -1 ? [] : process.argv.slice(separator + 1);
const suite = own[0] ?? "default";
const paths = suites[suite];
if (!paths) {
  process.stderr.write(`unknown suite ${suite}; one of ${Object.keys(suites).join(", ")}\n`);
  process.exit(2);
}

const build = spawnSync(process.execPath, ["scripts/build.ts"], { cwd: repoRoot, stdio: "inherit" });
if (build.status !== 0) process.exit(build.status ?? 1);

const junitDir = join(repoRoot, ".cache", "junit");
mkdirSync(junitDir, { recursive: true });
const junitFile = join(junitDir, `${suite}.xml`);
rmSync(junitFile, { force: true });

const result = spawnSync(
  process.execPath,
  ["test", ...paths, "--timeout=60000", "--reporter=junit", `--reporter-outfile=${junitFile}`, ...extra],
  { cwd: repoRoot, stdio: "inherit", env: { ...process.env, CRABBOX_REPO_ROOT: repoRoot } },
);

const counts = readJunit(junitFile);
if (!counts) {
  process.stderr.write(`no junit report at ${junitFile}: the test run did not finish\n`);
  process.exit(result.status || 1);
}
process.stdout.write(
  `${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ""}\n`,
);
if (counts.passed + counts.failed === 0) {
  process.stderr.write(`suite ${suite} ran no tests\n`);
  process.exit(1);
}
process.exit(result.status === 0 && counts.failed === 0 ? 0 : 1);
