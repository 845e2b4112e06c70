/**
 * Names and places of release files, in one module so `build`, `pack`, the formula, the workflows'
 * expectations and the tests agree: the build dir holds what `build` compiled (and what the macOS
 * job re-signs in place), the assets dir what a release uploads.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { allTargets, type CompileTarget, repoRoot } from "../bun-runtime.ts";

export { allTargets, type CompileTarget };

export const darwinTargets: CompileTarget[] = allTargets.filter((target) => target.startsWith("darwin-"));

export function packageVersion(root = repoRoot): string {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** `crabbox-0.1.0-darwin-arm64.tar.gz`; its single top-level directory is the name without `.tar.gz`. */
export function archiveName(version: string, target: CompileTarget): string {
  return `crabbox-${version}-${target}.tar.gz`;
}

export function archiveRoot(version: string, target: CompileTarget): string {
  return archiveName(version, target).replace(/\.tar\.gz$/, "");
}

/** The MicroVM image's code artifact, as a release asset (the name `crabbox image build` looks for). */
export { runnerZipName } from "../../src/image/artifact.ts";

export interface ReleaseDirs {
  /** `<out>/build/<target>/crabbox`, the runner zip and build.json. */
  build: string;
  /** `<out>/assets`: archives, the runner zip, SHA256SUMS. */
  assets: string;
  /** `<out>/Formula/crabbox.rb`. */
  formula: string;
}

export function releaseDirs(out: string): ReleaseDirs {
  return { build: join(out, "build"), assets: join(out, "assets"), formula: join(out, "Formula") };
}

/** Where `build` puts a target's binary. The file is named `crabbox` because Bun embeds the name. */
export function binaryPath(buildDir: string, target: CompileTarget): string {
  return join(buildDir, target, "crabbox");
}

/** What `build` records for `pack`: pack never guesses which targets or which commit it packs. */
export interface BuildManifest {
  version: string;
  commit: string;
  /** Seconds since the epoch for every archive member (SOURCE_DATE_EPOCH, else the commit time). */
  sourceDateEpoch: number;
  targets: CompileTarget[];
  runnerZip: string;
}

export const BUILD_MANIFEST = "build.json";
