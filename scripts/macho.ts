/**
 * Checks the embedded code signature of Mach-O binaries the way the macOS kernel does when it maps
 * pages: LC_CODE_SIGNATURE → SuperBlob → CodeDirectory, then every page of the file (up to the
 * directory's codeLimit) hashed with the directory's hash type and compared with its code slots.
 * Bun-compiled darwin binaries have shipped with ad-hoc signatures whose page hashes did not match
 * the bytes Bun appended afterwards; Apple Silicon kills such a binary on first exec, and nothing on
 * Linux would notice. The release checks every darwin binary with this before and after re-signing.
 *
 * `signAdhoc` writes a fresh ad-hoc signature (what `codesign --force --sign -` makes: a SHA-256
 * CodeDirectory, an empty requirement set and an empty CMS blob), so a release built on Linux is
 * already runnable; the macOS release job still re-signs with Apple's codesign and verifies strictly.
 *
 *   bun scripts/macho.ts <binary>...          # one line per binary (and slice); exit 1 on any problem
 *   bun scripts/macho.ts --sign <binary>...   # re-sign ad hoc in place, then verify
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";

const MH_MAGIC_64 = 0xfeedfacf;
const MH_MAGIC = 0xfeedface;
const FAT_MAGIC = 0xcafebabe;
const FAT_MAGIC_64 = 0xcafebabf;
const LC_SEGMENT = 0x1;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;
const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSSLOT_CODEDIRECTORY = 0;
/** Alternate code directories (e.g. a SHA-256 one next to a SHA-1 one) live in slots 0x1000–0x1004. */
const CSSLOT_ALTERNATE_FIRST = 0x1000;
const CSSLOT_ALTERNATE_LAST = 0x1004;
const CSSLOT_SIGNATURESLOT = 0x10000;
/** Special slots whose blob is inside the signature itself, so its hash can be checked here. */
const SPECIAL_SLOTS: Record<number, string> = { 2: "requirements", 5: "entitlements", 7: "DER entitlements" };

const HASH_TYPES: Record<number, { name: string; algorithm: string; size: number }> = {
  1: { name: "sha1", algorithm: "sha1", size: 20 },
  2: { name: "sha256", algorithm: "sha256", size: 32 },
  3: { name: "sha256-truncated", algorithm: "sha256", size: 20 },
  4: { name: "sha384", algorithm: "sha384", size: 48 },
};

const CPU_NAMES: Record<number, string> = { 16777223: "x86_64", 16777228: "arm64", 7: "i386", 12: "arm" };

export interface CodeDirectoryReport {
  /** The SuperBlob slot the directory sits in (0, or 0x1000+ for alternates). */
  slot: number;
  identifier: string;
  hashType: string;
  pageSize: number;
  codeLimit: number;
  pages: number;
  /** Indices of code pages whose hash differs from the directory's slot. */
  mismatchedPages: number[];
  /** Special slots (requirements, entitlements) whose hash differs from the blob in the signature. */
  mismatchedSpecialSlots: string[];
  /** CS_ADHOC (0x2): signed without a certificate, as `codesign --sign -` and Bun do. */
  adhoc: boolean;
}

export interface SliceReport {
  arch: string;
  /** Offset of this slice in the file (0 for a thin binary). */
  offset: number;
  signed: boolean;
  directories: CodeDirectoryReport[];
  /** Everything wrong with this slice's signature, human-readable; empty = valid. */
  problems: string[];
}

export interface MachOReport {
  slices: SliceReport[];
  ok: boolean;
}

class Reader {
  constructor(
    private readonly view: DataView,
    private readonly little: boolean,
  ) {}
  u32(at: number): number {
    return this.view.getUint32(at, this.little);
  }
  u64(at: number): number {
    return Number(this.view.getBigUint64(at, this.little));
  }
}

function cString(bytes: Uint8Array, at: number, end: number): string {
  let stop = at;
  while (stop < end && bytes[stop] !== 0) stop++;
  return new TextDecoder().decode(bytes.subarray(at, stop));
}

