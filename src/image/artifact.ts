import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isCompiledBinary } from "../core/compiled.ts";
import { CrabboxError, usageError } from "../core/errors.ts";

/**
 * The MicroVM image's code artifact: a zip with `Dockerfile` at its root (plus what it copies).
 * `crabbox image build` takes it from, in order: `--artifact <zip>`; a source checkout, where it is
 * packaged fresh by scripts/package-runner.ts (Bun only); the release zip installed next to the
 * binary (`<prefix>/share/crabbox/`, where the Homebrew formula puts it, or the binary's own dir).
 */

/** Release asset name of the runner zip; scripts/release uses this same function. */
export function runnerZipName(version: string): string {
  return `crabbox-lambda-microvm-${version}.zip`;
}

export interface Artifact {
  /** Where the bytes came from (for messages). */
  path: string;
  bytes: Uint8Array;
  sha256: string;
  /** Hex md5: S3's ETag of a single-part upload, used to skip re-uploading the same bytes. */
  md5: string;
  source: "flag" | "packaged" | "installed";
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;

/** Member names from a zip's central directory; throws on anything that is not a zip. */
export function zipMemberNames(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  let eocd = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at--) {
    if (view.getUint32(at, true) === EOCD) {
      eocd = at;
      break;
    }
  }
  if (eocd === -1) throw new Error("no end-of-central-directory record (not a zip file)");
  const count = view.getUint16(eocd + 10, true);
  let at = view.getUint32(eocd + 16, true);
  const names: string[] = [];
  const decoder = new TextDecoder();
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== CENTRAL) {
      throw new Error("the central directory is damaged");
    }
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    names.push(decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength)));
    at += 46 + nameLength + extraLength + commentLength;
  }
  return names;
}

/** Refuses an artifact AWS would fail to build (ARCHIVE_INVALID, ARCHIVE_DOCKERFILE_NOT_FOUND) before uploading it. */
export function checkArtifact(bytes: Uint8Array, path: string): void {
  let names: string[];
  try {
    names = zipMemberNames(bytes);
  } catch (error) {
    throw usageError(
      `${path} is not a zip archive (${error instanceof Error ? error.message : String(error)})`,
      "pass the runner zip (crabbox-lambda-microvm-<version>.zip) or a zip with a Dockerfile at its root",
    );
  }
  if (!names.includes("Dockerfile")) {
    throw usageError(
      `${path} has no Dockerfile at its root`,
      "Lambda MicroVMs build the image from the artifact's top-level Dockerfile",
    );
  }
}

function load(path: string, source: Artifact["source"]): Artifact {
  const bytes = readFileSync(path);
  checkArtifact(bytes, path);
  return {
    path,
    bytes,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    md5: createHash("md5").update(bytes).digest("hex"),
    source,
  };
}

/** `scripts/package-runner.ts` of the checkout this module runs from, when it does (never in the binary). */
function sourcePackager(): string | undefined {
  if (typeof Bun === "undefined" || isCompiledBinary() || !import.meta.url.startsWith("file:"))
    return undefined;
  const path = fileURLToPath(new URL("../../scripts/package-runner.ts", import.meta.url));
  return path.includes("$bunfs") || !existsSync(path) ? undefined : path;
}

/** Directories an installed release keeps the runner zip in. */
export function installedArtifactDirs(execPath: string): string[] {
  const dirs = new Set<string>();
  for (const exe of [execPath, safeRealpath(execPath)]) {
    const bin = dirname(exe);
    dirs.add(resolve(bin, "..", "share", "crabbox"));
    dirs.add(bin);
  }
  return [...dirs];
}

function safeRealpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export interface ResolveArtifactOptions {
  /** `--artifact`. */
  artifact?: string;
  version: string;
  say: (line: string) => void;
  execPath?: string;
}

export async function resolveArtifact(options: ResolveArtifactOptions): Promise<Artifact> {
  if (options.artifact) {
    const path = resolve(options.artifact);
    if (!existsSync(path)) throw usageError(`--artifact ${options.artifact}: no such file`);
    return load(path, "flag");
  }
  const packager = sourcePackager();
  if (packager) {
    options.say("packaging the runner image zip from this checkout (linux-arm64 runner + Dockerfile)");
    const { packageRunner } = (await import(packager)) as {
      packageRunner: (out?: string) => Promise<string>;
    };
    const dir = mkdtempSync(join(tmpdir(), "crabbox-image-"));
    try {
      return { ...load(await packageRunner(join(dir, runnerZipName(options.version))), "packaged") };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const name = runnerZipName(options.version);
  for (const dir of installedArtifactDirs(options.execPath ?? process.execPath)) {
    const path = join(dir, name);
    if (existsSync(path)) return load(path, "installed");
  }
  throw new CrabboxError(`no runner image zip found (${name})`, {
    exitCode: 2,
    hint: `download ${name} from the crabbox release and pass --artifact <path>, or run from a source checkout`,
  });
}
