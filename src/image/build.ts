import { formatDuration } from "../core/duration.ts";
import { CrabboxError, ExitCode, usageError } from "../core/errors.ts";
import { isNotFound } from "../providers/aws-lambda-microvm/control-plane.ts";
import { type Artifact, resolveArtifact } from "./artifact.ts";
import type { ImageClients } from "./clients.ts";
import { runnerImageHooks } from "./hooks.ts";
import { defaultKey, type UploadResult, uploadArtifact } from "./upload.ts";

/**
 * `crabbox image build`: the upstream five manual steps (zip, S3 upload, create image, wait, copy
 * the ARN into config) as one call. The image gets the runner's hook configuration from the same
 * function the emulator's pre-registered image uses, so both boot the runner the same way.
 */

export const DEFAULT_IMAGE_NAME = "crabbox-runner";
/** Memory sizes a MicroVM image can ask for (baseline GiB 0.5–8). */
export const MEMORY_SIZES_MIB = [512, 1024, 2048, 4096, 8192] as const;
const NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
const ROLE_PATTERN = /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/[\w+=,.@/-]+$/;
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function managedBaseImageArn(region: string): string {
  return `arn:aws:lambda:${region}:aws:microvm-image:al2023-1`;
}

export interface ImageBuildRequest {
  name: string;
  bucket: string;
  key?: string;
  buildRoleArn: string;
  baseImageArn?: string;
  memoryMiB?: number;
  artifact?: string;
  wait: boolean;
  waitTimeoutMs: number;
  /** CLI version, for the default artifact name and key. */
  version: string;
}

export interface ImageSettled {
  imageState: string;
  versionState: string;
  versionStatus: string;
  stateReason: string | undefined;
}

export interface ImageBuildResult extends ImageSettled {
  operation: "create" | "update";
  imageArn: string;
  imageVersion: string;
  artifact: { source: Artifact["source"]; path: string; sha256: string; bytes: number } & UploadResult;
  /** The config to use the image with; only when the version is runnable. */
  config: { awsLambdaMicroVM: { image: string; imageVersion: string } } | null;
}

export interface BuildReporter {
  info(line: string): void;
}

/** Checks the flags before anything is packaged or uploaded. */
export function validateBuildRequest(request: ImageBuildRequest): void {
  if (!NAME_PATTERN.test(request.name)) {
    throw usageError(
      `invalid image name ${JSON.stringify(request.name)}`,
      "use 1–64 letters, digits, - or _",
    );
  }
  if (!BUCKET_PATTERN.test(request.bucket)) {
    throw usageError(
      `invalid S3 bucket name ${JSON.stringify(request.bucket)}`,
      "--bucket takes a bucket name, not s3://…",
    );
  }
  if (request.key !== undefined && (request.key === "" || request.key.startsWith("/"))) {
    throw usageError(`invalid S3 key ${JSON.stringify(request.key)}`, "e.g. --key crabbox/runner.zip");
  }
  if (!ROLE_PATTERN.test(request.buildRoleArn)) {
    throw usageError(
      `invalid --build-role-arn ${JSON.stringify(request.buildRoleArn)}`,
      "use an IAM role ARN like arn:aws:iam::123456789012:role/MicrovmBuildRole (it must trust lambda.amazonaws.com)",
    );
  }
  if (
    request.memoryMiB !== undefined &&
    !(MEMORY_SIZES_MIB as readonly number[]).includes(request.memoryMiB)
  ) {
    throw usageError(
      `--memory ${request.memoryMiB} is not a MicroVM size`,
      `one of ${MEMORY_SIZES_MIB.join(", ")} (MiB)`,
    );
  }
}