function digest(algorithm: string, data: Uint8Array, size: number): Buffer {
  return createHash(algorithm).update(data).digest().subarray(0, size);
}

/** Verifies one CodeDirectory blob against the slice's bytes and the SuperBlob's other blobs. */
function checkCodeDirectory(
  slice: Uint8Array,
  blob: Uint8Array,
  slot: number,
  blobsByType: Map<number, Uint8Array>,
  problems: string[],
): CodeDirectoryReport | undefined {
  const be = new Reader(new DataView(blob.buffer, blob.byteOffset, blob.byteLength), false);
  if (blob.length < 44 || be.u32(0) !== CSMAGIC_CODEDIRECTORY) {
    problems.push(`slot ${slot}: not a CodeDirectory`);
    return undefined;
  }
  const length = be.u32(4);
  const version = be.u32(8);
  const flags = be.u32(12);
  const hashOffset = be.u32(16);
  const identOffset = be.u32(20);
  const nSpecialSlots = be.u32(24);
  const nCodeSlots = be.u32(28);
  let codeLimit = be.u32(32);
  const hashSize = blob[36] as number;
  const hashTypeId = blob[37] as number;
  const pageShift = blob[39] as number;
  // codeLimit64 (version ≥ 0x20300) replaces codeLimit for files over 4 GiB.
  if (version >= 0x20300 && length >= 64) {
    const limit64 = Number(new DataView(blob.buffer, blob.byteOffset).getBigUint64(56, false));
    if (limit64 !== 0) codeLimit = limit64;
  }
  const hashType = HASH_TYPES[hashTypeId];
  if (!hashType) {
    problems.push(`slot ${slot}: unknown hash type ${hashTypeId}`);
    return undefined;
  }
  if (hashSize !== hashType.size) {
    problems.push(`slot ${slot}: hash size ${hashSize} does not fit ${hashType.name}`);
    return undefined;
  }
  if (
    length > blob.length ||
    hashOffset + nCodeSlots * hashSize > length ||
    hashOffset < nSpecialSlots * hashSize
  ) {
    problems.push(`slot ${slot}: CodeDirectory slots lie outside the directory`);
    return undefined;
  }
  if (codeLimit > slice.length) {
    problems.push(`slot ${slot}: codeLimit ${codeLimit} is past the end of the file (${slice.length})`);
    return undefined;
  }
  // pageShift 0 means one page covering everything up to codeLimit.
  const pageSize = pageShift === 0 ? codeLimit : 2 ** pageShift;
  const pages = pageSize === 0 ? 0 : Math.ceil(codeLimit / pageSize);
  if (pages !== nCodeSlots) {
    problems.push(
      `slot ${slot}: ${nCodeSlots} code slots for ${pages} pages of ${pageSize} bytes up to codeLimit ${codeLimit}`,
    );
  }
  const mismatchedPages: number[] = [];
  for (let page = 0; page < Math.min(pages, nCodeSlots); page++) {
    const start = page * pageSize;
    const actual = digest(
      hashType.algorithm,
      slice.subarray(start, Math.min(start + pageSize, codeLimit)),
      hashSize,
    );
    const expected = blob.subarray(hashOffset + page * hashSize, hashOffset + (page + 1) * hashSize);
    if (!actual.equals(expected)) mismatchedPages.push(page);
  }
  if (mismatchedPages.length > 0) {
    const shown = mismatchedPages.slice(0, 5).join(", ");
    problems.push(
      `slot ${slot}: ${mismatchedPages.length} of ${pages} page hashes differ (pages ${shown}${mismatchedPages.length > 5 ? ", …" : ""})`,
    );
  }
  const mismatchedSpecialSlots: string[] = [];
  for (const [typeText, name] of Object.entries(SPECIAL_SLOTS)) {
    const type = Number(typeText);
    if (type > nSpecialSlots) continue;
    const expected = blob.subarray(hashOffset - type * hashSize, hashOffset - (type - 1) * hashSize);
    const empty = expected.every((byte) => byte === 0);
    const special = blobsByType.get(type);
    if (empty && !special) continue;
    if (!special) {
      mismatchedSpecialSlots.push(name);
      problems.push(`slot ${slot}: the ${name} slot is set but the signature has no ${name} blob`);
      continue;
    }
    if (!digest(hashType.algorithm, special, hashSize).equals(expected)) {
      mismatchedSpecialSlots.push(name);
      problems.push(`slot ${slot}: the ${name} blob does not match its hash`);
    }
  }
  return {
    slot,
    identifier: identOffset < length ? cString(blob, identOffset, length) : "",
    hashType: hashType.name,
    pageSize,
    codeLimit,
    pages,
    mismatchedPages,
    mismatchedSpecialSlots,
    adhoc: (flags & 0x2) !== 0,
  };
}

