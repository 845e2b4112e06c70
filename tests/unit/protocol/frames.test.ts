import { describe, expect, test } from "bun:test";
import { outputLineBytes, streamEncoding } from "../../../runner/exec.ts";
import {
  decodeExecFrames,
  encodeEventFrame,
  encodeFrame,
  FRAME_EVENT,
  FRAME_HEADER_BYTES,
  FRAME_STDOUT,
  FrameError,
} from "../../../src/protocol/frames.ts";
import {
  decodeExecEvents,
  encodeEvent,
  encodeEventBytes,
  outputBytes,
  outputPieces,
  toBase64,
} from "../../../src/protocol/ndjson.ts";
import type { ExecEvent } from "../../../src/protocol/types.ts";

/**
 * The binary exec stream: the same events as NDJSON, output raw. Whatever the network does to the
 * stream's chunking, every event and every output byte must come out as it went in.
 */

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

function output(seq: number, type: "stdout" | "stderr", bytes: Uint8Array): ExecEvent {
  return { seq, type, data: toBase64(bytes) };
}

const samples = [0, 1, 2, 3, 64, 65535, 65536].map((length) =>
  Uint8Array.from({ length }, (_, i) => (i * 131 + length) & 0xff),
);
const EVENTS: ExecEvent[] = [
  { seq: 1, type: "started", execId: "e-1", pid: 42, startedAtMs: 1_700_000_000_000 },
  output(2, "stdout", ALL_BYTES),
  ...samples.map((bytes, i) => output(i + 3, i % 2 ? "stderr" : "stdout", bytes)),
  { seq: samples.length + 3, type: "heartbeat" },
  {
    seq: samples.length + 4,
    type: "exit",
    exitCode: null,
    signal: "SIGTERM",
    reason: "timeout",
    durationMs: 9,
  },
];

