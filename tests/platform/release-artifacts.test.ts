/**
 * The release, end to end on Linux: `scripts/release.ts build` (four CLI targets + the runner zip)
 * and `pack` twice (same SHA256SUMS), then what users get: the linux-x64 binary from its archive
 * prints its version and does a full run against an emulator started from that same binary; the
 * linux-arm64 CLI and the runner run under qemu-aarch64-static; the darwin binaries carry valid
 * code signatures page by page; `ruby -c` accepts the Homebrew formula.
 * Needs qemu-user-static, libc6-arm64-cross and ruby (Debian packages; .ci/run installs them).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "../../scripts/bun-runtime.ts";
import { describeReport, verifyMachO } from "../../scripts/macho.ts";
import { RUNNER_BINARY_NAME } from "../../scripts/package-runner.ts";
import {
  allTargets,
  archiveName,
  BUILD_MANIFEST,
  type BuildManifest,
  packageVersion,
  releaseDirs,
  runnerZipName,
} from "../../scripts/release/layout.ts";
import { archiveBinary } from "../../scripts/release.ts";
import { readZip } from "../../src/image/zip.ts";

// Four ~110 MB compiles, two packs of ~450 MB and qemu-user runs of a Bun binary take minutes.
setDefaultTimeout(300_000);

const root = mkdtempSync(join(tmpdir(), "crabbox-release-"));
const out = join(root, "release");
const dirs = releaseDirs(out);
const version = packageVersion();
const qemu = spawnSync("sh", ["-c", "command -v qemu-aarch64-static"], { encoding: "utf8" }).stdout.trim();
const children: ChildProcess[] = [];
let manifest: BuildManifest;

function release(step: string, ...extra: string[]) {
  const result = spawnSync(process.execPath, ["scripts/release.ts", step, "--out", out, ...extra], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, GITHUB_REPOSITORY: "", CRABBOX_RELEASE_BASE_URL: "" },
  });
  if (result.status !== 0) throw new Error(`release.ts ${step} failed:\n${result.stderr}`);
  return result;
}

beforeAll(() => {
  release("build");
  manifest = JSON.parse(readFileSync(join(dirs.build, BUILD_MANIFEST), "utf8")) as BuildManifest;
  release("pack");
}, 600_000);

afterAll(() => {
  for (const child of children) {
    if (child.exitCode === null && child.pid) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {}
    }
  }
  rmSync(root, { recursive: true, force: true });
});

async function extract(target: (typeof allTargets)[number]): Promise<string> {
  const binary = await archiveBinary(join(dirs.assets, archiveName(version, target)));
  const path = join(root, "extracted", target, "crabbox");
  mkdirSync(join(root, "extracted", target), { recursive: true });
  writeFileSync(path, binary.data);
  chmodSync(path, binary.mode);
  return path;
}

test("pack writes every asset, sha256sum -c accepts them, and a second pack gives the same sums", () => {
  const first = readFileSync(join(dirs.assets, "SHA256SUMS"), "utf8");
  const names = first
    .trim()
    .split("\n")
    .map((line) => line.split("  ")[1]);
  expect(names).toEqual([
    ...allTargets.map((target) => archiveName(version, target)).sort(),
    runnerZipName(version),
  ]);
  expect(spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: dirs.assets }).status).toBe(0);
  release("pack");
  expect(readFileSync(join(dirs.assets, "SHA256SUMS"), "utf8")).toBe(first);
  const verified = release("verify");
  expect(verified.stderr).toContain("is consistent");
});

test("ruby -c accepts the generated Homebrew formula", () => {
  const formula = join(dirs.formula, "crabbox.rb");
  const check = spawnSync("ruby", ["-c", formula], { encoding: "utf8" });
  expect(check.error).toBeUndefined();
  expect(check.stdout.trim()).toBe("Syntax OK");
  const text = readFileSync(formula, "utf8");
  expect(text.match(/^\s+url "/gm)).toHaveLength(5);
  expect(text).toContain(`version "${version}"`);
});

test("the darwin binaries in the archives have valid code signatures; a changed byte is caught", async () => {
  for (const target of ["darwin-arm64", "darwin-x64"] as const) {
    const binary = await archiveBinary(join(dirs.assets, archiveName(version, target)));
    const report = verifyMachO(binary.data);
    expect(report.ok, describeReport(target, report).join("\n")).toBe(true);
    expect(report.slices[0]?.arch).toBe(target === "darwin-arm64" ? "arm64" : "x86_64");
    const tampered = new Uint8Array(binary.data);
    const page = Math.floor(tampered.length / 2 / 4096) * 4096;
    tampered[page] = ((tampered[page] as number) + 1) & 0xff;
    expect(verifyMachO(tampered).ok).toBe(false);
  }
});

test("the linux-x64 binary from its archive prints its version and runs a command on its own emulator", async () => {
  const crabbox = await extract("linux-x64");
  const versionLine = spawnSync(crabbox, ["--version"], { encoding: "utf8" }).stdout.trim();
  expect(versionLine).toBe(`crabbox ${version} (${manifest.commit})`);

  const sandbox = join(root, "sandbox");
  for (const sub of ["home", "config", "state", "repo"]) mkdirSync(join(sandbox, sub), { recursive: true });
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: join(sandbox, "home"),
    XDG_CONFIG_HOME: join(sandbox, "config"),
    XDG_STATE_HOME: join(sandbox, "state"),
    AWS_REGION: "us-east-1",
    NO_COLOR: "1",
  };
  const emulator = spawn(crabbox, ["emulator", "--port", "0", "--state-dir", join(sandbox, "emu")], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(emulator);
  const url = await new Promise<string>((done, fail) => {
    let seen = "";
    emulator.stdout?.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(seen);
      if (match) done(match[1] as string);
    });
    emulator.on("exit", (code) => fail(new Error(`emulator exited ${code}`)));
  });
  const repo = join(sandbox, "repo");
  spawnSync("git", ["init", "-q"], { cwd: repo });
  writeFileSync(join(repo, "hello.txt"), "hello from the archive\n");
  spawnSync("git", ["add", "."], { cwd: repo });
  const run = spawnSync(
    crabbox,
    [
      "run",
      "--provider",
      "aws-lambda-microvm",
      "--aws-lambda-microvm-image",
      "arn:aws:lambda:us-east-1:000000000000:microvm-image:crabbox-runner",
      "--",
      "cat",
      "hello.txt",
    ],
    { cwd: repo, encoding: "utf8", env: { ...env, AWS_ENDPOINT_URL_LAMBDA_MICROVMS: url }, timeout: 120_000 },
  );
  expect(run.stderr).toContain("emulator mode");
  expect(run.stdout).toBe("hello from the archive\n");
  expect(run.status).toBe(0);
  emulator.kill("SIGTERM");
  await new Promise((done) => (emulator.exitCode === null ? emulator.on("exit", done) : done(undefined)));
});

test.skipIf(!qemu)(
  "the linux-arm64 CLI and the runner in the image zip run under qemu-aarch64-static",
  async () => {
    const crabbox = await extract("linux-arm64");
    const cli = spawnSync(qemu, ["-L", "/usr/aarch64-linux-gnu", crabbox, "--version"], { encoding: "utf8" });
    expect(cli.stderr).toBe("");
    expect(cli.stdout.trim()).toBe(`crabbox ${version} (${manifest.commit})`);

    const zip = readZip(readFileSync(join(dirs.assets, runnerZipName(version))));
    expect(zip.map((entry) => entry.name).sort()).toEqual(["Dockerfile", "README.md", RUNNER_BINARY_NAME]);
    const runner = join(root, "extracted", RUNNER_BINARY_NAME);
    writeFileSync(
      runner,
      (zip.find((entry) => entry.name === RUNNER_BINARY_NAME) as { data: Uint8Array }).data,
    );
    chmodSync(runner, 0o755);
    const ran = spawnSync(qemu, ["-L", "/usr/aarch64-linux-gnu", runner, "--version"], { encoding: "utf8" });
    expect(ran.status).toBe(0);
    expect(ran.stdout).toContain(`crabbox-runner ${version}`);
  },
);