/** Parses one thin Mach-O image and verifies its embedded signature. */
function checkSlice(slice: Uint8Array, offset: number): SliceReport {
  const view = new DataView(slice.buffer, slice.byteOffset, slice.byteLength);
  const problems: string[] = [];
  const magicLe = slice.length >= 4 ? view.getUint32(0, true) : 0;
  const magicBe = slice.length >= 4 ? view.getUint32(0, false) : 0;
  const is64 = magicLe === MH_MAGIC_64 || magicBe === MH_MAGIC_64;
  const little = magicLe === MH_MAGIC_64 || magicLe === MH_MAGIC;
  if (!is64 && magicLe !== MH_MAGIC && magicBe !== MH_MAGIC) {
    return { arch: "unknown", offset, signed: false, directories: [], problems: ["not a Mach-O file"] };
  }
  const r = new Reader(view, little);
  const cpu = r.u32(4);
  const arch = CPU_NAMES[cpu] ?? `cpu ${cpu.toString(16)}`;
  const ncmds = r.u32(16);
  const sizeofcmds = r.u32(20);
  let at = is64 ? 32 : 28;
  const end = at + sizeofcmds;
  if (end > slice.length)
    return { arch, offset, signed: false, directories: [], problems: ["load commands run past the end"] };
  let signature: { dataoff: number; datasize: number } | undefined;
  let linkedit: { fileoff: number; filesize: number } | undefined;
  for (let i = 0; i < ncmds; i++) {
    if (at + 8 > end) {
      problems.push("load commands are truncated");
      break;
    }
    const cmd = r.u32(at);
    const cmdsize = r.u32(at + 4);
    if (cmdsize < 8 || at + cmdsize > end) {
      problems.push(`load command ${i} has a bad size ${cmdsize}`);
      break;
    }
    if (cmd === LC_CODE_SIGNATURE) signature = { dataoff: r.u32(at + 8), datasize: r.u32(at + 12) };
    if (cmd === LC_SEGMENT_64 || cmd === LC_SEGMENT) {
      const name = cString(slice, at + 8, at + 24);
      if (name === "__LINKEDIT") {
        linkedit =
          cmd === LC_SEGMENT_64
            ? { fileoff: r.u64(at + 40), filesize: r.u64(at + 48) }
            : { fileoff: r.u32(at + 32), filesize: r.u32(at + 36) };
      }
    }
    at += cmdsize;
  }
  if (!signature)
    return { arch, offset, signed: false, directories: [], problems: [...problems, "no LC_CODE_SIGNATURE"] };
  const { dataoff, datasize } = signature;
  if (dataoff + datasize > slice.length) {
    problems.push(`the signature (${dataoff}+${datasize}) runs past the end of the file (${slice.length})`);
    return { arch, offset, signed: true, directories: [], problems };
  }
  // The kernel requires the signature inside __LINKEDIT; `codesign --verify --strict` also wants it last.
  if (linkedit && (dataoff < linkedit.fileoff || dataoff + datasize > linkedit.fileoff + linkedit.filesize)) {
    problems.push("the signature lies outside the __LINKEDIT segment");
  }
  const sig = slice.subarray(dataoff, dataoff + datasize);
  const be = new Reader(new DataView(sig.buffer, sig.byteOffset, sig.byteLength), false);
  if (sig.length < 12 || be.u32(0) !== CSMAGIC_EMBEDDED_SIGNATURE) {
    problems.push("LC_CODE_SIGNATURE does not point at an embedded-signature SuperBlob");
    return { arch, offset, signed: true, directories: [], problems };
  }
  const superLength = be.u32(4);
  const count = be.u32(8);
  if (superLength > sig.length || 12 + count * 8 > superLength) {
    problems.push("the SuperBlob's index runs past its length");
    return { arch, offset, signed: true, directories: [], problems };
  }
  const blobsByType = new Map<number, Uint8Array>();
  const directories: [number, Uint8Array][] = [];
  for (let i = 0; i < count; i++) {
    const type = be.u32(12 + i * 8);
    const blobOffset = be.u32(16 + i * 8);
    if (blobOffset + 8 > superLength) {
      problems.push(`blob ${i} lies outside the SuperBlob`);
      continue;
    }
    const blobLength = be.u32(blobOffset + 4);
    if (blobOffset + blobLength > superLength) {
      problems.push(`blob ${i} runs past the SuperBlob`);
      continue;
    }
    const blob = sig.subarray(blobOffset, blobOffset + blobLength);
    blobsByType.set(type, blob);
    const isDirectory =
      type === CSSLOT_CODEDIRECTORY || (type >= CSSLOT_ALTERNATE_FIRST && type <= CSSLOT_ALTERNATE_LAST);
    if (isDirectory) directories.push([type, blob]);
    else if (type === CSSLOT_SIGNATURESLOT && blobLength > 8) {
      // A CMS blob is present (a real certificate signature); its chain is not something we can check.
    }
  }
  if (directories.length === 0) problems.push("the signature has no CodeDirectory");
  const reports: CodeDirectoryReport[] = [];
  for (const [type, blob] of directories) {
    const report = checkCodeDirectory(slice, blob, type, blobsByType, problems);
    if (!report) continue;
    if (report.codeLimit !== dataoff) {
      problems.push(`slot ${type}: codeLimit ${report.codeLimit} is not the signature offset ${dataoff}`);
    }
    reports.push(report);
  }
  return { arch, offset, signed: true, directories: reports, problems };
}

