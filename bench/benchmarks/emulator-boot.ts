import { join } from "node:path";
import {
  CreateMicrovmAuthTokenCommand,
  GetMicrovmCommand,
  RunMicrovmCommand,
  TerminateMicrovmCommand,
} from "@aws-sdk/client-lambda-microvms";
import { RUNNER_IMAGE } from "../../tests/support/emulator.ts";
import { benchWorld } from "../lib/emulator.ts";
import { figure, measured, paired } from "../lib/measure.ts";
import type { Benchmark } from "../lib/types.ts";

/**
 * Emulator boot: RunMicrovm until the runner answers `GET /health` through the data-plane proxy
 * (RunMicrovm, GetMicrovm until RUNNING, one token, one health request), against the runner
 * process started alone (`crabbox __runner --listen 127.0.0.1:0`) until it answers `/health`.
 * The difference is what the emulator adds: supervision, isolation, readiness polling, the proxy.
 */

const POLL_MS = 5;

const benchmark: Benchmark = {
  name: "emulator-boot",
  title: "emulator: RunMicrovm to runner healthy",
  async run(ctx) {
    const world = await benchWorld(ctx);
    const client = world.emu.client();
    const started: string[] = [];
    ctx.onCleanup(async () => {
      for (const id of started) {
        await client.send(new TerminateMicrovmCommand({ microvmIdentifier: id })).catch(() => undefined);
      }
    });
    const boot = async () => {
      const t0 = performance.now();
      const run = await client.send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE() }));
      const id = run.microvmId as string;
      started.push(id);
      let state = run.state;
      while (state !== "RUNNING") {
        if (state === "TERMINATED" || state === "TERMINATING") throw new Error(`MicroVM ${id} ${state}`);
        await Bun.sleep(POLL_MS);
        state = (await client.send(new GetMicrovmCommand({ microvmIdentifier: id }))).state;
      }
      const minted = await client.send(
        new CreateMicrovmAuthTokenCommand({
          microvmIdentifier: id,
          expirationInMinutes: 5,
          allowedPorts: [{ port: 8080 }],
        }),
      );
      const health = await fetch(`${world.emu.url}/health`, {
        headers: {
          host: run.endpoint as string,
          "x-aws-proxy-auth": minted.authToken?.["X-aws-proxy-auth"] as string,
        },
      });
      if (health.status !== 200) throw new Error(`/health answered ${health.status}`);
      await health.arrayBuffer();
      const ms = performance.now() - t0;
      await client.send(new TerminateMicrovmCommand({ microvmIdentifier: id }));
      return ms;
    };
    const alone = async () => {
      const root = join(ctx.tmpdir("runner"), "root");
      const t0 = performance.now();
      const child = Bun.spawn([ctx.binary, "__runner", "--listen", "127.0.0.1:0", "--root", root], {
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
        env: { ...world.env },
      });
      try {
        const reader = child.stderr.getReader();
        let text = "";
        let address: string | undefined;
        while (!address) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`runner exited before listening: ${text}`);
          text += new TextDecoder().decode(value);
          address = /listening on (http:\/\/\S+)/.exec(text)?.[1];
        }
        reader.releaseLock();
        const health = await fetch(`${address}/health`);
        if (health.status !== 200) throw new Error(`/health answered ${health.status}`);
        await health.arrayBuffer();
        return performance.now() - t0;
      } finally {
        child.kill("SIGTERM");
        await child.exited;
      }
    };
    const result = await paired({ runs: ctx.runs * 2, warmup: 1, subject: boot, baseline: alone });
    return [
      figure({
        id: "emulator-boot",
        title: "emulator: RunMicrovm to runner healthy",
        unit: "ms",
        subject: measured("RunMicrovm → GetMicrovm RUNNING → token → /health via proxy", result.subject),
        baseline: measured("runner process start → /health", result.baseline),
        details: { isolation: "auto", pollMs: POLL_MS },
      }),
    ];
  },
};

export default benchmark;
