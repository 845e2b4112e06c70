/**
 * Release artifacts, in the steps the release workflow runs:
 *
 *   bun scripts/release.ts build  [--out dist/release] [--targets linux-x64,…]
 *       compiles the CLI for every target into <out>/build/<target>/crabbox, gives the darwin
 *       binaries a valid ad-hoc signature (Bun's own is stale on darwin-x64) and packages the
 *       runner image zip. Writes <out>/build/build.json for pack.
 *   (the workflow re-signs <out>/build/darwin-<arch>/crabbox with Apple's codesign on macOS here)
 *   bun scripts/release.ts pack   [--out dist/release] [--base-url URL] [--homepage URL]
 *       refuses darwin binaries whose signature does not verify, then writes <out>/assets/
 *       crabbox-<version>-<os>-<arch>.tar.gz, crabbox-lambda-microvm-<version>.zip, SHA256SUMS
 *       and <out>/Formula/crabbox.rb. Same inputs, same bytes.
 *   bun scripts/release.ts verify [--out dist/release]
 *       re-reads the assets: checksums match SHA256SUMS, every archive holds an executable
 *       `crabbox`, darwin ones with a valid signature, and the formula names every asset's sha256.
 *
 * The version is package.json's; `crabbox --version` prints it with the commit.
 */

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { readTar } from "../src/protocol/tar.ts";
import { compile } from "./build.ts";
import { repoRoot } from "./bun-runtime.ts";
import { describeReport, signAdhoc, verifyMachO } from "./macho.ts";
import { packageRunner } from "./package-runner.ts";
import { tarGz } from "./release/archive.ts";
import { parseSha256Sums, renderSha256Sums, sha256, sha256File } from "./release/checksums.ts";
import { renderFormula } from "./release/formula.ts";
import {
  allTargets,
  archiveName,
  archiveRoot,
  BUILD_MANIFEST,
  type BuildManifest,
  binaryPath,
  type CompileTarget,
  packageVersion,
  releaseDirs,
  runnerZipName,
} from "./release/layout.ts";

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function git(args: string[]): string | undefined {
  const result = spawnSync("git", args, { cwd: repoRoot, encoding: "utf8" });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/** SOURCE_DATE_EPOCH (the reproducible-builds convention), else the commit time, else 0. */
export function sourceDateEpoch(env: Record<string, string | undefined> = process.env): number {
  const fromEnv = env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && /^\d+$/.test(fromEnv)) return Number(fromEnv);
  const fromGit = git(["log", "-1", "--format=%ct"]);
  return fromGit && /^\d+$/.test(fromGit) ? Number(fromGit) : 0;
}

function parseTargets(value: string | undefined): CompileTarget[] {
  if (value === undefined) return allTargets;
  const targets = value.split(",").map((item) => item.trim());
  for (const target of targets) {
    if (!allTargets.includes(target as CompileTarget)) {
      throw new Error(`unknown target ${target}; one of ${allTargets.join(", ")}`);
    }
  }
  return targets as CompileTarget[];
}

function assertSigned(path: string, label: string): void {
  const report = verifyMachO(readFileSync(path));
  if (!report.ok) {
    throw new Error(
      `${label}: the Mach-O signature does not verify:\n${describeReport(path, report).join("\n")}`,
    );
  }
}

export interface BuildOptions {
  out: string;
  targets?: CompileTarget[];
  /** Skip the runner zip (tests that only need CLI binaries). */
  runner?: boolean;
}

