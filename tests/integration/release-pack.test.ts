/**
 * `scripts/release.ts pack` and `verify` as the release workflow runs them, on a build directory of
 * small stand-in binaries (real Mach-O files for darwin, signed ad hoc): two packs give the same
 * checksums, `sha256sum -c` accepts SHA256SUMS, the formula names every asset, and a darwin binary
 * whose signature no longer verifies stops the release. The full 4-target build runs in
 * tests/platform/release-artifacts.test.ts.
 */
import { afterAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signAdhoc } from "../../scripts/macho.ts";
import {
  allTargets,
  BUILD_MANIFEST,
  type BuildManifest,
  binaryPath,
  releaseDirs,
} from "../../scripts/release/layout.ts";
import { writeZip } from "../../src/image/zip.ts";
import { fakeMachO } from "../unit/release/macho-fixture.ts";
import { repoRoot } from "./cli-harness.ts";

const root = mkdtempSync(join(tmpdir(), "crabbox-release-pack-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function fakeBuild(out: string): void {
  const { build } = releaseDirs(out);
  for (const [index, target] of allTargets.entries()) {
    mkdirSync(join(build, target), { recursive: true });
    const data = target.startsWith("darwin-")
      ? signAdhoc(fakeMachO({ seed: index + 1 }), "crabbox")
      : new TextEncoder().encode(`#!/bin/sh\necho crabbox 9.9.9 (${target})\n`);
    writeFileSync(binaryPath(build, target), data);
  }
  const runnerZip = "crabbox-lambda-microvm-9.9.9.zip";
  writeFileSync(
    join(build, runnerZip),
    writeZip([{ name: "Dockerfile", data: new TextEncoder().encode("FROM scratch\n"), mode: 0o644 }]),
  );
  const manifest: BuildManifest = {
    version: "9.9.9",
    commit: "abcdef123456",
    sourceDateEpoch: 1_700_000_000,
    targets: allTargets,
    runnerZip,
  };
  writeFileSync(join(build, BUILD_MANIFEST), JSON.stringify(manifest));
}

function release(step: string, out: string, ...extra: string[]) {
  return spawnSync(process.execPath, ["scripts/release.ts", step, "--out", out, ...extra], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, GITHUB_REPOSITORY: "", CRABBOX_RELEASE_BASE_URL: "" },
  });
}

test("pack writes the archives, the runner zip, SHA256SUMS and the formula; twice gives the same sums", () => {
  const outs = [join(root, "one"), join(root, "two")];
  for (const out of outs) {
    fakeBuild(out);
    const packed = release("pack", out, "--base-url", "https://example.test/v9.9.9");
    expect(packed.stderr).toContain("SHA256SUMS");
    expect(packed.status).toBe(0);
  }
  const [one, two] = outs.map((out) => readFileSync(join(releaseDirs(out).assets, "SHA256SUMS"), "utf8"));
  expect(one).toBe(two as string);
  const names = (one as string)
    .trim()
    .split("\n")
    .map((line) => line.split("  ")[1]);
  expect(names).toEqual([
    "crabbox-9.9.9-darwin-arm64.tar.gz",
    "crabbox-9.9.9-darwin-x64.tar.gz",
    "crabbox-9.9.9-linux-arm64.tar.gz",
    "crabbox-9.9.9-linux-x64.tar.gz",
    "crabbox-lambda-microvm-9.9.9.zip",
  ]);
  const assets = releaseDirs(outs[0] as string).assets;
  const check = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: assets, encoding: "utf8" });
  expect(check.status).toBe(0);
  const formula = readFileSync(join(releaseDirs(outs[0] as string).formula, "crabbox.rb"), "utf8");
  expect(formula).toBe(readFileSync(join(releaseDirs(outs[1] as string).formula, "crabbox.rb"), "utf8"));
  for (const line of (one as string).trim().split("\n")) {
    const [sum, name] = line.split("  ");
    expect(formula).toContain(`"https://example.test/v9.9.9/${name}"`);
    expect(formula).toContain(`sha256 "${sum}"`);
  }
  const verified = release("verify", outs[0] as string);
  expect(verified.stderr).toContain("is consistent");
  expect(verified.status).toBe(0);
  // The archive holds an executable crabbox under one top-level directory.
  const listing = spawnSync("tar", ["-tvzf", join(assets, "crabbox-9.9.9-linux-x64.tar.gz")], {
    encoding: "utf8",
  });
  expect(listing.stdout).toMatch(/^-rwxr-xr-x 0\/0 .* crabbox-9\.9\.9-linux-x64\/crabbox$/m);
});

test("verify finds an asset that no longer matches SHA256SUMS", () => {
  const out = join(root, "three");
  fakeBuild(out);
  expect(release("pack", out).status).toBe(0);
  const zip = join(releaseDirs(out).assets, "crabbox-lambda-microvm-9.9.9.zip");
  writeFileSync(zip, Buffer.concat([readFileSync(zip), Buffer.from("x")]));
  const verified = release("verify", out);
  expect(verified.status).toBe(1);
  expect(verified.stderr).toContain("crabbox-lambda-microvm-9.9.9.zip: sha256 differs from SHA256SUMS");
});

test("pack refuses a darwin binary whose code signature does not verify", () => {
  const out = join(root, "four");
  fakeBuild(out);
  const binary = binaryPath(releaseDirs(out).build, "darwin-x64");
  const bytes = readFileSync(binary);
  bytes[5000] = ((bytes[5000] as number) + 1) & 0xff;
  writeFileSync(binary, bytes);
  const packed = release("pack", out);
  expect(packed.status).toBe(1);
  expect(packed.stderr).toContain("darwin-x64: the Mach-O signature does not verify");
  expect(packed.stderr).toContain("page hashes differ");
});

test("pack without a build says to run build first", () => {
  const packed = release("pack", join(root, "empty"));
  expect(packed.status).toBe(1);
  expect(packed.stderr).toContain("run `bun scripts/release.ts build` first");
});
