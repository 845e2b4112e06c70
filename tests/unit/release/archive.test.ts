import { afterAll, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tarGz } from "../../../scripts/release/archive.ts";
import { parseSha256Sums, renderSha256Sums, sha256 } from "../../../scripts/release/checksums.ts";
import { renderFormula } from "../../../scripts/release/formula.ts";
import { allTargets, archiveName, archiveRoot, runnerZipName } from "../../../scripts/release/layout.ts";
import { releaseUrls, sourceDateEpoch } from "../../../scripts/release.ts";

const dir = mkdtempSync(join(tmpdir(), "crabbox-release-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const members = [
  { path: "crabbox", data: new Uint8Array([1, 2, 3, 4]), mode: 0o755 },
  { path: "README.md", data: new TextEncoder().encode("# crabbox\n"), mode: 0o644 },
];

test("release names follow crabbox-<version>-<os>-<arch>", () => {
  expect(archiveName("1.2.3", "darwin-arm64")).toBe("crabbox-1.2.3-darwin-arm64.tar.gz");
  expect(archiveRoot("1.2.3", "linux-x64")).toBe("crabbox-1.2.3-linux-x64");
  expect(runnerZipName("1.2.3")).toBe("crabbox-lambda-microvm-1.2.3.zip");
});

test("archives are byte-identical across runs, whatever order members come in", async () => {
  const a = await tarGz("crabbox-1.0.0-linux-x64", members, 1_700_000_000);
  const b = await tarGz("crabbox-1.0.0-linux-x64", [...members].reverse(), 1_700_000_000);
  expect(sha256(a)).toBe(sha256(b));
  // gzip header: magic, deflate, no flags (no file name), mtime 0.
  expect([...a.subarray(0, 8)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
});

test("GNU tar lists one top-level directory, fixed owner, mode and mtime", async () => {
  const path = join(dir, "a.tar.gz");
  writeFileSync(path, await tarGz("crabbox-1.0.0-linux-x64", members, 1_700_000_000));
  const listing = spawnSync("tar", ["--utc", "-tvzf", path], { encoding: "utf8" });
  expect(listing.status).toBe(0);
  const lines = listing.stdout.trim().split("\n");
  expect(lines).toHaveLength(3);
  expect(lines[0]).toMatch(/^drwxr-xr-x 0\/0 +0 2023-11-14 22:13 crabbox-1\.0\.0-linux-x64\/$/);
  expect(lines[1]).toMatch(/^-rw-r--r-- 0\/0 +10 2023-11-14 22:13 crabbox-1\.0\.0-linux-x64\/README\.md$/);
  expect(lines[2]).toMatch(/^-rwxr-xr-x 0\/0 +4 2023-11-14 22:13 crabbox-1\.0\.0-linux-x64\/crabbox$/);
});

test("SHA256SUMS is sha256sum's format, sorted, and parses back", () => {
  const sums = { "b.zip": "b".repeat(64), "a.tar.gz": "a".repeat(64) };
  const text = renderSha256Sums(sums);
  expect(text).toBe(`${"a".repeat(64)}  a.tar.gz\n${"b".repeat(64)}  b.zip\n`);
  expect(parseSha256Sums(text)).toEqual(sums);
  expect(() => parseSha256Sums("nonsense\n")).toThrow();
});

function formula() {
  const archives = Object.fromEntries(
    allTargets.map((target, index) => [
      target,
      { name: archiveName("1.2.3", target), sha256: String(index).repeat(64) },
    ]),
  ) as Parameters<typeof renderFormula>[0]["archives"];
  return renderFormula({
    version: "1.2.3",
    baseUrl: "https://github.com/acme/crabbox/releases/download/v1.2.3",
    homepage: "https://github.com/acme/crabbox",
    archives,
    runner: { name: runnerZipName("1.2.3"), sha256: "f".repeat(64) },
  });
}

test("the formula has one url and sha256 per platform, the runner resource and a version test", () => {
  const text = formula();
  for (const [index, target] of allTargets.entries()) {
    const block = `url "https://github.com/acme/crabbox/releases/download/v1.2.3/crabbox-1.2.3-${target}.tar.gz"\n      sha256 "${String(index).repeat(64)}"`;
    expect(text).toContain(block);
  }
  expect(text.match(/^\s+url "/gm)).toHaveLength(5);
  expect(text).toContain(
    'on_macos do\n    on_arm do\n      url "https://github.com/acme/crabbox/releases/download/v1.2.3/crabbox-1.2.3-darwin-arm64',
  );
  expect(text).toContain(
    'on_linux do\n    on_arm do\n      url "https://github.com/acme/crabbox/releases/download/v1.2.3/crabbox-1.2.3-linux-arm64',
  );
  expect(text).toContain(
    `crabbox-lambda-microvm-1.2.3.zip", using: :nounzip\n    sha256 "${"f".repeat(64)}"`,
  );
  expect(text).toContain(
    'test do\n    assert_match "crabbox #{version}", shell_output("#{bin}/crabbox --version")',
  );
  expect(text).toContain('bin.install "crabbox"');
  expect(formula()).toBe(text);
});

// Debian's ruby is a platform-suite package; tests/platform/release-artifacts.test.ts always checks.
const hasRuby = !spawnSync("ruby", ["--version"]).error;

test.skipIf(!hasRuby)("ruby parses the formula", () => {
  const path = join(dir, "crabbox.rb");
  writeFileSync(path, formula());
  const check = spawnSync("ruby", ["-c", path], { encoding: "utf8" });
  expect(check.stdout.trim()).toBe("Syntax OK");
});

test("asset URLs: explicit base, the GitHub release of GITHUB_REPOSITORY, else the local directory", () => {
  expect(releaseUrls("1.0.0", "/x/assets", { baseUrl: "https://example.test/r/", env: {} })).toEqual({
    baseUrl: "https://example.test/r",
    homepage: "https://example.test/r",
  });
  expect(releaseUrls("1.0.0", "/x/assets", { env: { GITHUB_REPOSITORY: "acme/crabbox" } })).toEqual({
    baseUrl: "https://github.com/acme/crabbox/releases/download/v1.0.0",
    homepage: "https://github.com/acme/crabbox",
  });
  expect(releaseUrls("1.0.0", "/x/assets", { env: {} }).baseUrl).toBe("file:///x/assets");
});

test("SOURCE_DATE_EPOCH wins for archive mtimes", () => {
  expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: "1234" })).toBe(1234);
  expect(sourceDateEpoch({})).toBeGreaterThan(0);
});
