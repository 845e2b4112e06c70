/**
 * `npm run package:runner` → dist/crabbox-lambda-microvm.zip: the MicroVM image's code artifact,
 * holding exactly `Dockerfile`, the linux-arm64 runner binary and a short README. It replaces the
 * upstream `zip -r … Dockerfile *.go` step: the image copies a prebuilt binary instead of building
 * Go source. The zip is written by src/image/zip.ts (deterministic: fixed timestamps, sorted
 * members) because `zip` is not on a fresh Debian, and so two packagings give the same bytes.
 *
 *   bun scripts/package-runner.ts [--out path.zip]
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseRunnerDockerfile } from "../src/image/dockerfile.ts";
import { writeZip } from "../src/image/zip.ts";
import { compile } from "./build.ts";
import { repoRoot } from "./bun-runtime.ts";

export const RUNNER_BINARY_NAME = "crabbox-runner";
export const ZIP_NAME = "crabbox-lambda-microvm.zip";

export async function packageRunner(out = join(repoRoot, "dist", ZIP_NAME)): Promise<string> {
  const dist = join(repoRoot, "dist");
  mkdirSync(dist, { recursive: true });
  const dockerfileText = readFileSync(join(repoRoot, "runner/Dockerfile"), "utf8");
  // The zip must hold what the Dockerfile copies and the CMD must start what it copied.
  const dockerfile = parseRunnerDockerfile(dockerfileText);
  const copy = dockerfile.copies.find((entry) => entry.sources.includes(RUNNER_BINARY_NAME));
  if (!copy) throw new Error(`runner/Dockerfile does not COPY ${RUNNER_BINARY_NAME}`);
  if (dockerfile.cmd[0] !== copy.dest) {
    throw new Error(
      `runner/Dockerfile CMD starts ${dockerfile.cmd[0]}, but the runner is copied to ${copy.dest}`,
    );
  }
  const binary = join(dist, `${RUNNER_BINARY_NAME}-linux-arm64`);
  compile({ entry: "runner/main.ts", outfile: binary, target: "linux-arm64" });
  const zip = writeZip([
    { name: "Dockerfile", data: Buffer.from(dockerfileText), mode: 0o644 },
    { name: RUNNER_BINARY_NAME, data: readFileSync(binary), mode: 0o755 },
    { name: "README.md", data: readFileSync(join(repoRoot, "runner/README.md")), mode: 0o644 },
  ]);
  writeFileSync(out, zip);
  const sha = createHash("sha256").update(zip).digest("hex");
  process.stderr.write(`wrote ${out} (${(zip.length / 1024 / 1024).toFixed(1)} MiB, sha256 ${sha})\n`);
  return out;
}

if (import.meta.main) {
  const index = process.argv.indexOf("--out");
  const out = index === -1 ? undefined : process.argv[index + 1];
  await packageRunner(out);
}
