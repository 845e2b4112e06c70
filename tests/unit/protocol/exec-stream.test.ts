import { afterEach, describe, expect, test } from "bun:test";
import { encodeEventFrame, FrameError } from "../../../src/protocol/frames.ts";
import { encodeEvent, outputBytes, toBase64 } from "../../../src/protocol/ndjson.ts";
import {
  EXEC_FRAMES_MEDIA_TYPE,
  EXEC_NDJSON_MEDIA_TYPE,
  type ExecEvent,
} from "../../../src/protocol/types.ts";
import {
  dataPlaneTarget,
  parseControlPlaneEndpoint,
} from "../../../src/providers/aws-lambda-microvm/endpoint.ts";
import {
  createRunnerClient,
  type RunnerClient,
  RunnerStreamError,
} from "../../../src/providers/aws-lambda-microvm/runner-client.ts";

/**
 * The CLI's side of the exec stream encodings: it asks for frames, and reads whichever encoding
 * the answer's Content-Type names — frames from a runner that knows them, NDJSON from an older
 * runner that ignores the Accept header.
 */

const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);
const EVENTS: ExecEvent[] = [
  { seq: 1, type: "started", execId: "e1", pid: 7, startedAtMs: 1 },
  { seq: 2, type: "stdout", data: toBase64(ALL_BYTES) },
  { seq: 3, type: "stderr", data: toBase64(new Uint8Array([0, 10, 255])) },
  { seq: 4, type: "heartbeat" },
  { seq: 5, type: "exit", exitCode: 3, signal: null, reason: "exited", durationMs: 12 },
];

type Answer = "frames" | "ndjson" | "frames-cut";
const servers: { stop(): void }[] = [];
const clients: RunnerClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  for (const server of servers.splice(0)) server.stop();
});

function fakeRunner(answer: Answer) {
  const accepts: (string | null)[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request) {
      accepts.push(request.headers.get("accept"));
      const after = Number(new URL(request.url).searchParams.get("after") ?? 0);
      const events = EVENTS.filter((event) => event.seq > after);
      if (answer === "ndjson") {
        return new Response(events.map(encodeEvent).join(""), {
          headers: { "content-type": EXEC_NDJSON_MEDIA_TYPE },
        });
      }
      const wire = Buffer.concat(events.map(encodeEventFrame));
      const body = answer === "frames-cut" ? wire.subarray(0, wire.length - 3) : wire;
      return new Response(body, { headers: { "content-type": `${EXEC_FRAMES_MEDIA_TYPE}; charset=binary` } });
    },
  });
  servers.push(server);
  const target = dataPlaneTarget(
    "vm1.lambda-microvm.eu-west-1.on.aws",
    "eu-west-1",
    parseControlPlaneEndpoint(`http://127.0.0.1:${server.port}`, "flag"),
  );
  const client = createRunnerClient({ target, getToken: async () => ({ value: "tok", fromCache: false }) });
  clients.push(client);
  return { client, accepts };
}

async function collect(stream: AsyncGenerator<ExecEvent>) {
  const events: unknown[] = [];
  const outputs: number[][] = [];
  for await (const event of stream) {
    events.push(JSON.parse(JSON.stringify(event)));
    if (event.type === "stdout" || event.type === "stderr") outputs.push([...outputBytes(event)]);
  }
  return { events, outputs };
}

describe("exec stream negotiation (client)", () => {
  for (const answer of ["frames", "ndjson"] as const) {
    test(`a runner answering ${answer}: the same events and bytes, on exec and on reattach`, async () => {
      const { client, accepts } = fakeRunner(answer);
      const all = await collect(client.exec({ execId: "e1", command: "x", workdir: "/w" }));
      expect(all.events).toEqual(EVENTS);
      expect(all.outputs).toEqual([[...ALL_BYTES], [0, 10, 255]]);
      const resumed = await collect(client.events("e1", 2));
      expect(resumed.events).toEqual(EVENTS.slice(2));
      for (const accept of accepts) {
        expect(accept).toContain(EXEC_FRAMES_MEDIA_TYPE);
        expect(accept).toContain(EXEC_NDJSON_MEDIA_TYPE);
      }
    });
  }

  test("a frame stream cut short is a lost stream carrying the last seq, open to reattaching", async () => {
    const { client } = fakeRunner("frames-cut");
    const seqs: number[] = [];
    const error = await (async () => {
      for await (const event of client.exec({ execId: "e1", command: "x", workdir: "/w" }))
        seqs.push(event.seq);
    })().catch((e: unknown) => e);
    expect(seqs).toEqual([1, 2, 3, 4]);
    expect(error).toBeInstanceOf(RunnerStreamError);
    expect((error as RunnerStreamError).lastSeq).toBe(4);
    // Not a protocol violation (those are never retried): a cut is a lost connection.
    expect((error as RunnerStreamError).cause).not.toBeInstanceOf(FrameError);
  });
});
