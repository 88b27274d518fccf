// A worker written against this repository's proto/ with the stock Node gRPC libraries:
// enqueue, fetch, heartbeat, report progress, nack once, fetch again, ack.
// Usage: node worker.mjs HOST:PORT PROTO_DIR QUEUE. Prints one JSON summary line; exits 1 on a failed check.
import { strict as assert } from "node:assert";
import { promisify } from "node:util";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const [target, protoDir, queue] = process.argv.slice(2);
const WORKER = "node-worker-1";

const definition = protoLoader.loadSync("ojs/v1/service.proto", {
  includeDirs: [protoDir],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});
const ojs = grpc.loadPackageDefinition(definition).ojs.v1;
const client = new ojs.OJSService(target, grpc.credentials.createInsecure());
const call = (method, request) =>
  promisify(client[method].bind(client))(request, { deadline: Date.now() + 10_000 });

// The well-known types come from protobufjs's bundled copies, whose field names stay camelCase
// even with keepCase (stringValue, numberValue, boolValue), unlike the fields of ojs.v1.
const str = (value) => ({ stringValue: value });
const struct = (fields) => ({ fields });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function fetchOne() {
  for (let i = 0; i < 100; i++) {
    const { jobs = [] } = await call("Fetch", { queues: [queue], count: 1, worker_id: WORKER });
    if (jobs.length) return jobs[0];
    await sleep(50);
  }
  throw new Error(`no job in ${queue}`);
}

const summary = {};
const { job: enqueued } = await call("Enqueue", {
  type: "polyglot.node",
  args: [str("hello"), { numberValue: 42 }],
  options: {
    queue,
    retry: { max_attempts: 3, initial_interval: { nanos: 10_000_000 }, jitter: false },
  },
});
assert.equal(enqueued.state, "JOB_STATE_AVAILABLE");
summary.job_id = enqueued.id;

const first = await fetchOne();
assert.equal(first.id, enqueued.id);
assert.equal(first.state, "JOB_STATE_ACTIVE");
assert.equal(first.attempt, 1);
assert.deepEqual(first.args.map((v) => v[v.kind]), ["hello", 42]);

const beat = await call("Heartbeat", { id: first.id, worker_id: WORKER, extend_by: { seconds: 60 } });
assert.equal(beat.directed_state, "WORKER_STATE_RUNNING");
summary.heartbeat_deadline_s = Number(beat.new_deadline.seconds);

const progress = await call("ReportProgress", {
  job_id: first.id,
  percentage: 50,
  message: "half way",
  data: struct({ rows: { numberValue: 500 } }),
  worker_id: WORKER,
  lease_token: first.lease_token,
});
assert.equal(progress.accepted, true);
assert.equal(progress.progress.progress, 0.5);
summary.progress = progress.progress.progress;

const nack = await call("Nack", {
  job_id: first.id,
  error: { code: "transient", message: "try again", retryable: true },
});
assert.equal(nack.state, "JOB_STATE_RETRYABLE");

const second = await fetchOne();
assert.equal(second.id, enqueued.id);
assert.equal(second.attempt, 2);
assert.equal(second.progress, undefined);

const ack = await call("Ack", { job_id: second.id, result: struct({ ok: { boolValue: true } }) });
assert.equal(ack.acknowledged, true);

const { job: done } = await call("GetJob", { job_id: enqueued.id });
assert.equal(done.state, "JOB_STATE_COMPLETED");
assert.equal(done.result.fields.ok.boolValue, true);
assert.equal(done.errors.length, 1);
assert.equal(done.errors[0].message, "try again");
summary.state = done.state;
summary.attempts = done.attempt;
client.close();
console.log(JSON.stringify(summary));
