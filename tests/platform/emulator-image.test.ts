/**
 * A real image build in the emulator: the shipped runner artifact (runner/Dockerfile + the
 * linux-arm64 runner, packaged by scripts/package-runner.ts) is uploaded to the emulator's S3,
 * built through CREATING -> CREATED (its ready and validate hooks answered by the arm64 runner under
 * qemu-aarch64-static), and a MicroVM of that version runs the arm64 runner, not the host's.
 * Needs qemu-user-static and libc6-arm64-cross on a non-arm64 host.
 */

import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConflictException,
  CreateMicrovmAuthTokenCommand,
  CreateMicrovmImageCommand,
  GetMicrovmCommand,
  GetMicrovmImageCommand,
  GetMicrovmImageVersionCommand,
  RunMicrovmCommand,
  TerminateMicrovmCommand,
} from "@aws-sdk/client-lambda-microvms";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { compile } from "../../scripts/build.ts";
import { packageRunner } from "../../scripts/package-runner.ts";
import { runnerImageHooks } from "../../src/image/hooks.ts";
import { writeZip } from "../../src/image/zip.ts";
import {
  dataFetch,
  execIn,
  runMicrovm,
  startEmulator,
  stopAllEmulators,
  type TestEmulator,
  waitForState,
} from "../support/emulator.ts";

// Compiling and zipping a 110 MB runner, then booting it under qemu-user, takes a while.
setDefaultTimeout(180_000);

const dir = mkdtempSync(join(tmpdir(), "crabbox-emu-image-"));
let zip: string;
let hookApp: string;
let emu: TestEmulator;

beforeAll(async () => {
  zip = await packageRunner(join(dir, "crabbox-lambda-microvm.zip"));
  hookApp = join(dir, "hook-app");
  compile({ entry: "tests/fixtures/emulator/hook-app.ts", outfile: hookApp, target: "linux-arm64" });
  emu = await startEmulator({ testApi: true });
});
afterAll(async () => {
  await stopAllEmulators();
  rmSync(dir, { recursive: true, force: true });
});

async function waitImage(name: string): Promise<string> {
  for (let i = 0; i < 1200; i++) {
    const state = (await emu.client().send(new GetMicrovmImageCommand({ imageIdentifier: name })))
      .state as string;
    if (state !== "CREATING" && state !== "UPDATING") return state;
    await Bun.sleep(100);
  }
  throw new Error(`image ${name} is still building`);
}

test("a /run hook that answers 400 terminates the VM before any traffic is forwarded", async () => {
  const artifact = writeZip([
    {
      name: "Dockerfile",
      data: new TextEncoder().encode(
        'FROM public.ecr.aws/lambda/microvms:al2023-minimal\nCOPY hook-app /opt/app/hook-app\nCMD ["/opt/app/hook-app", "--listen", ":8080"]\n',
      ),
    },
    { name: "hook-app", data: readFileSync(hookApp), mode: 0o755 },
  ]);
  const path = join(dir, "hook-app.zip");
  await Bun.write(path, artifact);
  const created = await emu.client().send(
    new CreateMicrovmImageCommand({
      name: "hook-app",
      baseImageArn: "arn:aws:lambda:us-east-1:aws:microvm-image:al2023-1",
      buildRoleArn: "arn:aws:iam::000000000000:role/build",
      codeArtifact: { uri: `file://${path}` },
      hooks: { port: 8080, microvmHooks: { run: "ENABLED" }, microvmImageHooks: { ready: "ENABLED" } },
      environmentVariables: { RUN_HOOK_STATUS: "400" },
    }),
  );
  expect(await waitImage("hook-app")).toBe("CREATED");
  const run = await emu.client().send(new RunMicrovmCommand({ imageIdentifier: created.imageArn }));
  await waitForState(emu, run.microvmId as string, "TERMINATED", 60_000);
  const view = await emu.client().send(new GetMicrovmCommand({ microvmIdentifier: run.microvmId }));
  expect(view.stateReason).toBe(
    "Run lifecycle hook returned HTTP status 400. Please check your hook endpoint and application logs for more details.",
  );
  const token = await emu
    .client()
    .send(
      new CreateMicrovmAuthTokenCommand({
        microvmIdentifier: run.microvmId,
        expirationInMinutes: 1,
        allowedPorts: [{ port: 8080 }],
      }),
    )
    .catch((error: unknown) => error);
  expect(token).toBeInstanceOf(ConflictException);
  expect(
    emu.records().filter((record) => record.plane === "data" && record.microvmId === run.microvmId),
  ).toEqual([]);
});

test("the shipped artifact builds from S3 and its MicroVMs run the arm64 runner", async () => {
  const s3 = new S3Client({
    region: "us-east-1",
    endpoint: emu.url,
    forcePathStyle: true,
    credentials: { accessKeyId: "AKIDEMULATOR", secretAccessKey: "emulator" },
  });
  await s3.send(
    new PutObjectCommand({ Bucket: "images", Key: "crabbox/runner.zip", Body: readFileSync(zip) }),
  );
  const created = await emu.client().send(
    new CreateMicrovmImageCommand({
      name: "crabbox-runner-arm64",
      baseImageArn: "arn:aws:lambda:us-east-1:aws:microvm-image:al2023-1",
      buildRoleArn: "arn:aws:iam::000000000000:role/build",
      codeArtifact: { uri: "s3://images/crabbox/runner.zip" },
      hooks: runnerImageHooks(),
    }),
  );
  expect(created.state).toBe("CREATING");
  const state = await waitImage("crabbox-runner-arm64");
  const version = await emu
    .client()
    .send(
      new GetMicrovmImageVersionCommand({ imageIdentifier: "crabbox-runner-arm64", imageVersion: "1.0" }),
    );
  expect({ state, reason: version.stateReason }).toEqual({ state: "CREATED", reason: undefined });
  expect(version.state).toBe("SUCCESSFUL");

  const vm = await runMicrovm(emu, { imageIdentifier: created.imageArn });
  const health = await dataFetch(emu, vm, "/health");
  expect(health.status).toBe(200);
  const result = await execIn(
    emu,
    vm,
    "echo $AWS_LAMBDA_MICROVM_IMAGE_NAME $AWS_LAMBDA_MICROVM_IMAGE_VERSION",
  );
  expect(result.exit?.exitCode).toBe(0);
  expect(result.stdout).toBe("crabbox-runner-arm64 1.0\n");
  const inspect = (await (await fetch(`${emu.url}/_emulator/microvms/${vm.microvmId}`)).json()) as {
    processes: number[];
  };
  const commands = inspect.processes.map((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
    } catch {
      return "";
    }
  });
  expect(
    commands.some((command) => command.includes("qemu-aarch64") && command.includes("crabbox-runner")),
  ).toBe(true);
  await emu.client().send(new TerminateMicrovmCommand({ microvmIdentifier: vm.microvmId }));
  await waitForState(emu, vm.microvmId, "TERMINATED");
  expect(await emu.stop()).toBe(0);
  expect(emu.survivors()).toEqual([]);
});
