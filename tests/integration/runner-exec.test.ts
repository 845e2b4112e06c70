/**
 * The runner's exec endpoints, black-box over HTTP against a real runner process (`--root <tmp>`).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeExecFrames } from "../../src/protocol/frames.ts";
import { decodeExecEvents, outputBytes } from "../../src/protocol/ndjson.ts";
import { EXEC_FRAMES_MEDIA_TYPE, EXEC_NDJSON_MEDIA_TYPE, type ExecEvent } from "../../src/protocol/types.ts";
import {
  alive,
  exec,
  postExec,
  readEvents,
  repoRoot,
  startRunner,
  summarize,
  type TestRunner,
  text,
  waitFor,
} from "../fixtures/runner/harness.ts";

// Real processes on a possibly busy 2-core CI machine: bun test's 5 s default is too tight.
setDefaultTimeout(30_000);
const W = "/workspace/crabbox";
let runner: TestRunner;
const strays: number[] = [];

beforeAll(async () => {
  runner = await startRunner({
    env: { CRABBOX_RUNNER_HEARTBEAT_MS: "200", CRABBOX_EMULATOR_VM: "vm-test-1" },
  });
});
afterAll(async () => {
  for (const pid of strays) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  await runner.stop();
});

const inRoot = (path: string) => join(runner.root, path);
const readPid = (path: string) => Number(readFileSync(inRoot(path), "utf8").trim());
const pidFileReady = (path: string) => {
  try {
    return readPid(path) > 0;
  } catch {
    return false;
  }
};

/** 30 lines, 30 ms apart, then exit 3: long enough to drop the connection in the middle. */
const REATTACH_COMMAND = "i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo line-$i; sleep 0.03; done; exit 3";

/**
 * Reads an exec stream until 5 stdout events, drops the connection, reattaches after the last seq
 * seen: every event exactly once, in order, and the whole output.
 */
async function expectReattachLosesNothing(
  open: (signal: AbortSignal) => Promise<Response>,
  decode: (body: ReadableStream<Uint8Array>) => AsyncIterable<ExecEvent>,
  resume: (after: number) => Promise<ExecEvent[]>,
): Promise<void> {
  const controller = new AbortController();
  const response = await open(controller.signal);
  const first: ExecEvent[] = [];
  try {
    for await (const event of decode(response.body as ReadableStream<Uint8Array>)) {
      first.push(event);
      if (first.filter((e) => e.type === "stdout").length >= 5) {
        controller.abort();
        break;
      }
    }
  } catch {
    // aborted on purpose
  }
  const all = [...first, ...(await resume(first.at(-1)?.seq ?? 0))];
  expect(all.map((event) => event.seq)).toEqual(all.map((_, index) => index + 1));
  const outcome = summarize(all);
  expect(text(outcome.stdout)).toBe(Array.from({ length: 30 }, (_, i) => `line-${i + 1}\n`).join(""));
  expect(outcome.exit).toMatchObject({ exitCode: 3, reason: "exited" });
}

describe("runner basics", () => {
  test("--version prints version and protocol", () => {
    const result = spawnSync(process.execPath, [join(repoRoot, "runner/main.ts"), "--version"], {
      encoding: "utf8",
    });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^crabbox-runner \d+\.\d+\.\d+\S* protocol 1\n$/);
  });

  test("unknown arguments are refused with usage", () => {
    const result = spawnSync(process.execPath, [join(repoRoot, "runner/main.ts"), "--nope"], {
      encoding: "utf8",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("unknown argument --nope");
  });

  test("GET /health", async () => {
    const response = await fetch(`${runner.url}/health`);
    expect(await response.json()).toMatchObject({ status: "ok", protocol: 1 });
  });

  test("lifecycle hooks answer 200 and change nothing", async () => {
    for (const hook of ["ready", "validate", "run", "resume", "suspend", "terminate"]) {
      const response = await fetch(`${runner.url}/aws/lambda-microvms/runtime/v1/${hook}`, {
        method: "POST",
        body: JSON.stringify({ microvmId: "m-1", runHookPayload: "x" }),
      });
      expect(response.status).toBe(200);
    }
    expect((await fetch(`${runner.url}/health`)).status).toBe(200);
  });

  test("unknown routes are 404 with an error body", async () => {
    const response = await fetch(`${runner.url}/v2/nothing`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ code: "not_found" });
    // Only with --test-echo.
    expect((await fetch(`${runner.url}/_echo`)).status).toBe(404);
  });
});