export async function build(options: BuildOptions): Promise<BuildManifest> {
  const { build: dir } = releaseDirs(options.out);
  const version = packageVersion();
  const targets = options.targets ?? allTargets;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const target of targets) {
    const outfile = binaryPath(dir, target);
    mkdirSync(join(dir, target), { recursive: true });
    compile({ entry: "src/cli.ts", outfile, target });
    if (target.startsWith("darwin-")) {
      // Bun 1.4.4 re-signs darwin-arm64 output but leaves darwin-x64 with the runtime's stale
      // signature; a fresh ad-hoc one makes both runnable even before the macOS job re-signs them.
      writeFileSync(outfile, signAdhoc(readFileSync(outfile), "crabbox"));
      assertSigned(outfile, target);
    }
  }
  const runnerZip = runnerZipName(version);
  if (options.runner !== false) await packageRunner(join(dir, runnerZip));
  const manifest: BuildManifest = {
    version,
    commit: git(["rev-parse", "--short=12", "HEAD"]) ?? "unknown",
    sourceDateEpoch: sourceDateEpoch(),
    targets,
    runnerZip,
  };
  writeFileSync(join(dir, BUILD_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  log(`built crabbox ${manifest.version} (${manifest.commit}) for ${targets.join(", ")} into ${dir}`);
  return manifest;
}

export interface PackOptions {
  out: string;
  baseUrl?: string;
  homepage?: string;
  env?: Record<string, string | undefined>;
}

export interface PackResult {
  manifest: BuildManifest;
  sums: Record<string, string>;
  formulaPath: string;
}

function readManifest(buildDir: string): BuildManifest {
  const path = join(buildDir, BUILD_MANIFEST);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bun scripts/release.ts build\` first`);
  return JSON.parse(readFileSync(path, "utf8")) as BuildManifest;
}

/** Where assets are downloaded from: --base-url, CRABBOX_RELEASE_BASE_URL, the GitHub release, or the local dir. */
export function releaseUrls(
  version: string,
  assetsDir: string,
  options: { baseUrl?: string; homepage?: string; env?: Record<string, string | undefined> },
): { baseUrl: string; homepage: string } {
  const env = options.env ?? process.env;
  const repo = env.GITHUB_REPOSITORY;
  const server = env.GITHUB_SERVER_URL ?? "https://github.com";
  const baseUrl = (
    options.baseUrl ??
    env.CRABBOX_RELEASE_BASE_URL ??
    (repo ? `${server}/${repo}/releases/download/v${version}` : `file://${resolve(assetsDir)}`)
  ).replace(/\/+$/, "");
  const homepage = options.homepage ?? (repo ? `${server}/${repo}` : baseUrl);
  return { baseUrl, homepage };
}

export async function pack(options: PackOptions): Promise<PackResult> {
  const dirs = releaseDirs(options.out);
  const manifest = readManifest(dirs.build);
  const { version } = manifest;
  const mtime = manifest.sourceDateEpoch;
  rmSync(dirs.assets, { recursive: true, force: true });
  rmSync(dirs.formula, { recursive: true, force: true });
  mkdirSync(dirs.assets, { recursive: true });
  mkdirSync(dirs.formula, { recursive: true });

  const sums: Record<string, string> = {};
  const readme = readFileSync(join(repoRoot, "README.md"));
  const archives = {} as Record<CompileTarget, { name: string; sha256: string }>;
  for (const target of manifest.targets) {
    const binary = binaryPath(dirs.build, target);
    if (target.startsWith("darwin-")) assertSigned(binary, target);
    const name = archiveName(version, target);
    const bytes = await tarGz(
      archiveRoot(version, target),
      [
        { path: "crabbox", data: readFileSync(binary), mode: 0o755 },
        { path: "README.md", data: readme, mode: 0o644 },
      ],
      mtime,
    );
    writeFileSync(join(dirs.assets, name), bytes);
    sums[name] = sha256(bytes);
    archives[target] = { name, sha256: sums[name] };
    log(`packed ${name} (${(bytes.length / 1024 / 1024).toFixed(1)} MiB)`);
  }
  const runnerSource = join(dirs.build, manifest.runnerZip);
  const runner = { name: manifest.runnerZip, sha256: "" };
  if (existsSync(runnerSource)) {
    copyFileSync(runnerSource, join(dirs.assets, manifest.runnerZip));
    runner.sha256 = await sha256File(runnerSource);
    sums[manifest.runnerZip] = runner.sha256;
  }
  writeFileSync(join(dirs.assets, "SHA256SUMS"), renderSha256Sums(sums));

  const formulaPath = join(dirs.formula, "crabbox.rb");
  const complete = allTargets.every((target) => archives[target]) && runner.sha256 !== "";
  if (complete) {
    const urls = releaseUrls(version, dirs.assets, options);
    writeFileSync(formulaPath, renderFormula({ version, ...urls, archives, runner }));
    log(`wrote ${formulaPath}`);
  } else {
    log("no formula: it needs all four platform archives and the runner zip");
  }
  log(`wrote ${join(dirs.assets, "SHA256SUMS")}`);
  return { manifest, sums, formulaPath };
}

