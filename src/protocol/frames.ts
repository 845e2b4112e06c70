/**
 * Binary framing of the exec event stream (`application/vnd.crabbox.exec-frames`), the encoding a
 * client asks for with `Accept` instead of NDJSON. The same events with the same seqs, but output
 * travels raw: no base64 on either side, a quarter fewer bytes through the proxy. Every frame is a
 * 13-byte header — kind (1 byte), seq (8 bytes), payload length (4 bytes), big-endian — and its
 * payload: the raw chunk for stdout (kind 1) and stderr (kind 2), the event's JSON for anything
 * else (kind 0), exactly the NDJSON line without its newline.
 */
import { Buffer } from "node:buffer";
import { iterate, NdjsonError, outputBytes, outputEvent, parseExecEvent } from "./ndjson.ts";
import { type ExecEvent, MAX_EVENT_LINE_BYTES } from "./types.ts";

export const FRAME_HEADER_BYTES = 13;
/** Frame kinds: output kinds are the file descriptor numbers. */
export const FRAME_EVENT = 0;
export const FRAME_STDOUT = 1;
export const FRAME_STDERR = 2;

export type FrameKind = typeof FRAME_EVENT | typeof FRAME_STDOUT | typeof FRAME_STDERR;

/** A malformed frame stream (a protocol violation: asking again would get the same answer). */
export class FrameError extends Error {
  override readonly name = "FrameError";
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const TWO_32 = 2 ** 32;

/** One frame: the header followed by a copy of `payload`. */
export function encodeFrame(kind: FrameKind, seq: number, payload: Uint8Array): Uint8Array {
  // Every byte is written: no zero-filling (for 64 KiB frames in fresh memory, `new Uint8Array`
  // cost about as much CPU as the base64 this encoding does away with).
  const frame: Uint8Array = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  return encodeFrameInto(frame, kind, seq, payload);
}

/** One frame written at the start of `target` (which must have room); returns that part of it. */
export function encodeFrameInto(
  target: Uint8Array,
  kind: FrameKind,
  seq: number,
  payload: Uint8Array,
): Uint8Array {
  writeHeader(target, kind, seq, payload.length);
  target.set(payload, FRAME_HEADER_BYTES);
  return target.subarray(0, FRAME_HEADER_BYTES + payload.length);
}

function writeHeader(target: Uint8Array, kind: FrameKind, seq: number, length: number): void {
  target[0] = kind;
  writeUint32(target, 1, Math.floor(seq / TWO_32));
  writeUint32(target, 5, seq >>> 0);
  writeUint32(target, 9, length);
}

function writeUint32(target: Uint8Array, at: number, value: number): void {
  target[at] = value >>> 24;
  target[at + 1] = value >>> 16;
  target[at + 2] = value >>> 8;
  target[at + 3] = value;
}

function readUint32(source: Uint8Array, at: number): number {
  return (
    (source[at] as number) * 0x1000000 +
    (((source[at + 1] as number) << 16) | ((source[at + 2] as number) << 8) | (source[at + 3] as number))
  );
}

/** An event as its frame: output raw, anything else as its JSON. */
export function encodeEventFrame(event: ExecEvent): Uint8Array {
  if (event.type === "stdout") return encodeFrame(FRAME_STDOUT, event.seq, outputBytes(event));
  if (event.type === "stderr") return encodeFrame(FRAME_STDERR, event.seq, outputBytes(event));
  return encodeFrame(FRAME_EVENT, event.seq, encoder.encode(JSON.stringify(event)));
}

export interface FrameDecodeOptions {
  /** Largest payload accepted (default MAX_EVENT_LINE_BYTES, the NDJSON line limit). */
  maxPayloadBytes?: number;
}

/**
 * Splits a frame stream into checked ExecEvents. An output payload is held as views of the
 * source's chunks, never copied: one view when the frame lies inside a chunk, else the pieces it
 * arrived in (`outputPieces`; `outputBytes` joins them on demand). Nothing is reused, so they stay
 * valid after the next event is asked for (stdout writes may complete later); sources hand over
 * their chunks (web streams and node sockets do not reuse them). An unknown kind, an oversized
 * payload, or an event frame that is not a valid event with its header's seq is a FrameError; a
 * stream that ends mid-frame is a plain Error (the connection was lost, not the protocol broken).
 */
export async function* decodeExecFrames(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  options: FrameDecodeOptions = {},
): AsyncGenerator<ExecEvent> {
  const max = options.maxPayloadBytes ?? MAX_EVENT_LINE_BYTES;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  let headerFilled = 0;
  /** Payload bytes of the current frame still to come; -1 while reading a header. */
  let need = -1;
  let pieces: Uint8Array[] = [];
  let kind = 0;
  let seq = 0;

  const readHeader = (): number => {
    kind = header[0] as number;
    seq = readUint32(header, 1) * TWO_32 + readUint32(header, 5);
    const length = readUint32(header, 9);
    if (kind > FRAME_STDERR) throw new FrameError(`unknown frame kind ${kind}`);
    if (!Number.isSafeInteger(seq) || seq < 1) throw new FrameError("frame has no valid seq");
    if (length > max) throw new FrameError(`frame #${seq} longer than ${max} bytes`);
    return length;
  };

  const finish = (parts: Uint8Array[]): ExecEvent => {
    if (kind !== FRAME_EVENT) {
      const bytes = parts.length === 1 ? (parts[0] as Uint8Array) : parts.length === 0 ? EMPTY : parts;
      return outputEvent(seq, kind === FRAME_STDOUT ? "stdout" : "stderr", bytes);
    }
    let value: unknown;
    try {
      value = JSON.parse(decoder.decode(parts.length === 1 ? parts[0] : Buffer.concat(parts)));
    } catch {
      throw new FrameError(`event frame #${seq} is not valid JSON`);
    }
    let event: ExecEvent;
    try {
      event = parseExecEvent(value);
    } catch (error) {
      if (error instanceof NdjsonError) throw new FrameError(error.message);
      throw error;
    }
    if (event.seq !== seq) throw new FrameError(`event frame #${seq} carries seq ${event.seq}`);
    if (event.type === "stdout" || event.type === "stderr") {
      throw new FrameError(`event frame #${seq}: output travels in output frames`);
    }
    return event;
  };

  for await (const chunk of iterate(source)) {
    let at = 0;
    while (at < chunk.length) {
      if (need < 0) {
        const take = Math.min(FRAME_HEADER_BYTES - headerFilled, chunk.length - at);
        header.set(chunk.subarray(at, at + take), headerFilled);
        headerFilled += take;
        at += take;
        if (headerFilled < FRAME_HEADER_BYTES) break;
        headerFilled = 0;
        need = readHeader();
        pieces = [];
      }
      const take = Math.min(need, chunk.length - at);
      if (take > 0) pieces.push(chunk.subarray(at, at + take));
      need -= take;
      at += take;
      if (need > 0) break;
      need = -1;
      yield finish(pieces);
    }
  }
  // Unlike a malformed frame, a cut one is a lost connection (a proxy may end a body cleanly).
  if (headerFilled > 0 || need >= 0) throw new Error("exec stream ended mid-frame");
}
