/**
 * Building an image version, the emulator's way: no container build, no snapshot. The artifact zip
 * must hold a Dockerfile; its COPY instructions say which artifact file lands at which in-VM path,
 * and its CMD (after any ENTRYPOINT) names the runner executable by its in-VM path. That file must be
 * a linux-arm64 executable — Lambda MicroVMs are ARM64-only — and it is what the version's VMs run:
 * natively on an arm64 host, under qemu-aarch64-static elsewhere, and if neither is possible the
 * version FAILS with a reason that says so (never silently the host runner). With a ready hook the
 * runner is smoke-booted like the real build: /ready until 200 (503 = retry), then /validate.
 * Failure reasons use AWS's build codes (ARCHIVE_DOCKERFILE_NOT_FOUND, S3_NO_SUCH_KEY, ...).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, posix } from "node:path";
import { parseRunnerDockerfile, type RunnerDockerfile } from "../image/dockerfile.ts";
import { readZip, type ZipEntry } from "../image/zip.ts";
import type { Emulator } from "./context.ts";
import { HOOK_PATH, launchRunner, portSocket } from "./launch.ts";
import { killVm, untrackGroup } from "./processes.ts";
import { objectPath } from "./s3.ts";
import { forgetVm, recordVm } from "./state.ts";
import type { Backend, ImageRecord, ImageVersion } from "./types.ts";

class BuildFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const READY_FLOOR_S = 60;
const AARCH64_MACHINE = 183;
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";

export async function buildVersion(emu: Emulator, image: ImageRecord, version: ImageVersion): Promise<void> {
  const creating = image.state === "CREATING";
  const dir = join(emu.paths.images, image.region, image.name, version.version);
  await Bun.sleep(0);
  version.state = "IN_PROGRESS";
  version.updatedAt = Date.now();
  emu.log.note(`[image ${image.name}:${version.version}] building from ${version.config.codeArtifact.uri}`);
  try {
    const entries = unzip(readArtifact(emu, version.config.codeArtifact.uri));
    const backend = prepareBackend(dir, entries, version);
    await smokeBoot(emu, version, backend);
    const size = entries.reduce((sum, entry) => sum + entry.data.length, 0);
    for (const build of version.builds) {
      build.snapshotBuild = {
        memorySnapshotSizeInBytes: (version.config.resources?.[0]?.minimumMemoryInMiB ?? 2048) * 1024 * 1024,
        codeInstallSizeInBytes: size,
        diskSnapshotSizeInBytes: size,
      };
    }
    version.backend = backend;
    version.state = "SUCCESSFUL";
    image.state = creating ? "CREATED" : "UPDATED";
    emu.log.note(`[image ${image.name}:${version.version}] SUCCESSFUL`);
  } catch (error) {
    const reason =
      error instanceof BuildFailure
        ? `${error.code}: ${error.message}`
        : `INTERNAL_PLATFORM_ERROR: ${String(error)}`;
    version.state = "FAILED";
    version.stateReason = reason;
    image.state = creating ? "CREATE_FAILED" : "UPDATE_FAILED";
    rmSync(dir, { recursive: true, force: true });
    emu.log.note(`[image ${image.name}:${version.version}] FAILED: ${reason}`);
  }
  version.updatedAt = Date.now();
  image.updatedAt = Date.now();
}

function readArtifact(emu: Emulator, uri: string): Uint8Array {
  if (uri.startsWith("file://")) {
    const path = decodeURIComponent(uri.slice("file://".length));
    if (!existsSync(path)) throw new BuildFailure("S3_NO_SUCH_KEY", `${path} does not exist`);
    return readFileSync(path);
  }
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) throw new BuildFailure("S3_INVALID_OBJECT", `${uri} is not an S3 object URI`);
  const [, bucket, key] = match as unknown as [string, string, string];
  if (!existsSync(join(emu.paths.s3, bucket))) {
    throw new BuildFailure("S3_NO_SUCH_BUCKET", `bucket ${bucket} does not exist in the emulator's S3`);
  }
  const path = objectPath(emu.paths.s3, bucket, key);
  if (!path || !existsSync(path) || !statSync(path).isFile()) {
    throw new BuildFailure("S3_NO_SUCH_KEY", `s3://${bucket}/${key} does not exist`);
  }
  return readFileSync(path);
}

function unzip(bytes: Uint8Array): ZipEntry[] {
  try {
    return readZip(bytes);
  } catch (error) {
    throw new BuildFailure("ARCHIVE_INVALID", `the artifact is not a usable zip archive (${String(error)})`);
  }
}

/** In-VM path -> artifact entry name, for every file the Dockerfile's COPY/ADD instructions place. */
export function copiedFiles(dockerfile: RunnerDockerfile, names: string[]): Map<string, string> {
  const placed = new Map<string, string>();
  let cwd = "/";
  for (const copy of dockerfile.copies) {
    if (copy.from !== undefined) continue;
    const many = copy.sources.length > 1 || copy.dest.endsWith("/");
    const dest = posix.resolve(dockerfile.workdir ?? cwd, copy.dest);
    for (const raw of copy.sources) {
      const source = posix
        .normalize(raw)
        .replace(/^(\.\/)+/, "")
        .replace(/^\/+/, "")
        .replace(/\/$/, "");
      const glob = /[*?[]/.test(source) ? new Bun.Glob(source) : undefined;
      for (const name of names) {
        if (glob ? glob.match(name) : name === source) {
          placed.set(many || glob ? posix.join(dest, basename(name)) : dest, name);
        } else if (!glob && (source === "." || source === "" || name.startsWith(`${source}/`))) {
          const rel = source === "." || source === "" ? name : name.slice(source.length + 1);
          placed.set(posix.join(dest, rel), name);
        }
      }
    }
    cwd = dockerfile.workdir ?? cwd;
  }
  return placed;
}

function prepareBackend(dir: string, entries: ZipEntry[], version: ImageVersion): Backend {
  const dockerfileEntry = entries.find((entry) => entry.name === "Dockerfile");
  if (!dockerfileEntry) {
    throw new BuildFailure("ARCHIVE_DOCKERFILE_NOT_FOUND", "the artifact has no Dockerfile at its root");
  }
  let dockerfile: RunnerDockerfile;
  try {
    dockerfile = parseRunnerDockerfile(new TextDecoder().decode(dockerfileEntry.data));
  } catch (error) {
    throw new BuildFailure("CONTAINER_BUILD_FAILED", error instanceof Error ? error.message : String(error));
  }
  const argv = [...(dockerfile.entrypoint ?? []), ...dockerfile.cmd];
  const program = argv[0];
  if (!program)
    throw new BuildFailure("CONTAINER_BUILD_FAILED", "the Dockerfile starts no program (empty CMD)");
  const placed = copiedFiles(
    dockerfile,
    entries.map((entry) => entry.name),
  );
  const source = placed.get(posix.resolve(dockerfile.workdir ?? "/", program));
  if (source === undefined) {
    throw new BuildFailure(
      "CONTAINER_BUILD_FAILED",
      `CMD runs ${program}, which no COPY in the Dockerfile puts into the image (the emulator runs only the image's own runner)`,
    );
  }
  const entry = entries.find((candidate) => candidate.name === source) as ZipEntry;
  if (!isArm64Elf(entry.data)) {
    throw new BuildFailure(
      "CONTAINER_BUILD_FAILED",
      `${program} (${source} in the artifact) is not a linux-arm64 executable; Lambda MicroVMs run ARM64 only`,
    );
  }
  const interpreter = arm64Interpreter();
  if (interpreter === undefined) {
    throw new BuildFailure(
      "CONTAINER_BUILD_FAILED",
      `${program} is a linux-arm64 executable and this ${process.platform}-${process.arch} host cannot run it: install qemu-user-static and libc6-arm64-cross (qemu-aarch64-static -L ${ARM64_SYSROOT})`,
    );
  }
  rmSync(dir, { recursive: true, force: true });
  for (const file of entries) {
    const path = join(dir, "context", file.name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, file.data);
    if (file.mode) chmodSync(path, file.mode);
  }
  const host = join(dir, "context", source);
  chmodSync(host, 0o755);
  version.config.environmentVariables = { ...dockerfile.env, ...version.config.environmentVariables };
  if (Object.keys(version.config.environmentVariables).length === 0)
    delete version.config.environmentVariables;
  return { kind: "image", dir, argv: [host, ...argv.slice(1)], interpreter };
}

function isArm64Elf(bytes: Uint8Array): boolean {
  if (bytes.length < 20 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) {
    return false;
  }
  return (
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(18, true) === AARCH64_MACHINE
  );
}

/**
 * [] on an arm64 Linux host, the qemu prefix where qemu-user-static and the arm64 sysroot exist,
 * else undefined. CRABBOX_EMULATOR_QEMU overrides the qemu path ("none" = pretend it is absent).
 */
function arm64Interpreter(): string[] | undefined {
  if (process.platform !== "linux") return undefined;
  if (process.arch === "arm64") return [];
  const override = process.env.CRABBOX_EMULATOR_QEMU;
  if (override === "none") return undefined;
  const qemu = override || Bun.which("qemu-aarch64-static");
  if (!qemu || !existsSync(qemu) || !existsSync(ARM64_SYSROOT)) return undefined;
  return [qemu, "-L", ARM64_SYSROOT];
}

/** Start the runner once, as the real build does before it snapshots, and check its build hooks. */
async function smokeBoot(emu: Emulator, version: ImageVersion, backend: Backend): Promise<void> {
  const id = `build-${crypto.randomUUID()}`;
  const dir = join(emu.paths.microvms, id);
  const runner = launchRunner({
    id,
    dir,
    socketsDir: emu.paths.sockets,
    backend,
    isolation: emu.supervisor.isolation,
    env: version.config.environmentVariables ?? {},
    testEcho: false,
  });
  recordVm(emu.paths, { microvmId: id, pid: runner.proc.pid, startedAt: new Date().toISOString() });
  emu.builds.add(id);
  try {
    const hooks = version.config.hooks?.microvmImageHooks;
    if (hooks?.ready === "ENABLED") {
      const port = version.config.hooks?.port;
      await pollHook(emu, runner, "ready", hooks.readyTimeoutInSeconds ?? 30, port);
      if (hooks.validate === "ENABLED")
        await pollHook(emu, runner, "validate", hooks.validateTimeoutInSeconds ?? 30, port);
    } else {
      await pollHook(emu, runner, undefined, 30);
    }
  } finally {
    emu.builds.delete(id);
    await killVm(id, 5000);
    untrackGroup(id);
    await Promise.race([runner.proc.exited, Bun.sleep(5000)]);
    forgetVm(emu.paths, id);
    rmSync(dir, { recursive: true, force: true });
    rmSync(runner.socketDir, { recursive: true, force: true });
  }
}

/** Poll a build hook (or, without one, anything on port 8080) until 200 / an answer. */
async function pollHook(
  emu: Emulator,
  runner: ReturnType<typeof launchRunner>,
  hook: "ready" | "validate" | undefined,
  seconds: number,
  hooksPort?: number,
): Promise<void> {
  const deadline = Date.now() + emu.clock.timeoutMs(seconds, READY_FLOOR_S);
  const path = hook ? `${HOOK_PATH}/${hook}` : "/";
  const port = hook ? (hooksPort ?? 8080) : 8080;
  while (Date.now() < deadline) {
    if (runner.proc.exitCode !== null || runner.proc.signalCode !== null) {
      throw new BuildFailure(
        "CONTAINER_BUILD_FAILED",
        `the image's CMD exited (${runner.proc.signalCode ?? `code ${runner.proc.exitCode}`}) before it became ready`,
      );
    }
    try {
      const response = await fetch(`http://localhost:${port}${path}`, {
        method: hook ? "POST" : "GET",
        headers: { host: `localhost:${port}`, "content-type": "application/json" },
        body: hook ? "{}" : undefined,
        unix: portSocket(runner.socket, port),
        signal: AbortSignal.timeout(5000),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (!hook || response.status === 200) return;
      if (response.status !== 503) {
        throw new BuildFailure(
          "CONTAINER_BUILD_FAILED",
          `${hook === "ready" ? "Ready" : "Validate"} hook check failed: HTTP ${response.status}`,
        );
      }
    } catch (error) {
      if (error instanceof BuildFailure) throw error;
    }
    await Bun.sleep(100);
  }
  throw new BuildFailure(
    "CONTAINER_BUILD_FAILED",
    hook
      ? `${hook === "ready" ? "Ready" : "Validate"} hook check failed: no 200 within ${seconds} seconds`
      : `nothing answered on port 8080 within ${seconds} seconds`,
  );
}
