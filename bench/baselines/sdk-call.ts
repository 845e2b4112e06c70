/**
 * First-API-call baseline: what `crabbox status --id X --json` cannot avoid — load the AWS SDK,
 * make one GetMicrovm against the endpoint, print the answer as JSON.
 *
 *   sdk-call <endpoint> <microvm-id>
 */
import { GetMicrovmCommand, LambdaMicrovmsClient } from "@aws-sdk/client-lambda-microvms";

const [endpoint, microvmId] = process.argv.slice(2);
if (!endpoint || !microvmId) {
  process.stderr.write("usage: sdk-call <endpoint> <microvm-id>\n");
  process.exit(2);
}
const client = new LambdaMicrovmsClient({
  region: "us-east-1",
  endpoint,
  credentials: { accessKeyId: "AKIDEMULATOR", secretAccessKey: "emulator" },
});
// No top-level await: baselines are built exactly like dist/crabbox (a CommonJS bundle).
void client.send(new GetMicrovmCommand({ microvmIdentifier: microvmId })).then((vm) => {
  process.stdout.write(`${JSON.stringify({ id: vm.microvmId, state: vm.state, endpoint: vm.endpoint })}\n`);
});