/** Why a build failed, in words that say what to change (AWS's stateReason codes). */
export function buildFailureHint(reason: string | undefined): string {
  const code = /^([A-Z0-9_]+)/.exec(reason ?? "")?.[1] ?? "";
  switch (code) {
    case "S3_ACCESS_DENIED":
    case "S3_CROSS_REGION_ACCESS_DENIED":
      return "the build role must be able to s3:GetObject the artifact, and the bucket must be in the image's region";
    case "S3_NO_SUCH_KEY":
    case "S3_NO_SUCH_BUCKET":
      return "the artifact is not where the image points; rerun crabbox image build (it uploads first)";
    case "ARCHIVE_DOCKERFILE_NOT_FOUND":
    case "ARCHIVE_INVALID":
    case "S3_INVALID_OBJECT":
      return "the artifact must be a zip with a Dockerfile at its root (the runner zip from scripts/package-runner.ts or the release)";
    case "CONTAINER_BUILD_FAILED":
      return "the Dockerfile did not build; check the image's CloudWatch build logs (the build role must be able to write them)";
    case "DISK_STORAGE_FULL":
      return "the image is larger than the build disk; trim what the Dockerfile installs";
    default:
      return "check `crabbox image status <name>` and the image's CloudWatch build logs";
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((done, fail) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        fail(signal.reason);
      },
      { once: true },
    );
  });

export interface WaitOptions {
  timeoutMs: number;
  pollMs: number;
  report: BuildReporter;
  signal?: AbortSignal;
  now?: () => number;
}

/**
 * Polls until the image is CREATED/UPDATED and the version SUCCESSFUL and ACTIVE (runnable), or the
 * build failed. Progress goes to the reporter when a state changes and every 30 s otherwise. A
 * successful but INACTIVE version is activated: a fresh build that cannot be run helps nobody.
 */
export async function waitForImage(
  clients: ImageClients,
  imageArn: string,
  imageVersion: string,
  options: WaitOptions,
): Promise<ImageSettled> {
  const sdk = await import("@aws-sdk/client-lambda-microvms");
  const now = options.now ?? Date.now;
  const started = now();
  let last = "";
  let lastReport = started;
  while (true) {
    const image = await clients.call("GetMicrovmImage", imageArn, () =>
      clients.microvms.send(new sdk.GetMicrovmImageCommand({ imageIdentifier: imageArn })),
    );
    const version = await clients.call("GetMicrovmImageVersion", `${imageArn}:${imageVersion}`, () =>
      clients.microvms.send(
        new sdk.GetMicrovmImageVersionCommand({ imageIdentifier: imageArn, imageVersion }),
      ),
    );
    const settled: ImageSettled = {
      imageState: image.state ?? "UNKNOWN",
      versionState: version.state ?? "UNKNOWN",
      versionStatus: version.status ?? "UNKNOWN",
      stateReason: version.stateReason || undefined,
    };
    const line = `image ${settled.imageState}, version ${imageVersion} ${settled.versionState}${settled.versionState === "SUCCESSFUL" ? ` ${settled.versionStatus}` : ""}`;
    const elapsed = now() - started;
    if (line !== last || now() - lastReport >= 30_000) {
      options.report.info(`${line} (${formatDuration(elapsed)})`);
      last = line;
      lastReport = now();
    }
    if (settled.versionState === "FAILED" || /FAILED$/.test(settled.imageState)) return settled;
    if (settled.versionState === "SUCCESSFUL" && settled.versionStatus === "INACTIVE") {
      options.report.info(`activating version ${imageVersion}`);
      await clients.call("UpdateMicrovmImageVersion", `${imageArn}:${imageVersion}`, () =>
        clients.microvms.send(
          new sdk.UpdateMicrovmImageVersionCommand({
            imageIdentifier: imageArn,
            imageVersion,
            status: "ACTIVE",
          }),
        ),
      );
      continue;
    }
    if (isRunnable(settled)) return settled;
    if (elapsed >= options.timeoutMs) {
      throw new CrabboxError(
        `timed out after ${formatDuration(elapsed)} waiting for image ${imageArn} version ${imageVersion} (${line})`,
        {
          exitCode: ExitCode.notReady,
          hint: `the build goes on; check it with \`crabbox image status ${imageArn}\``,
        },
      );
    }
    await sleep(options.pollMs, options.signal);
  }
}

export function isRunnable(settled: ImageSettled): boolean {
  return (
    (settled.imageState === "CREATED" || settled.imageState === "UPDATED") &&
    settled.versionState === "SUCCESSFUL" &&
    settled.versionStatus === "ACTIVE"
  );
}