function concat(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

async function* chunked(wire: Uint8Array, size: number) {
  for (let offset = 0; offset < wire.length; offset += size) yield wire.slice(offset, offset + size);
}

/** Events as plain JSON values, and each output event's bytes both ways it can be read. */
async function decodeAll(source: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>) {
  const events: unknown[] = [];
  const outputs: number[][] = [];
  for await (const event of decodeExecFrames(source)) {
    events.push(JSON.parse(JSON.stringify(event)));
    if (event.type === "stdout" || event.type === "stderr") {
      const joined = [...concat([...outputPieces(event)])];
      expect([...outputBytes(event)]).toEqual(joined);
      outputs.push(joined);
    }
  }
  return { events, outputs };
}

const wire = concat(EVENTS.map(encodeEventFrame));

describe("exec frames", () => {
  test("every event and every output byte (all 256 values) round-trips", async () => {
    const decoded = await decodeAll(chunked(wire, 1 << 20));
    expect(decoded.events).toEqual(EVENTS);
    expect(decoded.outputs).toEqual([ALL_BYTES, ...samples].map((bytes) => [...bytes]));
  });

  test("frames split at any boundary decode the same", async () => {
    for (const size of [1, 2, 7, 12, 13, 14, 4096, 65_549, 65_550, 100_000]) {
      const decoded = await decodeAll(chunked(wire, size));
      expect(decoded.events).toEqual(EVENTS);
      expect(decoded.outputs[0]).toEqual([...ALL_BYTES]);
    }
  });

  test("a web stream decodes like an async iterable", async () => {
    const decoded = await decodeAll(new Blob([new Uint8Array(wire)]).stream());
    expect(decoded.events).toEqual(EVENTS);
  });

  test("decode the same events as the NDJSON of the same events", async () => {
    const ndjson = new TextEncoder().encode(EVENTS.map(encodeEvent).join(""));
    const viaNdjson: unknown[] = [];
    for await (const event of decodeExecEvents(chunked(ndjson, 4096))) {
      viaNdjson.push(JSON.parse(JSON.stringify(event)));
    }
    expect((await decodeAll(chunked(wire, 4096))).events).toEqual(viaNdjson);
  });

  test("header: kind, seq (8 bytes) and length, big-endian; a JSON frame is the NDJSON line", () => {
    const seq = 2 ** 40 + 5;
    const frame = encodeFrame(FRAME_STDOUT, seq, new Uint8Array([9, 8, 7]));
    expect([...frame]).toEqual([1, 0, 0, 1, 0, 0, 0, 0, 5, 0, 0, 0, 3, 9, 8, 7]);
    const exit = EVENTS.at(-1) as ExecEvent;
    const json = encodeEventFrame(exit);
    const line = encodeEventBytes(exit);
    expect(json[0]).toBe(FRAME_EVENT);
    expect([...json.subarray(FRAME_HEADER_BYTES)]).toEqual([...line.subarray(0, line.length - 1)]);
  });

  test("seqs beyond 2^32 survive", async () => {
    const event = output(2 ** 33 + 1, "stderr", ALL_BYTES);
    const decoded = await decodeAll(chunked(encodeEventFrame(event), 5));
    expect(decoded.events).toEqual([event]);
  });

  const malformed: [string, Uint8Array][] = [
    ["an unknown kind", encodeFrame(7 as 0, 1, new Uint8Array(1))],
    ["seq 0", encodeFrame(FRAME_STDOUT, 0, new Uint8Array(1))],
    ["a payload over the limit", encodeFrame(FRAME_STDOUT, 1, new Uint8Array(0)).fill(0xff, 9)],
    ["an event frame that is not JSON", encodeFrame(FRAME_EVENT, 1, new TextEncoder().encode("{nope"))],
    [
      "an event frame whose seq disagrees with its header",
      encodeFrame(FRAME_EVENT, 2, new TextEncoder().encode('{"seq":3,"type":"heartbeat"}')),
    ],
    [
      "output inside an event frame",
      encodeFrame(FRAME_EVENT, 1, new TextEncoder().encode('{"seq":1,"type":"stdout","data":"AA=="}')),
    ],
    [
      "an unknown event type",
      encodeFrame(FRAME_EVENT, 1, new TextEncoder().encode('{"seq":1,"type":"shrug"}')),
    ],
  ];
  for (const [what, frame] of malformed) {
    test(`${what} is a FrameError`, async () => {
      await expect(decodeAll(chunked(frame, 3))).rejects.toBeInstanceOf(FrameError);
    });
  }

  test("a stream ending mid-frame is a lost connection, not a protocol error", async () => {
    for (const cut of [5, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + 20, wire.length - 1]) {
      const error = await decodeAll(chunked(wire.subarray(0, cut), 4)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(error).not.toBeInstanceOf(FrameError);
      expect(String(error)).toContain("mid-frame");
    }
  });
});

describe("runner side of the encodings", () => {
  test("frames only when Accept lists them without q=0", () => {
    expect(streamEncoding(null)).toBe("ndjson");
    expect(streamEncoding("application/x-ndjson")).toBe("ndjson");
    expect(streamEncoding("*/*")).toBe("ndjson");
    expect(streamEncoding("application/vnd.crabbox.exec-frames")).toBe("frames");
    expect(streamEncoding("application/x-ndjson;q=0.5, Application/Vnd.Crabbox.Exec-Frames")).toBe("frames");
    expect(streamEncoding("application/vnd.crabbox.exec-frames; q=0, application/x-ndjson")).toBe("ndjson");
    expect(streamEncoding("application/vnd.crabbox.exec-frames;q=0.1")).toBe("frames");
  });

  test("output events are counted at their NDJSON length, whichever encoding is read", () => {
    for (const [seq, length] of [
      [1, 0],
      [9, 1],
      [10, 2],
      [12345, 3],
      [7, 65536],
    ] as const) {
      for (const type of ["stdout", "stderr"] as const) {
        const line = encodeEventBytes(output(seq, type, new Uint8Array(length)));
        expect(outputLineBytes(seq, type, length)).toBe(line.length);
      }
    }
  });
});
