import { expect, test } from "bun:test";
import { signAdhoc, verifyMachO } from "../../../scripts/macho.ts";
import { fakeMachO } from "./macho-fixture.ts";

test("an ad-hoc signature written by signAdhoc verifies page by page", () => {
  const signed = signAdhoc(fakeMachO({ pages: 5 }), "crabbox");
  const report = verifyMachO(signed);
  expect(report.ok).toBe(true);
  const [slice] = report.slices;
  expect(slice?.arch).toBe("arm64");
  const cd = slice?.directories[0];
  expect(cd?.hashType).toBe("sha256");
  expect(cd?.pageSize).toBe(4096);
  expect(cd?.identifier).toBe("crabbox");
  expect(cd?.adhoc).toBe(true);
  // 5 pages of __TEXT plus the partial page of __LINKEDIT before the signature.
  expect(cd?.pages).toBe(6);
  expect(cd?.mismatchedSpecialSlots).toEqual([]);
});

test("signing is deterministic", () => {
  const input = fakeMachO();
  expect(Buffer.from(signAdhoc(input, "crabbox")).equals(Buffer.from(signAdhoc(input, "crabbox")))).toBe(
    true,
  );
});

test("one changed byte in the code fails the check and names the page", () => {
  const signed = signAdhoc(fakeMachO({ pages: 4 }), "crabbox");
  const tampered = new Uint8Array(signed);
  tampered[2 * 4096 + 17] = ((tampered[2 * 4096 + 17] as number) + 1) & 0xff;
  const report = verifyMachO(tampered);
  expect(report.ok).toBe(false);
  expect(report.slices[0]?.directories[0]?.mismatchedPages).toEqual([2]);
  expect(report.slices[0]?.problems.join("\n")).toContain("page hashes differ");
});

test("a changed load command (the first page) fails the check", () => {
  const signed = signAdhoc(fakeMachO(), "crabbox");
  const tampered = new Uint8Array(signed);
  tampered[24] = 1; // mach header flags
  expect(verifyMachO(tampered).slices[0]?.directories[0]?.mismatchedPages).toEqual([0]);
});

test("a tampered requirements blob fails its special-slot hash", () => {
  const signed = signAdhoc(fakeMachO(), "crabbox");
  const view = new DataView(signed.buffer, signed.byteOffset, signed.byteLength);
  const dataoff = view.getUint32(184, true);
  const sig = new DataView(signed.buffer, signed.byteOffset + dataoff);
  // SuperBlob index entry 1 is the requirements blob (type 2).
  expect(sig.getUint32(12 + 8, false)).toBe(2);
  const reqOffset = sig.getUint32(16 + 8, false);
  const tampered = new Uint8Array(signed);
  tampered[dataoff + reqOffset + 11] = 1; // requirement count 0 -> 1
  const report = verifyMachO(tampered);
  expect(report.ok).toBe(false);
  expect(report.slices[0]?.directories[0]?.mismatchedSpecialSlots).toEqual(["requirements"]);
});

test("the stale placeholder signature and a missing one are reported, not accepted", () => {
  const unsigned = fakeMachO();
  const report = verifyMachO(unsigned);
  expect(report.ok).toBe(false);
  expect(report.slices[0]?.problems.join("\n")).toContain("SuperBlob");
  expect(verifyMachO(new Uint8Array(64)).ok).toBe(false);
});

test("a signature whose codeLimit stops short of the signature offset is invalid", () => {
  // Append a page after signing, as a tool that grows the file without re-signing would.
  const signed = signAdhoc(fakeMachO(), "crabbox");
  const view = new DataView(signed.buffer, signed.byteOffset, signed.byteLength);
  const grown = new Uint8Array(signed.length + 4096);
  grown.set(signed.subarray(0, view.getUint32(184, true)), 0);
  grown.set(signed.subarray(view.getUint32(184, true)), view.getUint32(184, true) + 4096);
  new DataView(grown.buffer).setUint32(184, view.getUint32(184, true) + 4096, true);
  expect(verifyMachO(grown).ok).toBe(false);
});

test("universal (fat) files are checked slice by slice", () => {
  const a = signAdhoc(fakeMachO({ seed: 1 }), "crabbox");
  const b = signAdhoc(fakeMachO({ seed: 2 }), "crabbox");
  const header = new Uint8Array(0x1000);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0xcafebabe, false);
  view.setUint32(4, 2, false);
  const offsetB = 0x1000 + Math.ceil(a.length / 0x1000) * 0x1000;
  for (const [index, offset, size] of [
    [0, 0x1000, a.length],
    [1, offsetB, b.length],
  ] as const) {
    view.setUint32(8 + index * 20, 0x0100000c, false);
    view.setUint32(8 + index * 20 + 8, offset, false);
    view.setUint32(8 + index * 20 + 12, size, false);
  }
  const fat = new Uint8Array(offsetB + b.length);
  fat.set(header, 0);
  fat.set(a, 0x1000);
  fat.set(b, offsetB);
  const report = verifyMachO(fat);
  expect(report.slices.length).toBe(2);
  expect(report.ok).toBe(true);
  fat[offsetB + 5000] = ((fat[offsetB + 5000] as number) + 1) & 0xff;
  const tampered = verifyMachO(fat);
  expect(tampered.ok).toBe(false);
  expect(tampered.slices.map((slice) => slice.problems.length > 0)).toEqual([false, true]);
});
