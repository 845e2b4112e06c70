/**
 * `npm run package:runner` → dist/crabbox-lambda-microvm.zip: the MicroVM image's code artifact,
 * holding exactly `Dockerfile`, the linux-arm64 runner binary and a short README. It replaces the
 * upstream `zip -r … Dockerfile *.go` step: the image copies a prebuilt binary instead of building
 * Go source. The zip is written here (fixed timestamps, sorted members, deflate) because `zip` is
 * not on a fresh Debian, and so two packagings of the same inputs give the same bytes.
 *
 *   bun scripts/package-runner.ts [--out path.zip]
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deflateRawSync } from "node:zlib";
import { parseRunnerDockerfile } from "../src/image/dockerfile.ts";
import { compile } from "./build.ts";
import { repoRoot } from "./bun-runtime.ts";

export const RUNNER_BINARY_NAME = "crabbox-runner";
export const ZIP_NAME = "crabbox-lambda-microvm.zip";

export interface ZipMember {
  name: string;
  data: Uint8Array;
  /** Unix permission bits recorded in the external attributes. */
  mode: number;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++)
    crc = (CRC_TABLE[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** DOS date for 1980-01-01, time 00:00: the earliest a zip can say, and always the same. */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
const DOS_TIME = 0;

/** A deterministic zip (deflate, UTF-8 names, Unix modes). No zip64: members must stay under 4 GiB. */
export function writeZip(members: ZipMember[]): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const member of [...members].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const name = Buffer.from(member.name, "utf8");
    const compressed = deflateRawSync(member.data, { level: 6 });
    const crc = crc32(member.data);
    if (member.data.length >= 0xffffffff)
      throw new Error(`${member.name} is too large for a zip without zip64`);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: deflate
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(member.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, compressed);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by Unix, so the external attributes carry a mode
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(member.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((((0o100000 | (member.mode & 0o7777)) << 16) >>> 0) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + compressed.length;
  }
  const centralSize = centrals.reduce((sum, part) => sum + part.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}

/** Builds the linux-arm64 runner and writes the image zip; returns the zip path. */
export async function packageRunner(out = join(repoRoot, "dist", ZIP_NAME)): Promise<string> {
  const dist = join(repoRoot, "dist");
  mkdirSync(dist, { recursive: true });
  const dockerfileText = readFileSync(join(repoRoot, "runner/Dockerfile"), "utf8");
  // The zip must hold what the Dockerfile copies and the CMD must start what it copied.
  const dockerfile = parseRunnerDockerfile(dockerfileText);
  const copy = dockerfile.copies.find((entry) => entry.sources.includes(RUNNER_BINARY_NAME));
  if (!copy) throw new Error(`runner/Dockerfile does not COPY ${RUNNER_BINARY_NAME}`);
  if (dockerfile.cmd[0] !== copy.dest) {
    throw new Error(
      `runner/Dockerfile CMD starts ${dockerfile.cmd[0]}, but the runner is copied to ${copy.dest}`,
    );
  }
  const binary = join(dist, `${RUNNER_BINARY_NAME}-linux-arm64`);
  compile({ entry: "runner/main.ts", outfile: binary, target: "linux-arm64" });
  const zip = writeZip([
    { name: "Dockerfile", data: Buffer.from(dockerfileText), mode: 0o644 },
    { name: RUNNER_BINARY_NAME, data: readFileSync(binary), mode: 0o755 },
    { name: "README.md", data: readFileSync(join(repoRoot, "runner/README.md")), mode: 0o644 },
  ]);
  writeFileSync(out, zip);
  const sha = createHash("sha256").update(zip).digest("hex");
  process.stderr.write(`wrote ${out} (${(zip.length / 1024 / 1024).toFixed(1)} MiB, sha256 ${sha})\n`);
  return out;
}

if (import.meta.main) {
  const index = process.argv.indexOf("--out");
  const out = index === -1 ? undefined : process.argv[index + 1];
  await packageRunner(out);
}
