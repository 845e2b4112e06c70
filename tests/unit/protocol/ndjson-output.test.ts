import { describe, expect, test } from "bun:test";
import { decodeExecEvents, encodeEvent, outputBytes, toBase64 } from "../../../src/protocol/ndjson.ts";
import type { ExecEvent } from "../../../src/protocol/types.ts";

/**
 * Output lines in the runner's shape take a fast path (base64 decoded from the line's bytes);
 * whatever path a line takes, the events and their bytes must be exactly what JSON.parse would give.
 */

const enc = new TextEncoder();

async function* chunked(wire: Uint8Array, size: number) {
  for (let offset = 0; offset < wire.length; offset += size) yield wire.slice(offset, offset + size);
}

async function decodeAll(wire: Uint8Array | string, size = 1 << 20) {
  const bytes = typeof wire === "string" ? enc.encode(wire) : wire;
  const events: ExecEvent[] = [];
  const outputs: number[][] = [];
  for await (const event of decodeExecEvents(chunked(bytes, size))) {
    events.push(event);
    if (event.type === "stdout" || event.type === "stderr") outputs.push([...outputBytes(event)]);
  }
  return { events, outputs };
}

function output(seq: number, type: "stdout" | "stderr", bytes: Uint8Array): ExecEvent {
  return { seq, type, data: toBase64(bytes) };
}

describe("exec event decoding: output lines", () => {
  const samples = [0, 1, 2, 3, 4, 5, 64, 65535, 65536].map((length) =>
    new Uint8Array(length).map((_, i) => (i * 131 + length) & 0xff),
  );

  test("every padding and length decodes to the same events and bytes as JSON.parse would", async () => {
    const events: ExecEvent[] = [
      { seq: 1, type: "started", execId: "e", pid: 7, startedAtMs: 1 },
      ...samples.map((bytes, i) => output(i + 2, i % 2 ? "stderr" : "stdout", bytes)),
      { seq: samples.length + 2, type: "exit", exitCode: 0, signal: null, reason: "exited", durationMs: 3 },
    ];
    const wire = events.map(encodeEvent).join("");
    const decoded = await decodeAll(wire);
    expect(decoded.events).toEqual(events);
    expect(decoded.outputs).toEqual(samples.map((bytes) => [...bytes]));
    expect(JSON.parse(JSON.stringify(decoded.events))).toEqual(events);
  });

  test("lines split at every byte boundary decode the same", async () => {
    const events = [
      output(1, "stdout", samples[7] as Uint8Array),
      output(12345, "stderr", samples[3] as Uint8Array),
    ];
    const wire = enc.encode(events.map(encodeEvent).join(""));
    for (const size of [1, 2, 3, 7, 4096, 65536, 87_000]) {
      const decoded = await decodeAll(wire, size);
      expect(decoded.events).toEqual(events);
      expect(decoded.outputs).toEqual([[...(samples[7] as Uint8Array)], [...(samples[3] as Uint8Array)]]);
    }
  });

  test("other spellings of an output event take the JSON path and give the same bytes", async () => {
    const bytes = new Uint8Array([0xff, 0xfe, 0xfd, 0x00, 0x3f]);
    const data = toBase64(bytes);
    const spellings = [
      `{"type":"stdout","seq":4,"data":"${data}"}`,
      `{"seq":4,"type":"stdout","data":"${data.replace(/\//g, "\\/")}"}`,
      `{"seq":4,"type":"stdout","data":"${data}","extra":true}`,
      `{ "seq": 4, "type": "stdout", "data": "${data}" }`,
      `{"seq":4,"type":"stdout","data":"${data}"}  `,
    ];
    for (const line of spellings) {
      const decoded = await decodeAll(`${line}\n`);
      expect(decoded.events).toEqual([{ seq: 4, type: "stdout", data }]);
      expect(decoded.outputs).toEqual([[...bytes]]);
    }
  });

  test("bad base64 or a bad seq in the runner's shape is still an error", async () => {
    for (const data of ["abc", "ab=c", "a-bc", "!!!!", "ab c", "====", "A==="]) {
      await expect(decodeAll(`{"seq":1,"type":"stdout","data":"${data}"}\n`)).rejects.toThrow(/base64/);
    }
    await expect(decodeAll(`{"seq":01,"type":"stdout","data":"AA=="}\n`)).rejects.toThrow(/malformed/);
    await expect(decodeAll(`{"seq":0,"type":"stdout","data":"AA=="}\n`)).rejects.toThrow(/seq/);
    await expect(decodeAll(`{"seq":1,"type":"stdout","data":"AA=="\n`)).rejects.toThrow(/malformed/);
  });

  test("outputBytes also decodes an event built by hand", () => {
    expect([...outputBytes({ seq: 1, type: "stdout", data: "/wD+" })]).toEqual([0xff, 0x00, 0xfe]);
  });
});
