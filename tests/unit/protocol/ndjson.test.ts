import { describe, expect, test } from "bun:test";
import {
  decodeExecEvents,
  decodeNdjson,
  encodeEvent,
  fromBase64,
  parseExecEvent,
  toBase64,
} from "../../../src/protocol/ndjson.ts";
import type { ExecEvent } from "../../../src/protocol/types.ts";

const enc = new TextEncoder();

async function* chunks(...parts: (string | Uint8Array)[]) {
  for (const part of parts) yield typeof part === "string" ? enc.encode(part) : part;
}

async function all<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of source) out.push(value);
  return out;
}

describe("ndjson", () => {
  test("events round-trip, split across arbitrary chunk boundaries", async () => {
    const events: ExecEvent[] = [
      { seq: 1, type: "started", execId: "e1", pid: 42, startedAtMs: 1000 },
      { seq: 2, type: "stdout", data: toBase64(new Uint8Array([0xff, 0x00, 0xfe])) },
      { seq: 3, type: "heartbeat" },
      { seq: 4, type: "exit", exitCode: 7, signal: null, reason: "exited", durationMs: 12 },
    ];
    const wire = enc.encode(events.map(encodeEvent).join(""));
    const pieces = [wire.subarray(0, 5), wire.subarray(5, 6), wire.subarray(6, 90), wire.subarray(90)];
    expect(await all(decodeExecEvents(chunks(...pieces)))).toEqual(events);
    const decoded = await all(decodeExecEvents(new Blob([wire]).stream()));
    expect([...fromBase64((decoded[1] as { data: string }).data)]).toEqual([0xff, 0x00, 0xfe]);
  });

  test("a line over the limit fails while buffering, even without a newline", async () => {
    const big = "x".repeat(2048);
    await expect(all(decodeNdjson(chunks(`{"a":"${big}"}\n`), { maxLineBytes: 1024 }))).rejects.toThrow(
      /longer than 1024/,
    );
    async function* endless() {
      while (true) yield enc.encode("y".repeat(4096));
    }
    await expect(all(decodeNdjson(endless(), { maxLineBytes: 1 << 20 }))).rejects.toThrow(/longer than/);
  });

  test("malformed lines are errors; blank lines are skipped; a cut last line fails", async () => {
    await expect(all(decodeNdjson(chunks('{"seq":1}\nnot json\n')))).rejects.toThrow(/malformed NDJSON line/);
    expect(await all(decodeNdjson(chunks('{"a":1}\n\n{"b":2}')))).toEqual([{ a: 1 }, { b: 2 }]);
    await expect(all(decodeNdjson(chunks('{"a":1}\n{"b":')))).rejects.toThrow(/malformed/);
    await expect(all(decodeNdjson(chunks(new Uint8Array([0xff, 0x0a]))))).rejects.toThrow(/UTF-8/);
  });

  test("event validation", () => {
    expect(() => parseExecEvent({ type: "heartbeat" })).toThrow(/seq/);
    expect(() => parseExecEvent({ seq: 1, type: "nope" })).toThrow(/unknown exec event type/);
    expect(() => parseExecEvent({ seq: 1, type: "stdout", data: "!!" })).toThrow(/base64/);
    expect(() =>
      parseExecEvent({ seq: 2, type: "exit", exitCode: 1.5, signal: null, reason: "exited", durationMs: 1 }),
    ).toThrow(/integer/);
    expect(
      parseExecEvent({
        seq: 2,
        type: "exit",
        exitCode: null,
        signal: "SIGKILL",
        reason: "timeout",
        durationMs: 1,
        extra: 1,
      }),
    ).toEqual({
      seq: 2,
      type: "exit",
      exitCode: null,
      signal: "SIGKILL",
      reason: "timeout",
      durationMs: 1,
    });
  });

  test("base64 helpers are exact for every byte and refuse non-canonical input", () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    expect([...fromBase64(toBase64(bytes))]).toEqual([...bytes]);
    expect(toBase64(bytes.subarray(250))).toBe(Buffer.from(bytes.subarray(250)).toString("base64"));
    expect(() => fromBase64("abc")).toThrow();
    expect(() => fromBase64("ab c")).toThrow();
  });
});