/** Verifies every slice of a thin or universal Mach-O file. */
export function verifyMachO(bytes: Uint8Array): MachOReport {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.length >= 8 ? view.getUint32(0, false) : 0;
  const slices: SliceReport[] = [];
  if (magic === FAT_MAGIC || magic === FAT_MAGIC_64) {
    const count = view.getUint32(4, false);
    const entry = magic === FAT_MAGIC_64 ? 32 : 20;
    for (let i = 0; i < count; i++) {
      const at = 8 + i * entry;
      const offset =
        magic === FAT_MAGIC_64 ? Number(view.getBigUint64(at + 8, false)) : view.getUint32(at + 8, false);
      const size =
        magic === FAT_MAGIC_64 ? Number(view.getBigUint64(at + 16, false)) : view.getUint32(at + 12, false);
      if (offset + size > bytes.length) {
        slices.push({
          arch: "unknown",
          offset,
          signed: false,
          directories: [],
          problems: ["slice past the end"],
        });
        continue;
      }
      slices.push(checkSlice(bytes.subarray(offset, offset + size), offset));
    }
  } else {
    slices.push(checkSlice(bytes, 0));
  }
  return {
    slices,
    ok: slices.length > 0 && slices.every((slice) => slice.signed && slice.problems.length === 0),
  };
}

/** One line per slice: `<file> <arch>: ok (…)` or `<file> <arch>: INVALID: …`. */
export function describeReport(file: string, report: MachOReport): string[] {
  return report.slices.map((slice) => {
    const cd = slice.directories[0];
    const what = cd
      ? `${cd.hashType}, ${cd.pages} pages of ${cd.pageSize}, codeLimit ${cd.codeLimit}${cd.adhoc ? ", ad-hoc" : ""}, identifier ${cd.identifier}`
      : "no code directory";
    return slice.problems.length === 0
      ? `${file} ${slice.arch}: signature ok (${what})`
      : `${file} ${slice.arch}: signature INVALID: ${slice.problems.join("; ")}`;
  });
}