describe("exec", () => {
  test("stdout, stderr and exit 7 are separated; request env reaches the command", async () => {
    const result = await exec(runner, {
      command: 'printf "$RUNNER_TEST"; printf stderr-proof >&2; exit 7',
      workdir: W,
      env: { RUNNER_TEST: "stdout-proof" },
      aFieldFromTheFuture: { ignored: true },
    });
    expect(text(result.stdout)).toBe("stdout-proof");
    expect(text(result.stderr)).toBe("stderr-proof");
    expect(result.exit).toMatchObject({ exitCode: 7, signal: null, reason: "exited" });
    const seqs = result.events.map((event) => event.seq);
    expect(seqs).toEqual(seqs.map((_, index) => index + 1));
    expect(result.events[0]).toMatchObject({ type: "started" });
    expect(result.events.at(-1)?.type).toBe("exit");
  });

  test("binary output is exact", async () => {
    const result = await exec(runner, { command: "printf '\\377\\000\\376'", workdir: W });
    expect([...result.stdout]).toEqual([0xff, 0x00, 0xfe]);
  });

  test("large output arrives complete, in chunks of at most 64 KiB", async () => {
    const result = await exec(runner, { command: "head -c 3000000 /dev/zero | tr '\\0' 'a'", workdir: W });
    expect(result.stdout.length).toBe(3_000_000);
    expect(result.stdout.every((byte) => byte === 0x61)).toBe(true);
    for (const event of result.events) {
      if (event.type === "stdout")
        expect(Buffer.from(event.data, "base64").length).toBeLessThanOrEqual(65536);
    }
  });

  test("a slow client loses nothing; a late reader gets the last 8 MiB of events", async () => {
    const size = 20 * 1024 * 1024;
    const response = await postExec(runner, {
      execId: "big-1",
      command: `head -c ${size} /dev/zero`,
      workdir: W,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    // Stall: the runner must stop reading the pipe rather than drop what this client has not read.
    await Bun.sleep(700);
    const rest: Uint8Array[] = first.value ? [first.value] : [];
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      rest.push(value);
    }
    const outcome = summarize(
      await Array.fromAsync(
        decodeExecEvents(
          (async function* () {
            yield* rest;
          })(),
        ),
      ),
    );
    expect(outcome.stdout.length).toBe(size);
    expect(outcome.events.map((event) => event.seq)).toEqual(outcome.events.map((_, index) => index + 1));

    const late = await readEvents(await fetch(`${runner.url}/v1/exec/big-1/events?after=0`));
    expect(late[0]?.seq).toBeGreaterThan(1);
    expect(late.at(-1)?.type).toBe("exit");
    const bytes = late.reduce((sum, event) => sum + JSON.stringify(event).length + 1, 0);
    expect(bytes).toBeLessThanOrEqual(8 * 1024 * 1024 + 100_000);
  });

  test("a script reading stdin does not eat the script; stdin is empty", async () => {
    const result = await exec(runner, { command: "read line || true\nprintf after", workdir: W });
    expect(text(result.stdout)).toBe("after");
    expect(result.exit?.exitCode).toBe(0);
  });

  test("stdin streams in through POST /v1/exec/{id}/stdin; EOF closes it", async () => {
    const response = await postExec(runner, {
      execId: "stdin-1",
      command: "cat; echo done",
      workdir: W,
      stdin: true,
    });
    const events = readEvents(response);
    const feed = await fetch(`${runner.url}/v1/exec/stdin-1/stdin`, {
      method: "POST",
      body: "line one\nline two\n",
    });
    expect(await feed.json()).toMatchObject({ bytes: 18 });
    const again = await fetch(`${runner.url}/v1/exec/stdin-1/stdin`, { method: "POST", body: "x" });
    expect(again.status).toBe(409);
    const result = summarize(await events);
    expect(text(result.stdout)).toBe("line one\nline two\ndone\n");
  });

  test("the command runs in the workdir, cwd is created; CRABBOX_EMULATOR_VM is inherited and reserved", async () => {
    const result = await exec(runner, {
      command: 'pwd; printf "%s" "$CRABBOX_EMULATOR_VM"',
      workdir: W,
      cwd: "sub/dir",
    });
    expect(text(result.stdout)).toBe(`${inRoot(`${W}/sub/dir`)}\nvm-test-1`);
    const refused = await postExec(runner, {
      command: "true",
      workdir: W,
      env: { CRABBOX_EMULATOR_VM: "forged" },
    });
    expect(refused.status).toBe(400);
  });

  test("the exit event arrives while a backgrounded sleep 60 is still alive", async () => {
    const result = await exec(runner, { command: "sleep 60 & echo $! > bg.pid", workdir: W });
    expect(result.exit).toMatchObject({ exitCode: 0, reason: "exited" });
    expect(result.exit?.durationMs).toBeLessThan(3000);
    const pid = readPid(`${W}/bg.pid`);
    strays.push(pid);
    expect(alive(pid)).toBe(true);
    process.kill(pid, "SIGKILL");
    expect(await waitFor(() => !alive(pid))).toBe(true);
  });

  test("heartbeats flow while the command is quiet", async () => {
    const result = await exec(runner, { command: "sleep 1", workdir: W });
    expect(result.events.filter((event) => event.type === "heartbeat").length).toBeGreaterThanOrEqual(2);
  });

  test("disconnect, then reattach within the grace: every event exactly once", async () => {
    await expectReattachLosesNothing(
      (signal) => postExec(runner, { execId: "reattach-1", command: REATTACH_COMMAND, workdir: W }, signal),
      decodeExecEvents,
      async (after) => readEvents(await fetch(`${runner.url}/v1/exec/reattach-1/events?after=${after}`)),
    );
  });

  test("a repeated execId reattaches instead of running the command twice", async () => {
    const request = { execId: "once-1", command: "echo ran >> runs.log; sleep 0.3; echo hi", workdir: W };
    const [a, b] = await Promise.all([exec(runner, request), exec(runner, request)]);
    const again = await exec(runner, request);
    for (const outcome of [a, b, again]) {
      expect(text(outcome.stdout)).toBe("hi\n");
      expect(outcome.exit?.exitCode).toBe(0);
    }
    expect(readFileSync(inRoot(`${W}/runs.log`), "utf8")).toBe("ran\n");
    const conflicting = await postExec(runner, { ...request, command: "echo other" });
    expect(conflicting.status).toBe(400);
  });

  test("DELETE kills the whole group, grandchildren included", async () => {
    const command = "(sleep 60 & echo $! > gc.pid; wait) & sleep 60 & echo $! > child.pid; wait";
    const response = await postExec(runner, { execId: "kill-1", command, workdir: W });
    const events = readEvents(response);
    expect(await waitFor(() => pidFileReady(`${W}/gc.pid`) && pidFileReady(`${W}/child.pid`))).toBe(true);
    const pids = [readPid(`${W}/gc.pid`), readPid(`${W}/child.pid`)];
    strays.push(...pids);
    expect(pids.every(alive)).toBe(true);
    const deleted = await fetch(`${runner.url}/v1/exec/kill-1`, { method: "DELETE" });
    expect(await deleted.json()).toMatchObject({ execId: "kill-1", exit: { reason: "canceled" } });
    expect(summarize(await events).exit).toMatchObject({
      reason: "canceled",
      exitCode: null,
      signal: "SIGTERM",
    });
    expect(await waitFor(() => pids.every((pid) => !alive(pid)))).toBe(true);
    expect((await fetch(`${runner.url}/v1/exec/nope`, { method: "DELETE" })).status).toBe(404);
  });

  test("DELETE after the exit still stops background children left in the group", async () => {
    const result = await exec(runner, {
      execId: "linger-1",
      command: "sleep 60 & echo $! > linger.pid",
      workdir: W,
    });
    expect(result.exit?.reason).toBe("exited");
    const pid = readPid(`${W}/linger.pid`);
    strays.push(pid);
    expect(alive(pid)).toBe(true);
    const deleted = await fetch(`${runner.url}/v1/exec/linger-1`, { method: "DELETE" });
    expect(await deleted.json()).toMatchObject({ exit: { reason: "exited", exitCode: 0 } });
    expect(await waitFor(() => !alive(pid))).toBe(true);
  });

  test("timeoutSeconds stops the group with reason timeout", async () => {
    const result = await exec(runner, { command: "sleep 30", workdir: W, timeoutSeconds: 0.5 });
    expect(result.exit).toMatchObject({ reason: "timeout", exitCode: null, signal: "SIGTERM" });
  });

  test("a client that never comes back loses the command after the detach grace", async () => {
    const controller = new AbortController();
    const response = await postExec(
      runner,
      { execId: "grace-1", command: "echo $$ > grace.pid; sleep 30", workdir: W, detachGraceSeconds: 0.3 },
      controller.signal,
    );
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    expect(await waitFor(() => pidFileReady(`${W}/grace.pid`))).toBe(true);
    const pid = readPid(`${W}/grace.pid`);
    strays.push(pid);
    controller.abort();
    await reader.cancel().catch(() => {});
    // Nobody is attached now: the grace runs out and the group is stopped.
    expect(await waitFor(() => !alive(pid), 4000)).toBe(true);
    const outcome = summarize(await readEvents(await fetch(`${runner.url}/v1/exec/grace-1/events?after=0`)));
    expect(outcome.exit).toMatchObject({ reason: "canceled" });
  });

  test("signals reach the group", async () => {
    const response = await postExec(runner, {
      execId: "signal-1",
      command: "trap 'echo got-int; exit 3' INT; echo ready; while :; do sleep 0.05; done",
      workdir: W,
    });
    const events: ExecEvent[] = [];
    const stream = decodeExecEvents(response.body as ReadableStream<Uint8Array>);
    for await (const event of stream) {
      events.push(event);
      if (event.type === "stdout") break;
    }
    const sent = await fetch(`${runner.url}/v1/exec/signal-1/signal`, {
      method: "POST",
      body: '{"signal":"INT"}',
    });
    expect(await sent.json()).toMatchObject({ signal: "SIGINT", delivered: true });
    const rest = await readEvents(
      await fetch(`${runner.url}/v1/exec/signal-1/events?after=${events.at(-1)?.seq}`),
    );
    const outcome = summarize([...events, ...rest]);
    expect(text(outcome.stdout)).toBe("ready\ngot-int\n");
    expect(outcome.exit?.exitCode).toBe(3);
    const bad = await fetch(`${runner.url}/v1/exec/signal-1/signal`, {
      method: "POST",
      body: '{"signal":"BOGUS"}',
    });
    expect(bad.status).toBe(400);
  });

  test("unknown exec ids are 404 unknown_exec", async () => {
    const response = await fetch(`${runner.url}/v1/exec/missing/events`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ code: "unknown_exec" });
  });

  test("expectedFingerprint mismatch is 409 before anything runs", async () => {
    const response = await postExec(runner, {
      command: "echo ran > should-not-exist",
      workdir: "/workspace/fp",
      expectedFingerprint: "0".repeat(64),
    });
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ code: "fingerprint_mismatch", fingerprint: "empty" });
    expect(() => readFileSync(inRoot("/workspace/fp/should-not-exist"))).toThrow();
  });
});

