import type { ProviderBackend } from "../provider.ts";
import { cleanup } from "./cleanup.ts";
import { doctor } from "./doctor.ts";
import { list } from "./list.ts";
import { pause, resume } from "./pause.ts";
import { run } from "./run.ts";
import { status } from "./status.ts";
import { stop } from "./stop.ts";
import { syncPlan } from "./sync-plan.ts";
import { warmup } from "./warmup.ts";

/**
 * The aws-lambda-microvm lifecycle, one module per operation. Loaded only when a command needs the
 * backend; the AWS SDK itself loads later still, on the first control-plane call.
 */
export const backend: ProviderBackend = {
  warmup,
  run,
  status,
  list,
  stop,
  pause,
  resume,
  cleanup,
  doctor,
  syncPlan,
};
