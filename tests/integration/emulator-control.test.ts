/**
 * The emulator's control plane, driven by the unmodified AWS SDK: every MicroVM and image
 * operation, each error class with AWS's status and wording, the state table (reference §2.6),
 * clientToken replay, pagination, S3 uploads (aws-chunked) feeding an image build.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Readable } from "node:stream";
import { crc32 } from "node:zlib";
import {
  AccessDeniedException,
  ConflictException,
  CreateMicrovmAuthTokenCommand,
  CreateMicrovmImageCommand,
  CreateMicrovmShellAuthTokenCommand,
  DeleteMicrovmImageCommand,
  DeleteMicrovmImageVersionCommand,
  GetMicrovmCommand,
  GetMicrovmImageBuildCommand,
  GetMicrovmImageCommand,
  GetMicrovmImageVersionCommand,
  type LambdaMicrovmsClient,
  ListManagedMicrovmImagesCommand,
  ListManagedMicrovmImageVersionsCommand,
  ListMicrovmImageBuildsCommand,
  ListMicrovmImagesCommand,
  ListMicrovmImageVersionsCommand,
  ListMicrovmsCommand,
  ListTagsCommand,
  paginateListMicrovmImages,
  ResourceNotFoundException,
  ResumeMicrovmCommand,
  RunMicrovmCommand,
  ServiceQuotaExceededException,
  SuspendMicrovmCommand,
  TagResourceCommand,
  TerminateMicrovmCommand,
  UntagResourceCommand,
  UpdateMicrovmImageCommand,
  UpdateMicrovmImageVersionCommand,
  ValidationException,
} from "@aws-sdk/client-lambda-microvms";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { writeZip } from "../../src/image/zip.ts";
import {
  RUNNER_IMAGE,
  runMicrovm,
  startEmulator,
  stopAllEmulators,
  type TestEmulator,
  waitForState,
} from "../support/emulator.ts";

// Real processes and scaled lifecycles: more than bun test's 5 s default when run directly.
setDefaultTimeout(30_000);

let emu: TestEmulator;
let client: LambdaMicrovmsClient;
const MANAGED = "arn:aws:lambda:us-east-1:aws:microvm-image:al2023-1";
const ROLE = "arn:aws:iam::000000000000:role/build";

beforeAll(async () => {
  emu = await startEmulator({ isolation: "none", testApi: true, timeScale: 0.05 });
  client = emu.client();
});
afterAll(async () => {
  await stopAllEmulators();
  expect(emu.survivors()).toEqual([]);
});

async function setFaults(faults: string[]): Promise<void> {
  const response = await fetch(`${emu.url}/_emulator/faults`, {
    method: "POST",
    body: JSON.stringify({ faults }),
  });
  expect(response.status).toBe(200);
}

async function rejection(
  promise: Promise<unknown>,
): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the call to fail");
}

const enc = new TextEncoder();
const artifact = (files: Record<string, string>) =>
  writeZip(Object.entries(files).map(([name, text]) => ({ name, data: enc.encode(text), mode: 0o755 })));
const DOCKERFILE = `FROM public.ecr.aws/lambda/microvms:al2023-minimal
COPY runner /opt/crabbox/runner
EXPOSE 8080
CMD ["/opt/crabbox/runner", "--listen", ":8080"]
`;

describe("MicroVM operations", () => {
  test("Run, Get, List, token, Suspend, Resume, Terminate on the pre-registered image", async () => {
    const run = await client.send(
      new RunMicrovmCommand({
        imageIdentifier: RUNNER_IMAGE(),
        idlePolicy: { maxIdleDurationSeconds: 600, suspendedDurationSeconds: 600, autoResumeEnabled: true },
        runHookPayload: "hello",
      }),
    );
    expect(run.state).toBe("PENDING");
    expect(run.microvmId).toMatch(/^microvm-[0-9a-f-]{36}$/);
    // A bare host, no scheme, and its label is not the microvmId (as AWS does).
    expect(run.endpoint).toMatch(/^[0-9a-f-]{36}\.lambda-microvm\.us-east-1\.on\.aws$/);
    expect(run.endpoint).not.toContain(run.microvmId?.slice("microvm-".length) ?? "x");
    expect(run.startedAt).toBeInstanceOf(Date);
    expect(run.imageVersion).toBe("1.0");
    expect(run.maximumDurationInSeconds).toBe(28800);
    const id = run.microvmId as string;
    await waitForState(emu, id, "RUNNING");
    const got = await client.send(new GetMicrovmCommand({ microvmIdentifier: id }));
    expect(got.idlePolicy).toEqual({
      maxIdleDurationSeconds: 600,
      suspendedDurationSeconds: 600,
      autoResumeEnabled: true,
    });
    expect(got.stateReason).toBeUndefined();
    expect(got.terminatedAt).toBeUndefined();
    expect(Object.keys(got)).not.toContain("runHookPayload");

    const list = await client.send(
      new ListMicrovmsCommand({ imageIdentifier: "crabbox-runner", imageVersion: "1.0" }),
    );
    expect(list.items?.map((item) => item.microvmId)).toContain(id);

    const token = await client.send(
      new CreateMicrovmAuthTokenCommand({
        microvmIdentifier: id,
        expirationInMinutes: 1,
        allowedPorts: [{ port: 8080 }],
      }),
    );
    const jwe = token.authToken?.["X-aws-proxy-auth"] as string;
    const segments = jwe.split(".");
    expect(segments).toHaveLength(5);
    expect(segments[1]).toBe("");
    expect(JSON.parse(Buffer.from(segments[0] as string, "base64url").toString())).toMatchObject({
      alg: "dir",
      enc: "A256GCM",
    });

    await client.send(new SuspendMicrovmCommand({ microvmIdentifier: id }));
    await waitForState(emu, id, "SUSPENDED");
    await client.send(new SuspendMicrovmCommand({ microvmIdentifier: id })); // no-op, idempotent
    await client.send(new ResumeMicrovmCommand({ microvmIdentifier: id }));
    await waitForState(emu, id, "RUNNING");
    await client.send(new ResumeMicrovmCommand({ microvmIdentifier: id })); // no-op on RUNNING

    await client.send(new TerminateMicrovmCommand({ microvmIdentifier: id }));
    expect(["TERMINATING", "TERMINATED"]).toContain(
      (await client.send(new GetMicrovmCommand({ microvmIdentifier: id }))).state ?? "",
    );
    await waitForState(emu, id, "TERMINATED");
    const done = await client.send(new GetMicrovmCommand({ microvmIdentifier: id }));
    expect(done.terminatedAt).toBeInstanceOf(Date);
    expect(done.stateReason).toContain("TerminateMicrovm");
    await client.send(new TerminateMicrovmCommand({ microvmIdentifier: id })); // idempotent

    const hooks = emu.records().filter((record) => record.plane === "hook" && record.microvmId === id);
    expect(hooks.map((record) => record.op)).toEqual(["run", "suspend", "resume", "terminate"]);
  });

  test("state table: what each call does in each state", async () => {
    // Hold the next VM in PENDING: its boot is delayed.
    await setFaults(["slow-boot-ms=3000,count=1"]);
    const run = await client.send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE() }));
    const id = run.microvmId as string;
    const pending = (await client.send(new GetMicrovmCommand({ microvmIdentifier: id }))).state;
    expect(pending).toBe("PENDING");
    expect(await rejection(client.send(new SuspendMicrovmCommand({ microvmIdentifier: id })))).toBeInstanceOf(
      ConflictException,
    );
    expect(await rejection(client.send(new ResumeMicrovmCommand({ microvmIdentifier: id })))).toBeInstanceOf(
      ConflictException,
    );
    // A token may be minted while PENDING (the CLI does this before its readiness probe).
    await client.send(
      new CreateMicrovmAuthTokenCommand({
        microvmIdentifier: id,
        expirationInMinutes: 1,
        allowedPorts: [{ port: 8080 }],
      }),
    );
    await client.send(new TerminateMicrovmCommand({ microvmIdentifier: id }));
    await waitForState(emu, id, "TERMINATED");
    for (const call of [
      new SuspendMicrovmCommand({ microvmIdentifier: id }),
      new ResumeMicrovmCommand({ microvmIdentifier: id }),
      new CreateMicrovmAuthTokenCommand({
        microvmIdentifier: id,
        expirationInMinutes: 1,
        allowedPorts: [{ port: 8080 }],
      }),
    ]) {
      // biome-ignore lint/suspicious/noExplicitAny: three different command types share one send.
      const error = await rejection(client.send(call as any));
      expect(error).toBeInstanceOf(ConflictException);
      expect(error.$metadata?.httpStatusCode).toBe(409);
    }
    const unknown = "microvm-00000000-0000-0000-0000-000000000000";
    for (const call of [
      new GetMicrovmCommand({ microvmIdentifier: unknown }),
      new TerminateMicrovmCommand({ microvmIdentifier: unknown }),
      new SuspendMicrovmCommand({ microvmIdentifier: unknown }),
      new ResumeMicrovmCommand({ microvmIdentifier: unknown }),
    ]) {
      // biome-ignore lint/suspicious/noExplicitAny: four different command types share one send.
      const error = await rejection(client.send(call as any));
      expect(error).toBeInstanceOf(ResourceNotFoundException);
      expect(error.message).toBe(`MicroVM not found for MicroVMID: ${unknown}`);
    }
  });

  test("a runner that dies while booting terminates the VM with a reason", async () => {
    await setFaults(["runner-crash@RunMicrovm,count=1"]);
    const run = await client.send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE() }));
    await waitForState(emu, run.microvmId as string, "TERMINATED");
    const view = await client.send(new GetMicrovmCommand({ microvmIdentifier: run.microvmId }));
    expect(view.stateReason).toBe("MicroVM application was killed by SIGKILL.");
    expect(
      emu.records().some((record) => record.plane === "hook" && record.microvmId === run.microvmId),
    ).toBe(false);
  });

  test("state-lag-ms and endpoint faults shape GetMicrovm answers", async () => {
    const vm = await runMicrovm(emu);
    await setFaults([
      "state-lag-ms=60000@GetMicrovm,count=1",
      "endpoint=evil.example.com@GetMicrovm,count=1",
    ]);
    const lagged = await client.send(new GetMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    expect(lagged.state).toBe("PENDING");
    expect(lagged.endpoint).toBe("evil.example.com");
    const fresh = await client.send(new GetMicrovmCommand({ microvmIdentifier: vm.microvmId }));
    expect(fresh.state).toBe("RUNNING");
    expect(fresh.endpoint).toBe(vm.endpoint);
    await client.send(new TerminateMicrovmCommand({ microvmIdentifier: vm.microvmId }));
  });

  test("a shell token needs SHELL_INGRESS", async () => {
    const vm = await runMicrovm(emu);
    const error = await rejection(
      client.send(
        new CreateMicrovmShellAuthTokenCommand({ microvmIdentifier: vm.microvmId, expirationInMinutes: 5 }),
      ),
    );
    expect(error).toBeInstanceOf(ValidationException);
    expect(error.message).toBe(
      "Shell access requires SHELL_INGRESS network connector to be configured on the MicroVM.",
    );
    await client.send(new TerminateMicrovmCommand({ microvmIdentifier: vm.microvmId }));
  });
});

describe("errors", () => {
  test("ValidationException with AWS's wording", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ imageIdentifier: "crabbox-runner" }, "Malformed ARN - doesn't start with 'arn:'"],
      [
        { imageIdentifier: RUNNER_IMAGE(), runHookPayload: "x".repeat(4097) },
        "1 validation error detected: Value at 'runHookPayload' failed to satisfy constraint: Member must have length less than or equal to 4096",
      ],
      [
        {
          imageIdentifier: RUNNER_IMAGE(),
          idlePolicy: { maxIdleDurationSeconds: 30, suspendedDurationSeconds: 0, autoResumeEnabled: true },
        },
        "1 validation error detected: Value '30' at 'idlePolicy.maxIdleDurationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60",
      ],
      [
        { imageIdentifier: RUNNER_IMAGE(), maximumDurationInSeconds: 28801 },
        "1 validation error detected: Value '28801' at 'maximumDurationInSeconds' failed to satisfy constraint: Member must have value less than or equal to 28800",
      ],
      [
        { imageIdentifier: RUNNER_IMAGE(), ingressNetworkConnectors: ["ALL_INGRESS"] },
        "Malformed network connector ARN",
      ],
    ];
    for (const [input, message] of cases) {
      // biome-ignore lint/suspicious/noExplicitAny: deliberately invalid inputs.
      const error = await rejection(client.send(new RunMicrovmCommand(input as any)));
      expect(error).toBeInstanceOf(ValidationException);
      expect(error.$metadata?.httpStatusCode).toBe(400);
      expect(error.message).toBe(message);
    }
    const list = await rejection(client.send(new ListMicrovmsCommand({ maxResults: 51 })));
    expect(list).toBeInstanceOf(ValidationException);
  });

  test("ResourceNotFound for an unknown image", async () => {
    const arn = "arn:aws:lambda:us-east-1:000000000000:microvm-image:nope";
    const error = await rejection(client.send(new RunMicrovmCommand({ imageIdentifier: arn })));
    expect(error).toBeInstanceOf(ResourceNotFoundException);
    expect(error.$metadata?.httpStatusCode).toBe(404);
    expect(error.message).toBe(`MicroVMImage not found for MicroVMImageID: ${arn}`);
  });

  test("ThrottlingException and InternalServerException are retried by the SDK", async () => {
    await setFaults(["throttle@ListMicrovms,count=1", "internal@ListMicrovmImages,count=2"]);
    const before = emu.records().length;
    const listed = await client.send(new ListMicrovmsCommand({}));
    expect(listed.$metadata.attempts).toBe(2);
    const images = await client.send(new ListMicrovmImagesCommand({}));
    expect(images.$metadata.attempts).toBe(3);
    const calls = emu.records().slice(before);
    expect(calls.filter((record) => record.op === "ListMicrovms").map((record) => record.status)).toEqual([
      429, 200,
    ]);
    expect(
      calls.filter((record) => record.op === "ListMicrovmImages").map((record) => record.status),
    ).toEqual([500, 500, 200]);
    await setFaults([]);
  });

  test("AccessDenied with no message outside the supported Regions", async () => {
    const frankfurt = emu.client("eu-central-1");
    const error = await rejection(frankfurt.send(new ListMicrovmsCommand({})));
    expect(error).toBeInstanceOf(AccessDeniedException);
    expect(error.$metadata?.httpStatusCode).toBe(403);
    expect(error.message).toBe("UnknownError");
    // Every supported Region is served, each with its own crabbox-runner.
    for (const region of ["us-east-2", "us-west-2", "eu-west-1", "ap-northeast-1"]) {
      const image = await emu
        .client(region)
        .send(new GetMicrovmImageCommand({ imageIdentifier: "crabbox-runner" }));
      expect(image.imageArn).toBe(RUNNER_IMAGE(region));
    }
  });

  test("ServiceQuotaExceeded is HTTP 402", async () => {
    const full = await startEmulator({ isolation: "none", maxVms: 0 });
    const error = await rejection(
      full.client().send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE() })),
    );
    expect(error).toBeInstanceOf(ServiceQuotaExceededException);
    expect(error.$metadata?.httpStatusCode).toBe(402);
    expect(await full.stop()).toBe(0);
  });
});

describe("idempotency and pagination", () => {
  test("clientToken: same request, same VM; different request, ConflictException", async () => {
    const clientToken = crypto.randomUUID();
    const first = await client.send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE(), clientToken }));
    const again = await client.send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE(), clientToken }));
    expect(again.microvmId).toBe(first.microvmId);
    const error = await rejection(
      client.send(
        new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE(), clientToken, maximumDurationInSeconds: 60 }),
      ),
    );
    expect(error).toBeInstanceOf(ConflictException);
    await client.send(new TerminateMicrovmCommand({ microvmIdentifier: first.microvmId }));
    await waitForState(emu, first.microvmId as string, "TERMINATED");
    // The replay returns the current view of the original VM, even once it is gone.
    const later = await client.send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE(), clientToken }));
    expect(later.microvmId).toBe(first.microvmId);
    expect(later.state).toBe("TERMINATED");
  });

  test("maxResults and nextToken page through lists", async () => {
    for (const name of ["page-a", "page-b", "page-c"]) {
      await client.send(
        new CreateMicrovmImageCommand({
          name,
          baseImageArn: MANAGED,
          buildRoleArn: ROLE,
          codeArtifact: { uri: "s3://missing-bucket/none.zip" },
        }),
      );
    }
    const first = await client.send(new ListMicrovmImagesCommand({ maxResults: 2 }));
    expect(first.items).toHaveLength(2);
    expect(first.nextToken).toBeString();
    const names: string[] = [];
    for await (const page of paginateListMicrovmImages({ client, pageSize: 2 }, {})) {
      names.push(...(page.items ?? []).map((item) => item.name as string));
    }
    expect(names).toEqual(expect.arrayContaining(["crabbox-runner", "page-a", "page-b", "page-c"]));
    expect(new Set(names).size).toBe(names.length);
    const versions = await client.send(
      new ListManagedMicrovmImageVersionsCommand({ imageIdentifier: MANAGED, maxResults: 1 }),
    );
    expect(versions.items?.map((item) => item.imageVersion)).toEqual(["0"]);
    const rest = await client.send(
      new ListManagedMicrovmImageVersionsCommand({ imageIdentifier: MANAGED, nextToken: versions.nextToken }),
    );
    expect(rest.items?.map((item) => item.imageVersion)).toEqual(["1"]);
    expect(rest.nextToken).toBeUndefined();
    const bad = await rejection(client.send(new ListMicrovmImagesCommand({ nextToken: "garbage" })));
    expect(bad).toBeInstanceOf(ValidationException);
  });
});

describe("images and S3", () => {
  const s3 = () =>
    new S3Client({
      region: "us-east-1",
      endpoint: emu.url,
      forcePathStyle: true,
      credentials: { accessKeyId: "AKIDEMULATOR", secretAccessKey: "emulator" },
    });

  async function waitImage(name: string, states: string[]): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const image = await client.send(new GetMicrovmImageCommand({ imageIdentifier: name }));
      if (states.includes(image.state as string)) return image.state as string;
      await Bun.sleep(50);
    }
    throw new Error(`image ${name} never reached ${states.join("|")}`);
  }

  test("S3 PutObject (aws-chunked with a CRC32 trailer), HeadObject, GetObject", async () => {
    const body = "hello emulated s3";
    const put = await s3().send(
      new PutObjectCommand({
        Bucket: "artifacts",
        Key: "dir/hello.txt",
        Body: Readable.from([Buffer.from(body.slice(0, 5)), Buffer.from(body.slice(5))]),
        ContentLength: body.length,
      }),
    );
    expect(put.ETag).toMatch(/^"[0-9a-f]{32}"$/);
    const head = await s3().send(new HeadObjectCommand({ Bucket: "artifacts", Key: "dir/hello.txt" }));
    expect(head.ContentLength).toBe(body.length);
    const got = await s3().send(new GetObjectCommand({ Bucket: "artifacts", Key: "dir/hello.txt" }));
    expect(await got.Body?.transformToString()).toBe(body);
    expect(await Bun.file(`${emu.stateDir}/s3/artifacts/dir/hello.txt`).text()).toBe(body);
    const s3put = emu.records().find((record) => record.plane === "s3" && record.op === "PutObject");
    expect(s3put?.status).toBe(200);
  });

  test("a raw aws-chunked body with a wrong trailing checksum is refused (BadDigest)", async () => {
    const data = "0123456789";
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.from(data)) >>> 0);
    const chunked = (checksum: string) =>
      `5;chunk-signature=${"0".repeat(64)}\r\n01234\r\n5;chunk-signature=${"0".repeat(64)}\r\n56789\r\n0\r\nx-amz-checksum-crc32:${checksum}\r\n\r\n`;
    const send = (checksum: string, key: string) =>
      fetch(`${emu.url}/artifacts/${key}`, {
        method: "PUT",
        headers: {
          "content-encoding": "aws-chunked",
          "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
          "x-amz-decoded-content-length": String(data.length),
          "x-amz-trailer": "x-amz-checksum-crc32",
        },
        body: chunked(checksum),
      });
    expect((await send(crc.toString("base64"), "good.bin")).status).toBe(200);
    expect(await Bun.file(`${emu.stateDir}/s3/artifacts/good.bin`).text()).toBe(data);
    const bad = await send("AAAAAA==", "bad.bin");
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("<Code>BadDigest</Code>");
    const missing = await fetch(`${emu.url}/artifacts/bad.bin`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain("<Code>NoSuchKey</Code>");
  });

  test("S3 put then image create: the build reads the artifact and reports AWS's failure codes", async () => {
    // A runner that is not a linux-arm64 executable: the version FAILS, never the host runner.
    await s3().send(
      new PutObjectCommand({
        Bucket: "artifacts",
        Key: "shell-runner.zip",
        Body: artifact({ Dockerfile: DOCKERFILE, runner: "#!/bin/sh\necho not arm64\n" }),
      }),
    );
    const created = await client.send(
      new CreateMicrovmImageCommand({
        name: "shell-runner",
        baseImageArn: MANAGED,
        buildRoleArn: ROLE,
        codeArtifact: { uri: "s3://artifacts/shell-runner.zip" },
        tags: { team: "crabbox" },
      }),
    );
    expect(created.$metadata.httpStatusCode).toBe(201);
    expect(created.state).toBe("CREATING");
    expect(created.imageVersion).toBe("1.0");
    expect(created.imageArn).toBe("arn:aws:lambda:us-east-1:000000000000:microvm-image:shell-runner");
    expect(await waitImage("shell-runner", ["CREATE_FAILED", "CREATED"])).toBe("CREATE_FAILED");
    const version = await client.send(
      new GetMicrovmImageVersionCommand({ imageIdentifier: "shell-runner", imageVersion: "1.0" }),
    );
    expect(version.state).toBe("FAILED");
    expect(version.stateReason).toStartWith("CONTAINER_BUILD_FAILED:");
    expect(version.stateReason).toContain("not a linux-arm64 executable");
    const image = await client.send(new GetMicrovmImageCommand({ imageIdentifier: created.imageArn }));
    expect(image.latestFailedImageVersion).toBe("1.0");
    expect(image.latestActiveImageVersion).toBeUndefined();
    const runFailed = await rejection(
      client.send(new RunMicrovmCommand({ imageIdentifier: created.imageArn as string })),
    );
    expect(runFailed).toBeInstanceOf(ValidationException);

    const builds = await client.send(
      new ListMicrovmImageBuildsCommand({ imageIdentifier: "shell-runner", imageVersion: "1.0" }),
    );
    expect(builds.items?.map((build) => build.chipsetGeneration).sort()).toEqual(["3", "4"]);
    const build = await client.send(
      new GetMicrovmImageBuildCommand({
        imageIdentifier: "shell-runner",
        imageVersion: "1.0",
        buildId: builds.items?.[0]?.buildId,
      }),
    );
    expect(build.buildState).toBe("FAILED");

    // No Dockerfile, a missing key: the build codes AWS documents.
    await s3().send(
      new PutObjectCommand({
        Bucket: "artifacts",
        Key: "no-dockerfile.zip",
        Body: artifact({ runner: "x" }),
      }),
    );
    const update = await client.send(
      new UpdateMicrovmImageCommand({
        imageIdentifier: "shell-runner",
        baseImageArn: MANAGED,
        buildRoleArn: ROLE,
        codeArtifact: { uri: "s3://artifacts/no-dockerfile.zip" },
      }),
    );
    expect(update.imageVersion).toBe("2.0");
    expect(await waitImage("shell-runner", ["UPDATE_FAILED", "UPDATED"])).toBe("UPDATE_FAILED");
    const v2 = await client.send(
      new GetMicrovmImageVersionCommand({ imageIdentifier: "shell-runner", imageVersion: "2.0" }),
    );
    expect(v2.stateReason).toStartWith("ARCHIVE_DOCKERFILE_NOT_FOUND:");
    await client.send(
      new UpdateMicrovmImageCommand({
        imageIdentifier: "shell-runner",
        baseImageArn: MANAGED,
        buildRoleArn: ROLE,
        codeArtifact: { uri: "s3://artifacts/missing.zip" },
      }),
    );
    await waitImage("shell-runner", ["UPDATE_FAILED", "UPDATED"]);
    const v3 = await client.send(
      new GetMicrovmImageVersionCommand({ imageIdentifier: "shell-runner", imageVersion: "3.0" }),
    );
    expect(v3.stateReason).toStartWith("S3_NO_SUCH_KEY:");
    const versions = await client.send(
      new ListMicrovmImageVersionsCommand({ imageIdentifier: "shell-runner" }),
    );
    expect(versions.items?.map((item) => item.imageVersion)).toEqual(["1.0", "2.0", "3.0"]);

    // An existing name is a conflict; a run hook without the ready hook is invalid.
    const again = await rejection(
      client.send(
        new CreateMicrovmImageCommand({
          name: "shell-runner",
          baseImageArn: MANAGED,
          buildRoleArn: ROLE,
          codeArtifact: { uri: "s3://artifacts/shell-runner.zip" },
        }),
      ),
    );
    expect(again).toBeInstanceOf(ConflictException);
    const hooks = await rejection(
      client.send(
        new CreateMicrovmImageCommand({
          name: "bad-hooks",
          baseImageArn: MANAGED,
          buildRoleArn: ROLE,
          codeArtifact: { uri: "s3://artifacts/shell-runner.zip" },
          hooks: { port: 8080, microvmHooks: { run: "ENABLED" } },
        }),
      ),
    );
    expect(hooks).toBeInstanceOf(ValidationException);

    // Tags, version deletion (never the last one), image deletion.
    const arn = created.imageArn as string;
    await client.send(new TagResourceCommand({ Resource: arn, Tags: { stage: "test" } }));
    await client.send(new UntagResourceCommand({ Resource: arn, TagKeys: ["team"] }));
    expect((await client.send(new ListTagsCommand({ Resource: arn }))).Tags).toEqual({ stage: "test" });
    await client.send(
      new DeleteMicrovmImageVersionCommand({ imageIdentifier: "shell-runner", imageVersion: "3.0" }),
    );
    await client.send(
      new DeleteMicrovmImageVersionCommand({ imageIdentifier: "shell-runner", imageVersion: "2.0" }),
    );
    await Bun.sleep(100);
    const last = await rejection(
      client.send(
        new DeleteMicrovmImageVersionCommand({ imageIdentifier: "shell-runner", imageVersion: "1.0" }),
      ),
    );
    expect(last).toBeInstanceOf(ConflictException);
    const deleted = await client.send(new DeleteMicrovmImageCommand({ imageIdentifier: arn }));
    expect(deleted.state).toBe("DELETING");
    await Bun.sleep(100);
    expect(await rejection(client.send(new GetMicrovmImageCommand({ imageIdentifier: arn })))).toBeInstanceOf(
      ResourceNotFoundException,
    );
  });

  test("an arm64 runner this host cannot run fails the build with a reason, never the host runner", async () => {
    const noQemu = await startEmulator({ isolation: "none", env: { CRABBOX_EMULATOR_QEMU: "none" } });
    const elf = new Uint8Array(64);
    elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    new DataView(elf.buffer).setUint16(18, 183, true); // EM_AARCH64
    const zip = writeZip([
      { name: "Dockerfile", data: enc.encode(DOCKERFILE) },
      { name: "runner", data: elf, mode: 0o755 },
    ]);
    const path = `${noQemu.dir}/artifact.zip`;
    await Bun.write(path, zip);
    const other = noQemu.client();
    await other.send(
      new CreateMicrovmImageCommand({
        name: "arm64-runner",
        baseImageArn: MANAGED,
        buildRoleArn: ROLE,
        codeArtifact: { uri: `file://${path}` },
      }),
    );
    let state = "CREATING";
    for (let i = 0; i < 100 && state === "CREATING"; i++) {
      await Bun.sleep(50);
      state = (await other.send(new GetMicrovmImageCommand({ imageIdentifier: "arm64-runner" })))
        .state as string;
    }
    expect(state).toBe("CREATE_FAILED");
    const version = await other.send(
      new GetMicrovmImageVersionCommand({ imageIdentifier: "arm64-runner", imageVersion: "1.0" }),
    );
    expect(version.stateReason).toContain("install qemu-user-static and libc6-arm64-cross");
    expect(await noQemu.stop()).toBe(0);
  });

  test("the pre-registered image: versions, status, managed base image", async () => {
    const versions = await client.send(
      new ListMicrovmImageVersionsCommand({ imageIdentifier: RUNNER_IMAGE() }),
    );
    const v1 = versions.items?.[0];
    expect(v1).toMatchObject({ imageVersion: "1.0", state: "SUCCESSFUL", status: "ACTIVE" });
    expect(v1?.hooks?.port).toBe(8080);
    expect(v1?.hooks?.microvmHooks?.run).toBe("ENABLED");
    expect(v1?.hooks?.microvmImageHooks?.ready).toBe("ENABLED");
    await client.send(
      new UpdateMicrovmImageVersionCommand({
        imageIdentifier: "crabbox-runner",
        imageVersion: "1.0",
        status: "INACTIVE",
      }),
    );
    // Without an explicit version, Run resolves only ACTIVE versions.
    expect(
      await rejection(client.send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE() }))),
    ).toBeInstanceOf(ValidationException);
    await client.send(
      new UpdateMicrovmImageVersionCommand({
        imageIdentifier: "crabbox-runner",
        imageVersion: "1.0",
        status: "ACTIVE",
      }),
    );
    const managed = await client.send(new ListManagedMicrovmImagesCommand({}));
    expect(managed.items?.map((item) => item.imageArn)).toEqual([MANAGED]);
  });
});
