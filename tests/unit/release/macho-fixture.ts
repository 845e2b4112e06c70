/**
 * A tiny but well-formed 64-bit Mach-O executable (header, __TEXT, __LINKEDIT, LC_CODE_SIGNATURE),
 * so the signature checks run in milliseconds instead of on 100 MB Bun binaries.
 */
const MH_MAGIC_64 = 0xfeedfacf;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;
const CPU_TYPE_ARM64 = 0x0100000c;

export function fakeMachO(options: { pages?: number; seed?: number } = {}): Uint8Array {
  const pageSize = 4096;
  const pages = options.pages ?? 3;
  const textSize = pages * pageSize;
  const linkeditOff = textSize;
  const linkeditContent = 512;
  const dataoff = linkeditOff + linkeditContent; // 16-aligned
  const placeholder = 256; // a stale, too-small signature area, as Bun leaves it
  const bytes = new Uint8Array(dataoff + placeholder);
  const view = new DataView(bytes.buffer);
  let seed = options.seed ?? 1;
  for (let i = 0; i < dataoff; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    bytes[i] = seed >>> 24;
  }
  const cmds = 72 + 72 + 16;
  view.setUint32(0, MH_MAGIC_64, true);
  view.setUint32(4, CPU_TYPE_ARM64, true);
  view.setUint32(8, 0, true);
  view.setUint32(12, 2, true); // MH_EXECUTE
  view.setUint32(16, 3, true);
  view.setUint32(20, cmds, true);
  view.setUint32(24, 0, true);
  view.setUint32(28, 0, true);
  const segment = (at: number, name: string, vmaddr: number, fileoff: number, filesize: number) => {
    bytes.fill(0, at, at + 72);
    view.setUint32(at, LC_SEGMENT_64, true);
    view.setUint32(at + 4, 72, true);
    bytes.set(new TextEncoder().encode(name), at + 8);
    view.setBigUint64(at + 24, BigInt(vmaddr), true);
    view.setBigUint64(at + 32, BigInt(Math.ceil(filesize / 0x4000) * 0x4000), true);
    view.setBigUint64(at + 40, BigInt(fileoff), true);
    view.setBigUint64(at + 48, BigInt(filesize), true);
  };
  segment(32, "__TEXT", 0x100000000, 0, textSize);
  segment(104, "__LINKEDIT", 0x100000000 + textSize, linkeditOff, linkeditContent + placeholder);
  bytes.fill(0, 176, 192);
  view.setUint32(176, LC_CODE_SIGNATURE, true);
  view.setUint32(180, 16, true);
  view.setUint32(184, dataoff, true);
  view.setUint32(188, placeholder, true);
  bytes.fill(0, 192, 256);
  return bytes;
}