const CSMAGIC_REQUIREMENTS = 0xfade0c01;
const CSMAGIC_BLOBWRAPPER = 0xfade0b01;
const CSSLOT_REQUIREMENTS = 2;
const CS_ADHOC = 0x2;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const MH_EXECUTE = 0x2;
const SIGN_PAGE_SHIFT = 12;
const SHA256_SIZE = 32;

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/**
 * Replaces the signature of a thin 64-bit little-endian Mach-O executable with a fresh ad-hoc one
 * and returns the new file. Deterministic: the same input and identifier give the same bytes.
 * The signature stays where LC_CODE_SIGNATURE puts it; its size, __LINKEDIT's file and VM size and
 * the file length follow the new signature, because a stale one is often too small for the pages
 * appended after it was made.
 */
export function signAdhoc(input: Uint8Array, identifier: string): Uint8Array {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  if (input.length < 32 || view.getUint32(0, true) !== MH_MAGIC_64) {
    throw new Error("signAdhoc handles thin 64-bit little-endian Mach-O files only");
  }
  const filetype = view.getUint32(12, true);
  const ncmds = view.getUint32(16, true);
  let at = 32;
  let signatureCmd: number | undefined;
  let linkeditCmd: number | undefined;
  let text: { fileoff: number; filesize: number } | undefined;
  for (let i = 0; i < ncmds; i++) {
    const cmd = view.getUint32(at, true);
    const cmdsize = view.getUint32(at + 4, true);
    if (cmd === LC_CODE_SIGNATURE) signatureCmd = at;
    if (cmd === LC_SEGMENT_64) {
      const name = cString(input, at + 8, at + 24);
      if (name === "__LINKEDIT") linkeditCmd = at;
      if (name === "__TEXT") {
        text = {
          fileoff: Number(view.getBigUint64(at + 40, true)),
          filesize: Number(view.getBigUint64(at + 48, true)),
        };
      }
    }
    at += cmdsize;
  }
  if (signatureCmd === undefined || linkeditCmd === undefined || !text) {
    throw new Error("signAdhoc needs LC_CODE_SIGNATURE, __LINKEDIT and __TEXT (sign with codesign instead)");
  }
  const dataoff = view.getUint32(signatureCmd + 8, true);
  const linkeditFileoff = Number(view.getBigUint64(linkeditCmd + 40, true));
  const linkeditVmsize = Number(view.getBigUint64(linkeditCmd + 32, true));
  if (dataoff < linkeditFileoff || dataoff > input.length) {
    throw new Error("LC_CODE_SIGNATURE does not point into __LINKEDIT");
  }

  const ident = Buffer.from(`${identifier}\0`, "utf8");
  const pageSize = 2 ** SIGN_PAGE_SHIFT;
  const nCodeSlots = Math.ceil(dataoff / pageSize);
  const nSpecialSlots = CSSLOT_REQUIREMENTS;
  const cdHeader = 88; // through execSegFlags (CodeDirectory version 0x20400)
  const hashOffset = cdHeader + ident.length + nSpecialSlots * SHA256_SIZE;
  const cdLength = hashOffset + nCodeSlots * SHA256_SIZE;
  const requirements = Buffer.alloc(12);
  requirements.writeUInt32BE(CSMAGIC_REQUIREMENTS, 0);
  requirements.writeUInt32BE(12, 4);
  requirements.writeUInt32BE(0, 8);
  const cms = Buffer.alloc(8);
  cms.writeUInt32BE(CSMAGIC_BLOBWRAPPER, 0);
  cms.writeUInt32BE(8, 4);
  const blobs: [number, number][] = [
    [CSSLOT_CODEDIRECTORY, cdLength],
    [CSSLOT_REQUIREMENTS, requirements.length],
    [CSSLOT_SIGNATURESLOT, cms.length],
  ];
  const superHeader = 12 + blobs.length * 8;
  const superLength = superHeader + blobs.reduce((sum, [, length]) => sum + length, 0);
  const datasize = alignUp(superLength, 16);

  // Header and load commands first: the first page's hash covers them.
  const out = Buffer.alloc(dataoff + datasize);
  out.set(input.subarray(0, dataoff), 0);
  const outView = new DataView(out.buffer, out.byteOffset, out.byteLength);
  outView.setUint32(signatureCmd + 12, datasize, true);
  const linkeditFilesize = dataoff + datasize - linkeditFileoff;
  outView.setBigUint64(linkeditCmd + 48, BigInt(linkeditFilesize), true);
  // Apple's tools keep __LINKEDIT's VM size page-rounded (16 KiB pages on Apple Silicon).
  outView.setBigUint64(
    linkeditCmd + 32,
    BigInt(Math.max(linkeditVmsize, alignUp(linkeditFilesize, 0x4000))),
    true,
  );

  const sig = out.subarray(dataoff);
  sig.writeUInt32BE(CSMAGIC_EMBEDDED_SIGNATURE, 0);
  sig.writeUInt32BE(superLength, 4);
  sig.writeUInt32BE(blobs.length, 8);
  let blobOffset = superHeader;
  const offsets = new Map<number, number>();
  blobs.forEach(([type, length], index) => {
    sig.writeUInt32BE(type, 12 + index * 8);
    sig.writeUInt32BE(blobOffset, 16 + index * 8);
    offsets.set(type, blobOffset);
    blobOffset += length;
  });
  sig.set(requirements, offsets.get(CSSLOT_REQUIREMENTS) as number);
  sig.set(cms, offsets.get(CSSLOT_SIGNATURESLOT) as number);

  const cd = sig.subarray(offsets.get(CSSLOT_CODEDIRECTORY) as number);
  cd.writeUInt32BE(CSMAGIC_CODEDIRECTORY, 0);
  cd.writeUInt32BE(cdLength, 4);
  cd.writeUInt32BE(0x20400, 8);
  cd.writeUInt32BE(CS_ADHOC, 12);
  cd.writeUInt32BE(hashOffset, 16);
  cd.writeUInt32BE(cdHeader, 20);
  cd.writeUInt32BE(nSpecialSlots, 24);
  cd.writeUInt32BE(nCodeSlots, 28);
  cd.writeUInt32BE(dataoff, 32);
  cd[36] = SHA256_SIZE;
  cd[37] = 2; // sha256
  cd[38] = 0;
  cd[39] = SIGN_PAGE_SHIFT;
  // 40 spare2, 44 scatterOffset, 48 teamOffset, 52 spare3, 56 codeLimit64: all zero.
  cd.writeBigUInt64BE(BigInt(text.fileoff), 64);
  cd.writeBigUInt64BE(BigInt(text.filesize), 72);
  cd.writeBigUInt64BE(BigInt(filetype === MH_EXECUTE ? CS_EXECSEG_MAIN_BINARY : 0), 80);
  cd.set(ident, cdHeader);
  digest("sha256", requirements, SHA256_SIZE).copy(cd, hashOffset - CSSLOT_REQUIREMENTS * SHA256_SIZE);
  for (let page = 0; page < nCodeSlots; page++) {
    const start = page * pageSize;
    digest("sha256", out.subarray(start, Math.min(start + pageSize, dataoff)), SHA256_SIZE).copy(
      cd,
      hashOffset + page * SHA256_SIZE,
    );
  }
  return out;
}

if (import.meta.main) {
  const sign = process.argv[2] === "--sign";
  const files = process.argv.slice(sign ? 3 : 2);
  if (files.length === 0) {
    process.stderr.write("usage: bun scripts/macho.ts [--sign] <mach-o binary>...\n");
    process.exit(2);
  }
  let ok = true;
  for (const file of files) {
    if (sign) writeFileSync(file, signAdhoc(readFileSync(file), basename(file)));
    const report = verifyMachO(readFileSync(file));
    for (const line of describeReport(file, report)) process.stdout.write(`${line}\n`);
    ok &&= report.ok;
  }
  process.exit(ok ? 0 : 1);
}
