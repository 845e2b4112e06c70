/**
 * The image operations: the account's custom images (created from an artifact, built through
 * CREATING -> CREATED), the AWS-managed base image, image versions, builds and tags. Every
 * supported Region starts with `crabbox-runner` version 1.0, backed by the host runner, so a new
 * user needs no setup.
 */

import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Hooks } from "@aws-sdk/client-lambda-microvms";
import { runnerImageHooks } from "../image/hooks.ts";
import { ACCOUNT_ID, type Emulator, imageArn, SUPPORTED_REGIONS } from "./context.ts";
import { buildVersion } from "./image-build.ts";
import { fingerprint, type HandlerResult } from "./microvm-api.ts";
import { paginate } from "./pagination.ts";
import type { ImageConfig, ImageRecord, ImageVersion, RequestContext } from "./types.ts";
import { type Json, type JsonObject, Violations } from "./validate.ts";
import { ApiError, compact, conflict, epochSeconds, notFound, validation } from "./wire.ts";

export const RUNNER_IMAGE_NAME = "crabbox-runner";
const MANAGED_NAME = "al2023-1";
const MANAGED_VERSIONS = [
  { version: "0", createdAt: Date.parse("2026-06-17T00:00:00Z") },
  { version: "1", createdAt: Date.parse("2026-07-21T00:00:00Z") },
];
const MAX_VERSIONS = 50;
const NAME_PATTERN = /^[a-zA-Z0-9-_]+$/;
const ROLE_PATTERN = /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/?[a-zA-Z_0-9+=,.@\-_/]+$/;
const MEMORY_SIZES = [512, 1024, 2048, 4096, 8192];

export function managedImageArn(region: string): string {
  return `arn:aws:lambda:${region}:aws:microvm-image:${MANAGED_NAME}`;
}

export function parseImageArn(arn: string): { region: string; account: string; name: string } | undefined {
  const match = /^arn:aws:lambda:([a-z0-9-]+):([0-9]{12}|aws):microvm-image:(.+)$/.exec(arn);
  if (!match) return undefined;
  return { region: match[1] as string, account: match[2] as string, name: match[3] as string };
}

/** An image of the caller's account and Region, by ARN or name; deleted images are gone. */
export function findImage(emu: Emulator, ctx: RequestContext, identifier: string): ImageRecord | undefined {
  const arn = identifier.startsWith("arn:") ? identifier : imageArn(ctx.region, ctx.account, identifier);
  const image = emu.registry.images.get(arn);
  return image && image.region === ctx.region && image.state !== "DELETED" ? image : undefined;
}

function imageNotFound(identifier: string): ApiError {
  return notFound("MicroVMImage", identifier, `MicroVMImage not found for MicroVMImageID: ${identifier}`);
}

function requireImage(emu: Emulator, ctx: RequestContext): ImageRecord {
  const identifier = ctx.labels.imageIdentifier ?? "";
  const image = findImage(emu, ctx, identifier);
  if (!image) throw imageNotFound(identifier);
  return image;
}

function requireVersion(image: ImageRecord, version: string): ImageVersion {
  const found = image.versions.find((ver) => ver.version === version && ver.state !== "DELETED");
  if (!found) {
    throw notFound(
      "MicroVMImageVersion",
      `${image.arn}:${version}`,
      `MicroVMImageVersion not found for MicroVMImageID: ${image.arn} and version: ${version}`,
    );
  }
  return found;
}

