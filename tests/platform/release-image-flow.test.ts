/**
 * `crabbox image build` as a user runs it from a checkout, against the emulator's S3 and image
 * builds: it packages the runner zip itself (the linux-arm64 runner + Dockerfile), uploads it,
 * creates the image, waits until the version is SUCCESSFUL and ACTIVE and prints the config; then
 * a lease on that new version — its own arm64 runner under qemu-aarch64-static, not the host runner
 * — serves `crabbox run`, and `crabbox stop` ends it.
 * Needs qemu-user-static and libc6-arm64-cross on a non-arm64 host.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Home, home, requireBinary } from "../integration/cli-harness.ts";
import { repoRoot, startEmulator, stopAllEmulators, type TestEmulator } from "../support/emulator.ts";

// Packaging compiles a 110 MB arm64 runner; the build smoke-boots it under qemu-user.
setDefaultTimeout(300_000);

const qemu = spawnSync("sh", ["-c", "command -v qemu-aarch64-static"], { encoding: "utf8" }).stdout.trim();
const native = process.arch === "arm64";
let emu: TestEmulator;
let h: Home;

beforeAll(async () => {
  requireBinary();
  emu = await startEmulator({ binary: "dist" });
  h = home();
});
afterAll(async () => {
  await stopAllEmulators();
  h.cleanup();
});

const env = () => ({ AWS_ENDPOINT_URL_LAMBDA_MICROVMS: emu.url, AWS_REGION: "us-east-1" });

test.skipIf(!qemu && !native)("image build → wait → run on the new version → stop", async () => {
  // From source, so the command packages the runner from this checkout (no --artifact).
  const built = await h.run(
    [
      "image",
      "build",
      "--name",
      "flow-runner",
      "--bucket",
      "crabbox-artifacts",
      "--build-role-arn",
      "arn:aws:iam::000000000000:role/MicrovmBuildRole",
      "--memory",
      "2048",
      "--wait",
    ],
    { env: env(), command: [process.execPath, join(repoRoot, "src", "cli.ts")] },
  );
  expect(built.stderr).toContain("packaging the runner image zip from this checkout");
  expect(built.stderr).toMatch(/uploaded s3:\/\/crabbox-artifacts\/crabbox\/crabbox-lambda-microvm-.*\.zip/);
  expect(built.stderr).toContain("version 1.0 SUCCESSFUL ACTIVE");
  expect(built.code).toBe(0);
  const arn = "arn:aws:lambda:us-east-1:000000000000:microvm-image:flow-runner";
  expect(built.stdout).toBe(`awsLambdaMicroVM:\n  image: ${arn}\n  imageVersion: "1.0"\n`);

  const status = await h.run(["image", "status", arn, "--json"], { env: env() });
  expect(JSON.parse(status.stdout).versions).toEqual([
    expect.objectContaining({ imageVersion: "1.0", runnable: true }),
  ]);

  // The printed config, used as the user config file.
  h.write(h.userFile, built.stdout);
  writeFileSync(join(h.repo, "probe.txt"), "synced\n");
  spawnSync("git", ["init", "-q"], { cwd: h.repo });
  // Walk up from the remote command to the runner: on this host it is qemu-aarch64-static.
  const probe =
    "cat probe.txt; p=$$; while [ \"$p\" -gt 1 ]; do readlink /proc/$p/exe; p=$(awk '{print $4}' /proc/$p/stat); done";
  const run = await h.run(
    ["run", "--provider", "aws-lambda-microvm", "--keep", "--slug", "flow", "--", "sh", "-c", probe],
    { env: env() },
  );
  expect(run.code).toBe(0);
  expect(run.stderr).toContain("image_version=1.0");
  expect(run.stdout.startsWith("synced\n")).toBe(true);
  if (!native) expect(run.stdout).toMatch(/qemu-aarch64/);

  const stop = await h.run(["stop", "flow"], { env: env() });
  expect(stop.code).toBe(0);
  const after = await h.run(["status", "flow", "--provider", "aws-lambda-microvm"], { env: env() });
  expect(after.code).toBe(4);
});