/** The `crabbox` member of a release archive. */
export async function archiveBinary(path: string): Promise<{ data: Uint8Array; mode: number; path: string }> {
  const tar = gunzipSync(readFileSync(path));
  const source = (async function* () {
    yield new Uint8Array(tar);
  })();
  for await (const entry of readTar(source)) {
    const { header } = entry;
    if (header.type === "file" && basename(header.path) === "crabbox") {
      const chunks: Uint8Array[] = [];
      for await (const chunk of entry.body) chunks.push(chunk);
      return { data: Buffer.concat(chunks), mode: header.mode, path: header.path };
    }
    await entry.body.cancel();
  }
  throw new Error(`${path} has no crabbox binary`);
}

export async function verify(out: string): Promise<string[]> {
  const dirs = releaseDirs(out);
  const problems: string[] = [];
  const sums = parseSha256Sums(readFileSync(join(dirs.assets, "SHA256SUMS"), "utf8"));
  for (const [name, expected] of Object.entries(sums)) {
    const path = join(dirs.assets, name);
    if (!existsSync(path)) {
      problems.push(`${name}: listed in SHA256SUMS but missing`);
      continue;
    }
    if ((await sha256File(path)) !== expected) problems.push(`${name}: sha256 differs from SHA256SUMS`);
    if (!name.endsWith(".tar.gz")) continue;
    const binary = await archiveBinary(path);
    if ((binary.mode & 0o111) === 0) problems.push(`${name}: ${binary.path} is not executable`);
    if (name.includes("-darwin-")) {
      const report = verifyMachO(binary.data);
      if (!report.ok) problems.push(...describeReport(`${name}:${binary.path}`, report));
    }
  }
  const formula = join(dirs.formula, "crabbox.rb");
  if (existsSync(formula)) {
    const text = readFileSync(formula, "utf8");
    for (const [name, sum] of Object.entries(sums)) {
      if (!text.includes(`sha256 "${sum}"`)) problems.push(`Formula/crabbox.rb: no sha256 for ${name}`);
    }
  }
  return problems;
}

function option(argv: string[], name: string): string | undefined {
  const index = argv.indexOf(`--${name}`);
  if (index !== -1) return argv[index + 1];
  const inline = argv.find((arg) => arg.startsWith(`--${name}=`));
  return inline?.slice(name.length + 3);
}

async function cli(argv: string[]): Promise<number> {
  const [step, ...rest] = argv;
  const out = resolve(option(rest, "out") ?? join(repoRoot, "dist", "release"));
  switch (step) {
    case "build":
      await build({ out, targets: parseTargets(option(rest, "targets")) });
      return 0;
    case "pack":
      await pack({ out, baseUrl: option(rest, "base-url"), homepage: option(rest, "homepage") });
      return 0;
    case "verify": {
      const problems = await verify(out);
      for (const problem of problems) log(`verify: ${problem}`);
      if (problems.length === 0) log(`verify: ${releaseDirs(out).assets} is consistent`);
      return problems.length === 0 ? 0 : 1;
    }
    default:
      log("usage: bun scripts/release.ts build|pack|verify [--out dir] [--targets t,…] [--base-url url]");
      return 2;
  }
}

if (import.meta.main) {
  try {
    process.exitCode = await cli(process.argv.slice(2));
  } catch (error) {
    log(`release: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