/** Package (or take) the artifact, upload it, create or update the image, and optionally wait. */
export async function buildImage(
  clients: ImageClients,
  request: ImageBuildRequest,
  report: BuildReporter,
  signal?: AbortSignal,
): Promise<ImageBuildResult> {
  validateBuildRequest(request);
  const sdk = await import("@aws-sdk/client-lambda-microvms");
  const artifact = await resolveArtifact({
    artifact: request.artifact,
    version: request.version,
    say: report.info,
  });
  const mib = (artifact.bytes.length / 1024 / 1024).toFixed(1);
  report.info(`artifact ${artifact.path} (${mib} MiB, sha256 ${artifact.sha256.slice(0, 16)}…)`);
  const key = request.key ?? defaultKey(artifact, request.version);
  const upload = await uploadArtifact(clients, artifact, { bucket: request.bucket, key });
  report.info(upload.uploaded ? `uploaded ${upload.uri}` : `${upload.uri} already holds this artifact`);

  const config = {
    codeArtifact: { uri: upload.uri },
    baseImageArn: request.baseImageArn ?? managedBaseImageArn(clients.region),
    buildRoleArn: request.buildRoleArn,
    description: `crabbox runner ${request.version} (${artifact.sha256.slice(0, 12)})`,
    cpuConfigurations: [{ architecture: "ARM_64" as const }],
    ...(request.memoryMiB ? { resources: [{ minimumMemoryInMiB: request.memoryMiB }] } : {}),
    hooks: runnerImageHooks(),
  };
  const existing = await clients
    .call("GetMicrovmImage", request.name, () =>
      clients.microvms.send(new sdk.GetMicrovmImageCommand({ imageIdentifier: request.name })),
    )
    .catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
  const operation = existing ? "update" : "create";
  const output = existing
    ? await clients.call("UpdateMicrovmImage", request.name, () =>
        clients.microvms.send(
          new sdk.UpdateMicrovmImageCommand({
            imageIdentifier: existing.imageArn ?? request.name,
            ...config,
          }),
        ),
      )
    : await clients.call("CreateMicrovmImage", request.name, () =>
        clients.microvms.send(new sdk.CreateMicrovmImageCommand({ name: request.name, ...config })),
      );
  const imageArn = output.imageArn ?? existing?.imageArn ?? "";
  const imageVersion = output.imageVersion ?? "";
  if (!imageArn || !imageVersion) {
    throw new CrabboxError(
      `${operation === "create" ? "CreateMicrovmImage" : "UpdateMicrovmImage"} returned no image ARN or version`,
    );
  }
  report.info(
    `${operation === "create" ? "creating" : "updating"} image ${imageArn}, version ${imageVersion}`,
  );

  let settled: ImageSettled = {
    imageState: output.state ?? "UNKNOWN",
    versionState: "PENDING",
    versionStatus: "UNKNOWN",
    stateReason: undefined,
  };
  if (request.wait) {
    settled = await waitForImage(clients, imageArn, imageVersion, {
      timeoutMs: request.waitTimeoutMs,
      pollMs: clients.emulator ? 200 : 5_000,
      report,
      signal,
    });
    if (!isRunnable(settled)) {
      throw new CrabboxError(
        `image ${imageArn} version ${imageVersion} failed to build: ${settled.stateReason ?? settled.versionState}`,
        { hint: buildFailureHint(settled.stateReason) },
      );
    }
  }
  return {
    operation,
    imageArn,
    imageVersion,
    ...settled,
    artifact: {
      source: artifact.source,
      path: artifact.path,
      sha256: artifact.sha256,
      bytes: artifact.bytes.length,
      ...upload,
    },
    config: isRunnable(settled) ? { awsLambdaMicroVM: { image: imageArn, imageVersion } } : null,
  };
}

/** The YAML to paste into a crabbox config file. */
export function configSnippet(imageArn: string, imageVersion: string): string {
  return `awsLambdaMicroVM:\n  image: ${imageArn}\n  imageVersion: "${imageVersion}"\n`;
}