describe("exec as binary frames", () => {
  const FRAMES = { accept: EXEC_FRAMES_MEDIA_TYPE };

  function postFrames(request: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
    return fetch(`${runner.url}/v1/exec`, {
      method: "POST",
      headers: { "content-type": "application/json", ...FRAMES },
      body: JSON.stringify(request),
      signal,
    });
  }

  async function readFrames(response: Response): Promise<ExecEvent[]> {
    if (response.status !== 200) throw new Error(`exec: ${response.status} ${await response.text()}`);
    expect(response.headers.get("content-type")).toBe(EXEC_FRAMES_MEDIA_TYPE);
    return Array.fromAsync(decodeExecFrames(response.body as ReadableStream<Uint8Array>));
  }

  /** Seqs, types and each event's bytes: what must match between the two encodings. */
  function shape(events: ExecEvent[]) {
    return events.map((event) =>
      event.type === "stdout" || event.type === "stderr"
        ? { seq: event.seq, type: event.type, bytes: Buffer.from(outputBytes(event)).toString("hex") }
        : { ...event, startedAtMs: 0 },
    );
  }

  const ALL_BYTES = Array.from({ length: 256 }, (_, i) => `\\${i.toString(8).padStart(3, "0")}`).join("");

  test("Accept picks the encoding; both carry the same events, every byte value exact", async () => {
    const command = `printf '${ALL_BYTES}'; head -c 3000000 /dev/urandom | tee random.bin; printf '${ALL_BYTES}' >&2; exit 5`;
    const framed = await readFrames(await postFrames({ execId: "frames-1", command, workdir: W }));
    const outcome = summarize(framed);
    expect([...outcome.stdout.subarray(0, 256)]).toEqual(Array.from({ length: 256 }, (_, i) => i));
    expect(Buffer.compare(outcome.stdout.subarray(256), readFileSync(inRoot(`${W}/random.bin`)))).toBe(0);
    expect([...outcome.stderr]).toEqual(Array.from({ length: 256 }, (_, i) => i));
    expect(outcome.exit).toMatchObject({ exitCode: 5, reason: "exited" });
    expect(framed.map((event) => event.seq)).toEqual(framed.map((_, index) => index + 1));

    for (const accept of [undefined, EXEC_NDJSON_MEDIA_TYPE, `${EXEC_FRAMES_MEDIA_TYPE};q=0`]) {
      const response = await fetch(`${runner.url}/v1/exec/frames-1/events?after=0`, {
        headers: accept === undefined ? {} : { accept },
      });
      expect(response.headers.get("content-type")).toBe(EXEC_NDJSON_MEDIA_TYPE);
      expect(shape(await readEvents(response))).toEqual(shape(framed));
    }
  });

  test("disconnect, then reattach with frames within the grace: every event exactly once", async () => {
    await expectReattachLosesNothing(
      (signal) => postFrames({ execId: "frames-reattach", command: REATTACH_COMMAND, workdir: W }, signal),
      decodeExecFrames,
      async (after) =>
        readFrames(
          await fetch(`${runner.url}/v1/exec/frames-reattach/events?after=${after}`, { headers: FRAMES }),
        ),
    );
  });

  test("a slow frames client loses nothing; late readers of either encoding get the same last 8 MiB", async () => {
    const size = 16 * 1024 * 1024;
    const command = `head -c ${size} /dev/urandom | tee big.bin`;
    const response = await postFrames({ execId: "frames-big", command, workdir: W });
    const events: ExecEvent[] = [];
    for await (const event of decodeExecFrames(response.body as ReadableStream<Uint8Array>)) {
      events.push(event);
      // Stall now and then: the runner must stop reading the pipe, not drop or reuse what is unread.
      if (events.length % 64 === 0) await Bun.sleep(50);
    }
    const outcome = summarize(events);
    expect(Buffer.compare(outcome.stdout, readFileSync(inRoot(`${W}/big.bin`)))).toBe(0);
    expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));

    const after0 = `${runner.url}/v1/exec/frames-big/events?after=0`;
    const lateFrames = await readFrames(await fetch(after0, { headers: FRAMES }));
    const lateNdjson = await readEvents(await fetch(after0));
    expect(lateFrames[0]?.seq).toBeGreaterThan(1);
    expect(lateFrames.at(-1)?.type).toBe("exit");
    expect(shape(lateFrames)).toEqual(shape(lateNdjson));
    expect(shape(lateFrames)).toEqual(shape(events.slice((lateFrames[0]?.seq ?? 1) - 1)));
    const bytes = lateNdjson.reduce((sum, event) => sum + JSON.stringify(event).length + 1, 0);
    expect(bytes).toBeLessThanOrEqual(8 * 1024 * 1024 + 100_000);
  });
});

