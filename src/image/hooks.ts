import type { Hooks } from "@aws-sdk/client-lambda-microvms";
import { RUNNER_PORT } from "../protocol/types.ts";

/**
 * The lifecycle-hook configuration of a crabbox runner image: the one place both the emulator's
 * pre-registered `crabbox-runner` and `crabbox image build` take it from, so the two never drift.
 *
 * The runner answers all six hooks on its own port (8080). `ready` gates the image snapshot and is
 * required by AWS whenever `run` is enabled; `run` gates traffic; `terminate` lets the runner stop
 * its commands cleanly. Timeouts are generous because AWS's 1 s default is shorter than a cold
 * runner may need; runtime hooks are capped at 60 s, image hooks at 3600 s.
 */
export function runnerImageHooks(): Hooks {
  return {
    port: RUNNER_PORT,
    microvmHooks: {
      run: "ENABLED",
      runTimeoutInSeconds: 10,
      resume: "ENABLED",
      resumeTimeoutInSeconds: 10,
      suspend: "ENABLED",
      suspendTimeoutInSeconds: 10,
      terminate: "ENABLED",
      terminateTimeoutInSeconds: 10,
    },
    microvmImageHooks: {
      ready: "ENABLED",
      readyTimeoutInSeconds: 120,
      validate: "ENABLED",
      validateTimeoutInSeconds: 120,
    },
  };
}
