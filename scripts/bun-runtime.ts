/**
 * Cross-compile runtimes. `bun build --compile --target=…` would download them from the network at
 * build time; instead we fetch the same `@oven/bun-<platform>` tarball with `npm pack` (the npm
 * registry is the one network we may use), check it against the sha512 committed in
 * bun-runtimes.json, and pass it with `--compile-executable-path`. Installing them as dependencies
 * is not an option: npm refuses them on other platforms (EBADPLATFORM) and `npm ci` breaks.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import runtimes from "./bun-runtimes.json" with { type: "json" };

export type CompileTarget = "linux-x64" | "linux-arm64" | "darwin-arm64" | "darwin-x64";

export const allTargets: CompileTarget[] = ["linux-x64", "linux-arm64", "darwin-arm64", "darwin-x64"];

/** npm's platform package names use "aarch64" where Bun's targets say "arm64". */
const npmPlatform: Record<CompileTarget, keyof typeof runtimes.integrity> = {
  "linux-x64": "linux-x64",
  "linux-arm64": "linux-aarch64",
  "darwin-arm64": "darwin-aarch64",
  "darwin-x64": "darwin-x64",
};

export const repoRoot = resolve(import.meta.dir, "..");
const cacheDir = join(repoRoot, ".cache", "bun-runtimes");

export function hostTarget(): CompileTarget {
  const arch = process.arch === "arm64" ? "arm64" : "x64";
  const os = process.platform === "darwin" ? "darwin" : "linux";
  return `${os}-${arch}` as CompileTarget;
}

function installedBunVersion(): string {
  const pkg = JSON.parse(readFileSync(join(repoRoot, "node_modules", "bun", "package.json"), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

function sri(bytes: Uint8Array): string {
  return `sha512-${createHash("sha512").update(bytes).digest("base64")}`;
}

/** Path of a checked Bun runtime binary for `target`, fetched with `npm pack` on first use. */
export function ensureRuntime(target: CompileTarget): string {
  const version = installedBunVersion();
  if (version !== runtimes.version) {
    throw new Error(
      `node_modules has bun ${version} but scripts/bun-runtimes.json pins ${runtimes.version}; update both together`,
    );
  }
  const platform = npmPlatform[target];
  const dir = join(cacheDir, `${platform}-${version}`);
  const binary = join(dir, "package", "bin", "bun");
  if (existsSync(binary)) return binary;

  mkdirSync(dir, { recursive: true });
  const spec = `@oven/bun-${platform}@${version}`;
  const packed = spawnSync("npm", ["pack", spec, "--silent", "--pack-destination", dir], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (packed.status !== 0) throw new Error(`npm pack ${spec} failed (exit ${packed.status})`);
  const tarball = readdirSync(dir).find((name) => name.endsWith(".tgz"));
  if (!tarball) throw new Error(`npm pack ${spec} wrote no tarball`);
  const tarPath = join(dir, tarball);
  const expected = runtimes.integrity[platform];
  const actual = sri(readFileSync(tarPath));
  if (actual !== expected) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${spec}: integrity mismatch (expected ${expected}, got ${actual}); refusing to use it`);
  }
  const staging = join(dir, "staging");
  mkdirSync(staging, { recursive: true });
  const untar = spawnSync("tar", ["xzf", tarPath, "-C", staging], { stdio: "inherit" });
  if (untar.status !== 0) throw new Error(`could not unpack ${tarPath}`);
  renameSync(join(staging, "package"), join(dir, "package"));
  rmSync(staging, { recursive: true, force: true });
  rmSync(tarPath);
  return binary;
}