describe("runner lifecycle", () => {
  for (const how of ["SIGTERM", "stdin EOF"] as const) {
    test(`${how} kills every exec group and exits 0`, async () => {
      const own = await startRunner({ args: ["--exit-on-stdin-eof"] });
      try {
        const response = await postExec(own, {
          command: "sleep 60 & echo $! > bg.pid; sleep 60",
          workdir: W,
        });
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        await reader.read();
        const pidFile = join(own.root, W, "bg.pid");
        expect(await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "")).toBe(
          true,
        );
        const pid = Number(readFileSync(pidFile, "utf8"));
        strays.push(pid);
        expect(alive(pid)).toBe(true);
        const exited = new Promise<number | null>((resolve) =>
          own.process.once("exit", (code) => resolve(code)),
        );
        if (how === "SIGTERM") own.process.kill("SIGTERM");
        else own.process.stdin?.end();
        expect(await exited).toBe(0);
        expect(await waitFor(() => !alive(pid))).toBe(true);
        await reader.cancel().catch(() => {});
      } finally {
        await own.stop();
      }
    });
  }

  test("--test-echo reports what the runner received", async () => {
    const own = await startRunner({ args: ["--test-echo"] });
    try {
      const response = await fetch(`${own.url}/_echo?x=1`, {
        method: "POST",
        headers: { "x-custom": "yes" },
        body: "b",
      });
      expect(await response.json()).toMatchObject({
        method: "POST",
        path: "/_echo?x=1",
        headers: { "x-custom": "yes" },
      });
    } finally {
      await own.stop();
    }
  });

  test("a later --listen/--root overrides an earlier one", async () => {
    // The harness passes its own --listen/--root first; these come later and win.
    const own = await startRunner({
      args: (dir) => ["--listen", "localhost:0", "--root", join(dir, "second")],
    });
    try {
      expect(own.url).toStartWith("http://localhost:");
      expect(own.stderr()).toContain(`root ${join(own.dir, "second")}`);
      expect((await fetch(`${own.url}/health`)).status).toBe(200);
    } finally {
      await own.stop();
    }
  });
});
