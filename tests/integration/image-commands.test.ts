/**
 * `crabbox image build|list|status` from the compiled binary against the emulator (its S3 and its
 * image builds). Everything here needs no qemu: builds that succeed need an arm64 runner, so the
 * successful build → run → stop flow is tests/platform/release-image-flow.test.ts; here a build
 * fails on purpose and must say why, after the upload and the create really happened.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeZip } from "../../src/image/zip.ts";
import { RUNNER_IMAGE, startEmulator, stopAllEmulators, type TestEmulator } from "../support/emulator.ts";
import { type Home, home, requireBinary } from "./cli-harness.ts";

setDefaultTimeout(60_000);

let emu: TestEmulator;
let h: Home;
const ROLE = "arn:aws:iam::000000000000:role/build";
/** `image build` into bucket bkt, up to the artifact's path. */
const BUILD_TO_BKT = ["image", "build", "--bucket", "bkt", "--build-role-arn", ROLE, "--artifact"];
/** `image build` of the broken-runner image (its artifact comes after). */
const BROKEN_BUILD = [
  "image",
  "build",
  "--name",
  "broken-runner",
  "--bucket",
  "artifacts",
  "--key",
  "x/broken.zip",
  "--build-role-arn",
  ROLE,
];

beforeAll(async () => {
  requireBinary();
  emu = await startEmulator({ binary: "dist" });
  h = home();
});
afterAll(async () => {
  await stopAllEmulators();
  h.cleanup();
});

function crabbox(args: string[]) {
  return h.run(args, { env: { AWS_ENDPOINT_URL_LAMBDA_MICROVMS: emu.url, AWS_REGION: "us-east-1" } });
}

function artifact(name: string, files: Record<string, string>): string {
  const members = Object.entries(files).map(([member, text]) => ({
    name: member,
    data: new TextEncoder().encode(text),
    mode: 0o644,
  }));
  const path = join(h.root, name);
  writeFileSync(path, writeZip(members));
  return path;
}

test("image list and status show the emulator's pre-registered runner image", async () => {
  const list = await crabbox(["image", "list"]);
  expect(list.code).toBe(0);
  expect(list.stdout).toMatch(/^NAME +STATE +ACTIVE +ARN$/m);
  expect(list.stdout).toContain(`crabbox-runner  CREATED  1.0     ${RUNNER_IMAGE()}`);

  const status = await crabbox(["image", "status", "crabbox-runner", "--json"]);
  expect(status.code).toBe(0);
  const parsed = JSON.parse(status.stdout);
  expect(parsed).toMatchObject({ name: "crabbox-runner", imageArn: RUNNER_IMAGE(), state: "CREATED" });
  expect(parsed.versions).toEqual([
    expect.objectContaining({ imageVersion: "1.0", state: "SUCCESSFUL", status: "ACTIVE", runnable: true }),
  ]);
});

test("image status of an unknown image is an AWS not-found error", async () => {
  const status = await crabbox(["image", "status", "no-such-image"]);
  expect(status.code).toBe(1);
  expect(status.stderr).toContain("ResourceNotFoundException");
});

test("flags are checked before anything is packaged or uploaded", async () => {
  const cases: [string[], string][] = [
    [["image", "build", "--build-role-arn", ROLE], "--bucket is required"],
    [["image", "build", "--bucket", "bkt"], "--build-role-arn is required"],
    [["image", "build", "--bucket", "s3://bkt", "--build-role-arn", ROLE], "invalid S3 bucket name"],
    [["image", "build", "--bucket", "bkt", "--build-role-arn", "role"], "invalid --build-role-arn"],
    [
      ["image", "build", "--bucket", "bkt", "--build-role-arn", ROLE, "--memory", "3000"],
      "is not a MicroVM size",
    ],
    [
      ["image", "build", "--bucket", "bkt", "--build-role-arn", ROLE, "--name", "bad name!"],
      "invalid image name",
    ],
  ];
  const before = emu.records().length;
  for (const [args, message] of cases) {
    const result = await crabbox([...args, "--artifact", join(h.root, "missing.zip")]);
    expect(result.code, args.join(" ")).toBe(2);
    expect(result.stderr, args.join(" ")).toContain(message);
  }
  expect(emu.records().length).toBe(before);
});

test("an artifact without a Dockerfile is refused before the upload", async () => {
  const zip = artifact("no-dockerfile.zip", { "README.md": "hi\n" });
  const before = emu.records().length;
  const result = await crabbox([...BUILD_TO_BKT, zip]);
  expect(result.code).toBe(2);
  expect(result.stderr).toContain("has no Dockerfile at its root");
  expect(emu.records().length).toBe(before);
  const notZip = h.write(join(h.root, "not.zip"), "plain text");
  const again = await crabbox([...BUILD_TO_BKT, notZip]);
  expect(again.code).toBe(2);
  expect(again.stderr).toContain("is not a zip archive");
});

test("build uploads, creates the image, waits, and reports a failed build with its reason and a hint", async () => {
  const zip = artifact("broken.zip", {
    Dockerfile: 'FROM public.ecr.aws/lambda/microvms:al2023-minimal\nCMD ["/opt/missing"]\n',
  });
  const result = await crabbox([...BROKEN_BUILD, "--artifact", zip, "--wait", "--memory", "4096"]);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain("uploaded s3://artifacts/x/broken.zip");
  expect(result.stderr).toContain(
    "creating image arn:aws:lambda:us-east-1:000000000000:microvm-image:broken-runner, version 1.0",
  );
  expect(result.stderr).toMatch(
    /error: image .*broken-runner version 1\.0 failed to build: CONTAINER_BUILD_FAILED/,
  );
  expect(result.stderr).toContain("hint: the Dockerfile did not build");
  expect(result.stdout).toBe("");
  const ops = emu.records().map((record) => record.op);
  expect(ops).toEqual(expect.arrayContaining(["PutObject", "CreateMicrovmImage", "GetMicrovmImageVersion"]));

  // The same name again: a new version through UpdateMicrovmImage; the same bytes are not re-uploaded.
  const puts = emu.records().filter((record) => record.op === "PutObject").length;
  const again = await crabbox([...BROKEN_BUILD, "--artifact", zip, "--json"]);
  expect(again.code).toBe(0);
  const out = JSON.parse(again.stdout);
  expect(out).toMatchObject({
    operation: "update",
    imageArn: "arn:aws:lambda:us-east-1:000000000000:microvm-image:broken-runner",
    imageVersion: "2.0",
    config: null,
    artifact: { uri: "s3://artifacts/x/broken.zip", uploaded: false, source: "flag" },
  });
  expect(emu.records().filter((record) => record.op === "PutObject").length).toBe(puts);
  expect(emu.records().some((record) => record.op === "UpdateMicrovmImage")).toBe(true);
});