/** Register the pre-built images every Region starts with. */
export function seedImages(emu: Emulator): void {
  const now = Date.now();
  for (const region of SUPPORTED_REGIONS) {
    const arn = imageArn(region, ACCOUNT_ID, RUNNER_IMAGE_NAME);
    const version: ImageVersion = {
      version: "1.0",
      config: {
        baseImageArn: managedImageArn(region),
        baseImageVersion: "1",
        buildRoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/crabbox-emulator-build`,
        codeArtifact: { uri: "file:///crabbox-emulator/host-runner.zip" },
        description: "crabbox runner (the emulator's host runner)",
        cpuConfigurations: [{ architecture: "ARM_64" }],
        resources: [{ minimumMemoryInMiB: 2048 }],
        hooks: runnerImageHooks(),
      },
      state: "SUCCESSFUL",
      status: "ACTIVE",
      createdAt: now,
      updatedAt: now,
      builds: buildRecords(now),
      backend: { kind: "host" },
    };
    emu.registry.images.set(arn, {
      region,
      account: ACCOUNT_ID,
      name: RUNNER_IMAGE_NAME,
      arn,
      state: "CREATED",
      createdAt: now,
      updatedAt: now,
      tags: {},
      versions: [version],
      nextMajor: 2,
    });
  }
}

export function buildRecords(now: number) {
  return ["3", "4"].map((generation) => ({
    buildId: crypto.randomUUID(),
    chipsetGeneration: generation,
    createdAt: now,
  }));
}

function latest(image: ImageRecord, test: (version: ImageVersion) => boolean): string | undefined {
  return image.versions.filter(test).at(-1)?.version;
}

function imageSummary(image: ImageRecord) {
  return compact({
    imageArn: image.arn,
    name: image.name,
    state: image.state,
    createdAt: epochSeconds(image.createdAt),
    latestActiveImageVersion: latest(image, (ver) => ver.state === "SUCCESSFUL" && ver.status === "ACTIVE"),
    latestFailedImageVersion: latest(image, (ver) => ver.state === "FAILED"),
  });
}

function configView(config: ImageConfig) {
  return compact({
    baseImageArn: config.baseImageArn,
    buildRoleArn: config.buildRoleArn,
    codeArtifact: config.codeArtifact,
    baseImageVersion: config.baseImageVersion,
    description: config.description,
    logging: config.logging,
    egressNetworkConnectors: config.egressNetworkConnectors,
    cpuConfigurations: config.cpuConfigurations,
    resources: config.resources,
    additionalOsCapabilities: config.additionalOsCapabilities,
    hooks: config.hooks,
    environmentVariables: config.environmentVariables,
  });
}

function versionView(image: ImageRecord, version: ImageVersion) {
  return compact({
    ...configView(version.config),
    imageArn: image.arn,
    imageVersion: version.version,
    state: version.state,
    status: version.status,
    createdAt: epochSeconds(version.createdAt),
    updatedAt: epochSeconds(version.updatedAt),
    stateReason: version.stateReason,
    tags: image.tags,
  });
}

/** What Create and Update answer: the image, plus the version the call started building. */
function imageWithVersion(image: ImageRecord, version: ImageVersion) {
  return compact({
    ...configView(version.config),
    ...imageSummary(image),
    imageVersion: version.version,
    tags: image.tags,
    updatedAt: epochSeconds(image.updatedAt),
  });
}

function validateHooks(v: Violations, value: Json | undefined): Hooks | undefined {
  const hooks = v.object(value, "hooks");
  if (!hooks) return undefined;
  const states = ["ENABLED", "DISABLED"] as const;
  const port = v.integer(hooks.port, "hooks.port", { min: 1, max: 65535 });
  const runtime = v.object(hooks.microvmHooks, "hooks.microvmHooks");
  const image = v.object(hooks.microvmImageHooks, "hooks.microvmImageHooks");
  const result: Hooks = {};
  if (port !== undefined) result.port = port;
  if (runtime) {
    const out: Record<string, string | number> = {};
    for (const name of ["run", "resume", "suspend", "terminate"]) {
      const state = v.enumValue(runtime[name], `hooks.microvmHooks.${name}`, states);
      const timeout = v.integer(
        runtime[`${name}TimeoutInSeconds`],
        `hooks.microvmHooks.${name}TimeoutInSeconds`,
        {
          min: 1,
          max: 60,
        },
      );
      if (state) out[name] = state;
      if (timeout !== undefined) out[`${name}TimeoutInSeconds`] = timeout;
    }
    result.microvmHooks = out;
  }
  if (image) {
    const out: Record<string, string | number> = {};
    for (const name of ["ready", "validate"]) {
      const state = v.enumValue(image[name], `hooks.microvmImageHooks.${name}`, states);
      const timeout = v.integer(
        image[`${name}TimeoutInSeconds`],
        `hooks.microvmImageHooks.${name}TimeoutInSeconds`,
        {
          min: 1,
          max: 3600,
        },
      );
      if (state) out[name] = state;
      if (timeout !== undefined) out[`${name}TimeoutInSeconds`] = timeout;
    }
    result.microvmImageHooks = out;
  }
  return result;
}

/** Validate a Create/Update body into a version configuration (both take the same members). */
function imageConfig(ctx: RequestContext, v: Violations): ImageConfig {
  const { body } = ctx;
  const baseImageArn = v.string(body.baseImageArn, "baseImageArn", { required: true, min: 1, max: 2048 });
  const buildRoleArn = v.string(body.buildRoleArn, "buildRoleArn", {
    required: true,
    min: 20,
    max: 2048,
    pattern: ROLE_PATTERN,
  });
  const artifact = v.union(body.codeArtifact, "codeArtifact", ["uri"], { required: true });
  const uri = artifact
    ? v.string(artifact.value, "codeArtifact.uri", { required: true, min: 1, max: 1024 })
    : undefined;
  const baseImageVersion = v.string(body.baseImageVersion, "baseImageVersion", { min: 1, max: 2048 });
  const description = v.string(body.description, "description", { max: 256 });
  const logging = v.union(body.logging, "logging", ["disabled", "cloudWatch"]);
  const egress = v.list(body.egressNetworkConnectors, "egressNetworkConnectors", { max: 1 });
  const cpus = v.list(body.cpuConfigurations, "cpuConfigurations");
  const cpuConfigurations = cpus?.map((cpu, index) => {
    const object = v.object(cpu, `cpuConfigurations.${index + 1}.member`);
    const architecture = v.enumValue(
      object?.architecture,
      `cpuConfigurations.${index + 1}.member.architecture`,
      ["ARM_64"] as const,
    );
    return { architecture: architecture ?? "ARM_64" };
  });
  const resourceList = v.list(body.resources, "resources", { max: 1 });
  const resources = resourceList?.map((item, index) => {
    const object = v.object(item, `resources.${index + 1}.member`);
    const path = `resources.${index + 1}.member.minimumMemoryInMiB`;
    const memory = v.integer(object?.minimumMemoryInMiB, path, { required: true });
    if (memory !== undefined && !MEMORY_SIZES.includes(memory)) {
      v.add(path, memory, `Member must be one of [${MEMORY_SIZES.join(", ")}]`);
    }
    return { minimumMemoryInMiB: memory ?? 2048 };
  });
  const capabilities = v.list(body.additionalOsCapabilities, "additionalOsCapabilities");
  const additionalOsCapabilities = capabilities?.map(
    (item, index) =>
      v.enumValue(item, `additionalOsCapabilities.${index + 1}.member`, ["ALL"] as const) ?? "ALL",
  );
  const hooks = validateHooks(v, body.hooks);
  const env = v.map(body.environmentVariables, "environmentVariables", { max: 50 });
  const environmentVariables: Record<string, string> | undefined = env ? {} : undefined;
  for (const [key, value] of Object.entries(env ?? {})) {
    v.string(key, "environmentVariables.key", { min: 1, max: 256, pattern: /^[^\s]+$/ });
    const text = v.string(value, `environmentVariables.${key}`, {
      required: true,
      max: 4096,
      sensitive: true,
    });
    if (environmentVariables && text !== undefined) environmentVariables[key] = text;
  }
  v.string(body.clientToken, "clientToken", { min: 1, max: 128 });
  v.throwIfAny();

  if (hooks?.microvmHooks?.run === "ENABLED" && hooks.microvmImageHooks?.ready !== "ENABLED") {
    throw validation("The run hook can only be ENABLED when the ready image hook is ENABLED.");
  }
  const anyEnabled = [
    ...Object.values(hooks?.microvmHooks ?? {}),
    ...Object.values(hooks?.microvmImageHooks ?? {}),
  ].some((state) => state === "ENABLED");
  if (anyEnabled && hooks?.port === undefined)
    throw validation("hooks.port is required when a hook is ENABLED.");
  if (baseImageArn !== managedImageArn(ctx.region)) throw imageNotFound(baseImageArn ?? "");
  if (baseImageVersion !== undefined && !MANAGED_VERSIONS.some((ver) => ver.version === baseImageVersion)) {
    throw notFound(
      "MicroVMImageVersion",
      `${baseImageArn}:${baseImageVersion}`,
      `MicroVMImageVersion not found for MicroVMImageID: ${baseImageArn} and version: ${baseImageVersion}`,
    );
  }
  if (!uri || !/^(s3:\/\/[^/]+\/.+|file:\/\/\/.+)$/.test(uri)) {
    throw validation(
      "codeArtifact.uri must be an S3 object URI (s3://bucket/key) or, in the emulator, file:///path.zip",
    );
  }
  return compact({
    baseImageArn: baseImageArn as string,
    buildRoleArn: buildRoleArn as string,
    codeArtifact: { uri },
    baseImageVersion,
    description,
    logging: logging ? ({ [logging.key]: logging.value } as JsonObject) : undefined,
    egressNetworkConnectors: egress as string[] | undefined,
    cpuConfigurations,
    resources,
    additionalOsCapabilities,
    hooks,
    environmentVariables,
  });
}

function replayed(emu: Emulator, ctx: RequestContext, operation: string): ImageRecord | undefined {
  const token = typeof ctx.body.clientToken === "string" ? ctx.body.clientToken : undefined;
  if (!token) return undefined;
  const previous = emu.registry.idempotency.get(`${ctx.region}|${operation}|${token}`);
  if (!previous) return undefined;
  if (
    previous.fingerprint !== fingerprint({ ...ctx.body, imageIdentifier: ctx.labels.imageIdentifier ?? null })
  ) {
    throw conflict(`A previous ${operation} request with client token ${token} had different parameters.`);
  }
  const [arn] = previous.result.split("#");
  const image = emu.registry.images.get(arn ?? "");
  if (!image) throw imageNotFound(arn ?? "");
  return image;
}

function remember(emu: Emulator, ctx: RequestContext, operation: string, result: string): void {
  const token = typeof ctx.body.clientToken === "string" ? ctx.body.clientToken : undefined;
  if (!token) return;
  emu.registry.idempotency.set(`${ctx.region}|${operation}|${token}`, {
    fingerprint: fingerprint({ ...ctx.body, imageIdentifier: ctx.labels.imageIdentifier ?? null }),
    result,
  });
}

function startBuild(emu: Emulator, image: ImageRecord, config: ImageConfig): ImageVersion {
  const now = Date.now();
  const version: ImageVersion = {
    version: `${image.nextMajor}.0`,
    config,
    state: "PENDING",
    status: "ACTIVE",
    createdAt: now,
    updatedAt: now,
    builds: buildRecords(now),
  };
  image.nextMajor += 1;
  image.versions.push(version);
  void buildVersion(emu, image, version);
  return version;
}

export function createMicrovmImage(emu: Emulator, ctx: RequestContext): HandlerResult {
  const v = new Violations();
  const name = v.string(ctx.body.name, "name", { required: true, min: 1, max: 64, pattern: NAME_PATTERN });
  const tags = v.map(ctx.body.tags, "tags", { max: 50 });
  for (const [key, value] of Object.entries(tags ?? {})) {
    v.string(key, "tags.key", { min: 1, max: 128 });
    v.string(value, `tags.${key}`, { max: 256 });
  }
  const again = replayed(emu, ctx, "CreateMicrovmImage");
  if (again) {
    const version = again.versions[0];
    return { status: 201, body: version ? imageWithVersion(again, version) : imageSummary(again) };
  }
  const config = imageConfig(ctx, v);
  const arn = imageArn(ctx.region, ctx.account, name as string);
  const existing = emu.registry.images.get(arn);
  if (existing && existing.state !== "DELETED") {
    throw conflict(`MicroVM image ${name} already exists: ${arn}`, "MicroVMImage", arn);
  }
  const images = [...emu.registry.images.values()].filter(
    (image) => image.region === ctx.region && image.state !== "DELETED",
  );
  if (images.length >= 100) {
    throw new ApiError(
      "ServiceQuotaExceededException",
      402,
      "You have reached the maximum number of MicroVM images (100).",
      {
        members: { resourceType: "MicroVMImage", serviceCode: "lambda", quotaCode: "L-MICROVM-IMAGES" },
      },
    );
  }
  const now = Date.now();
  const image: ImageRecord = {
    region: ctx.region,
    account: ctx.account,
    name: name as string,
    arn,
    state: "CREATING",
    createdAt: now,
    updatedAt: now,
    tags: (tags ?? {}) as Record<string, string>,
    versions: [],
    nextMajor: 1,
  };
  emu.registry.images.set(arn, image);
  const version = startBuild(emu, image, config);
  remember(emu, ctx, "CreateMicrovmImage", arn);
  return { status: 201, body: imageWithVersion(image, version) };
}

export function updateMicrovmImage(emu: Emulator, ctx: RequestContext): HandlerResult {
  const again = replayed(emu, ctx, "UpdateMicrovmImage");
  if (again) {
    const version = again.versions.at(-1);
    return { status: 200, body: version ? imageWithVersion(again, version) : imageSummary(again) };
  }
  const image = requireImage(emu, ctx);
  const config = imageConfig(ctx, new Violations());
  if (image.state === "CREATING" || image.state === "UPDATING" || image.state === "DELETING") {
    throw conflict(
      `MicroVM image ${image.arn} is ${image.state}; wait until it settles.`,
      "MicroVMImage",
      image.arn,
    );
  }
  if (image.versions.filter((ver) => ver.state !== "DELETED").length >= MAX_VERSIONS) {
    throw new ApiError(
      "ServiceQuotaExceededException",
      402,
      `MicroVM image ${image.arn} has the maximum number of versions (${MAX_VERSIONS}).`,
      {
        members: {
          resourceType: "MicroVMImageVersion",
          serviceCode: "lambda",
          quotaCode: "L-MICROVM-IMAGE-VERSIONS",
        },
      },
    );
  }
  image.state = "UPDATING";
  image.updatedAt = Date.now();
  const version = startBuild(emu, image, config);
  remember(emu, ctx, "UpdateMicrovmImage", `${image.arn}#${version.version}`);
  return { status: 200, body: imageWithVersion(image, version) };
}

export function getMicrovmImage(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = requireImage(emu, ctx);
  return {
    status: 200,
    body: compact({ ...imageSummary(image), tags: image.tags, updatedAt: epochSeconds(image.updatedAt) }),
  };
}

export function listMicrovmImages(emu: Emulator, ctx: RequestContext): HandlerResult {
  const filter = ctx.query.get("nameFilter");
  const images = [...emu.registry.images.values()]
    .filter(
      (image) => image.region === ctx.region && image.account === ctx.account && image.state !== "DELETED",
    )
    .filter((image) => filter === null || image.name.includes(filter))
    .sort((a, b) => a.name.localeCompare(b.name));
  const page = paginate(images, ctx.query);
  return { status: 200, body: compact({ items: page.items.map(imageSummary), nextToken: page.nextToken }) };
}

export function listMicrovmImageVersions(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = requireImage(emu, ctx);
  const versions = image.versions.filter((ver) => ver.state !== "DELETED");
  const page = paginate(versions, ctx.query);
  return {
    status: 200,
    body: compact({ items: page.items.map((ver) => versionView(image, ver)), nextToken: page.nextToken }),
  };
}

export function getMicrovmImageVersion(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = requireImage(emu, ctx);
  const version = requireVersion(image, ctx.labels.imageVersion ?? "");
  return { status: 200, body: versionView(image, version) };
}

export function updateMicrovmImageVersion(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = requireImage(emu, ctx);
  const version = requireVersion(image, ctx.labels.imageVersion ?? "");
  const v = new Violations();
  const status = v.enumValue(ctx.body.status, "status", ["ACTIVE", "INACTIVE"] as const, { required: true });
  v.throwIfAny();
  if (version.state !== "SUCCESSFUL") {
    throw conflict(
      `MicroVM image version ${version.version} of ${image.arn} is ${version.state}; only a successful version can change status.`,
      "MicroVMImageVersion",
      `${image.arn}:${version.version}`,
    );
  }
  version.status = status as "ACTIVE" | "INACTIVE";
  version.updatedAt = Date.now();
  return { status: 200, body: versionView(image, version) };
}

export function deleteMicrovmImage(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = requireImage(emu, ctx);
  if (image.state === "CREATING" || image.state === "UPDATING" || image.state === "DELETING") {
    throw validation(`Cannot delete MicroVM image in its current state: ${image.arn}`);
  }
  image.state = "DELETING";
  image.updatedAt = Date.now();
  setTimeout(() => {
    image.state = "DELETED";
    for (const version of image.versions) version.state = "DELETED";
    rmSync(join(emu.paths.images, image.region, image.name), { recursive: true, force: true });
  }, 50);
  return { status: 200, body: { imageIdentifier: image.arn, state: "DELETING" } };
}

export function deleteMicrovmImageVersion(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = requireImage(emu, ctx);
  const version = requireVersion(image, ctx.labels.imageVersion ?? "");
  const remaining = image.versions.filter((ver) => ver.state !== "DELETED" && ver.state !== "DELETING");
  if (remaining.length <= 1) {
    throw conflict(
      `Cannot delete the last version of MicroVM image ${image.arn}.`,
      "MicroVMImageVersion",
      image.arn,
    );
  }
  if (version.state === "PENDING" || version.state === "IN_PROGRESS") {
    throw conflict(
      `MicroVM image version ${version.version} is still building.`,
      "MicroVMImageVersion",
      image.arn,
    );
  }
  version.state = "DELETING";
  version.updatedAt = Date.now();
  setTimeout(() => {
    version.state = "DELETED";
    rmSync(join(emu.paths.images, image.region, image.name, version.version), {
      recursive: true,
      force: true,
    });
  }, 50);
  return {
    status: 200,
    body: { imageIdentifier: image.arn, imageVersion: version.version, state: "DELETING" },
  };
}

function buildSummary(image: ImageRecord, version: ImageVersion, build: ImageVersion["builds"][number]) {
  const buildState =
    version.state === "SUCCESSFUL" || version.state === "FAILED" || version.state === "PENDING"
      ? version.state
      : version.state === "IN_PROGRESS"
        ? "IN_PROGRESS"
        : "SUCCESSFUL";
  return compact({
    imageArn: image.arn,
    imageVersion: version.version,
    buildId: build.buildId,
    buildState,
    architecture: "ARM_64",
    chipset: "GRAVITON",
    chipsetGeneration: build.chipsetGeneration,
    createdAt: epochSeconds(build.createdAt),
    stateReason: version.state === "FAILED" ? version.stateReason : undefined,
  });
}

export function listMicrovmImageBuilds(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = requireImage(emu, ctx);
  const version = requireVersion(image, ctx.labels.imageVersion ?? "");
  const { query } = ctx;
  const builds = version.builds
    .filter(() => (query.get("architecture") ?? "ARM_64") === "ARM_64")
    .filter(() => (query.get("chipset") ?? "GRAVITON") === "GRAVITON")
    .filter(
      (build) =>
        query.get("chipsetGeneration") === null || query.get("chipsetGeneration") === build.chipsetGeneration,
    );
  const page = paginate(builds, query);
  return {
    status: 200,
    body: compact({
      items: page.items.map((build) => buildSummary(image, version, build)),
      nextToken: page.nextToken,
    }),
  };
}

export function getMicrovmImageBuild(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = requireImage(emu, ctx);
  const version = requireVersion(image, ctx.labels.imageVersion ?? "");
  const build = version.builds.find((candidate) => candidate.buildId === ctx.labels.buildId);
  if (!build) {
    const id = ctx.labels.buildId ?? "";
    throw notFound("MicroVMImageBuild", id, `MicroVMImageBuild not found for BuildID: ${id}`);
  }
  return {
    status: 200,
    body: compact({ ...buildSummary(image, version, build), snapshotBuild: build.snapshotBuild }),
  };
}

export function listManagedMicrovmImages(_emu: Emulator, ctx: RequestContext): HandlerResult {
  const items = [
    {
      imageArn: managedImageArn(ctx.region),
      createdAt: epochSeconds(MANAGED_VERSIONS[0]?.createdAt ?? 0),
      updatedAt: epochSeconds(MANAGED_VERSIONS.at(-1)?.createdAt ?? 0),
    },
  ];
  const page = paginate(items, ctx.query);
  return { status: 200, body: compact({ items: page.items, nextToken: page.nextToken }) };
}

export function listManagedMicrovmImageVersions(_emu: Emulator, ctx: RequestContext): HandlerResult {
  const identifier = ctx.labels.imageIdentifier ?? "";
  const arn = managedImageArn(ctx.region);
  if (identifier !== arn && identifier !== MANAGED_NAME) throw imageNotFound(identifier);
  const items = MANAGED_VERSIONS.map((ver) => ({
    imageArn: arn,
    imageVersion: ver.version,
    createdAt: epochSeconds(ver.createdAt),
    status: "AVAILABLE",
    updatedAt: epochSeconds(ver.createdAt),
  }));
  const page = paginate(items, ctx.query);
  return { status: 200, body: compact({ items: page.items, nextToken: page.nextToken }) };
}

/** Tags live on image ARNs only; a MicroVM cannot be tagged (measured). */
function taggable(emu: Emulator, ctx: RequestContext): ImageRecord {
  const resource = ctx.labels.Resource ?? "";
  if (!resource.startsWith("arn:")) throw validation("Malformed ARN - doesn't start with 'arn:'");
  if (!parseImageArn(resource)) {
    throw new ApiError("InvalidParameterValueException", 400, `Resource ${resource} cannot be tagged.`, {
      members: { Type: "User" },
    });
  }
  const image = findImage(emu, ctx, resource);
  if (!image) throw imageNotFound(resource);
  return image;
}

export function tagResource(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = taggable(emu, ctx);
  const v = new Violations();
  const tags = v.map(ctx.body.Tags, "Tags", { required: true, max: 50 });
  for (const [key, value] of Object.entries(tags ?? {})) {
    v.string(key, "Tags.key", { min: 1, max: 128 });
    v.string(value, `Tags.${key}`, { required: true, max: 256 });
  }
  v.throwIfAny();
  Object.assign(image.tags, tags);
  return { status: 204 };
}

export function untagResource(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = taggable(emu, ctx);
  const keys = ctx.query.getAll("tagKeys");
  if (keys.length === 0)
    throw validation(
      "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null",
    );
  for (const key of keys) delete image.tags[key];
  return { status: 204 };
}

export function listTags(emu: Emulator, ctx: RequestContext): HandlerResult {
  const image = taggable(emu, ctx);
  return { status: 200, body: { Tags: image.tags } };
}
