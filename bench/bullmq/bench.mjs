// BullMQ side of the OJS comparison benchmark.
//
// Usage: node bench.mjs --redis-url redis://127.0.0.1:PORT | unix:///path/redis.sock [options]
// (normally run by bench/bullmq_compare.py, which starts a private redis-server)
//
// Options (or env): --enqueue-jobs (BENCH_ENQUEUE_JOBS, 20000), --drain-jobs (BENCH_DRAIN_JOBS, 20000),
// --concurrency (BENCH_CONCURRENCY, 50), --in-flight (BENCH_IN_FLIGHT, 50), --pickup-jobs (BENCH_PICKUP_JOBS, 1000),
// --pickup-gap-ms (BENCH_PICKUP_GAP_MS, 5), --memory-jobs (BENCH_MEMORY_JOBS, 100000), --timeout-s (BENCH_TIMEOUT_S, 300),
// --phases a,b (BENCH_PHASES; default all: add_bulk_100,add_bulk_1000,add_in_flight,drain,pickup,memory).
//
// Prints ONE JSON object on stdout; progress and warnings go to stderr.
// The Redis server is FLUSHALLed between phases: give it a private, throwaway server.
//
// Phases (each on its own queue, Redis flushed before each):
//   add_bulk_<B>   Queue.addBulk in batches of B (100, 1000), one batch in flight at a time.
//   add_in_flight  Queue.add, one job per call, `inFlight` calls outstanding at once on one Queue.
//   drain          N jobs pre-added with addBulk; one Worker (concurrency C, processor returns
//                  immediately) started with autorun:false; clock from worker.run() until the
//                  worker's 'completed' event count reaches N.
//   pickup         an idle Worker (concurrency 1); one job at a time, clock from just before
//                  Queue.add to the processor being entered. After each job completes the
//                  driver waits `pickupGapMs` so the worker is back in its blocking wait.
//   memory         used_memory (INFO memory) before/after adding M jobs with addBulk(1000).
//
// BullMQ options are left at their defaults everywhere (removeOnComplete/removeOnFail unset,
// i.e. completed and failed jobs are kept; attempts 1; events stream maxLen ~10,000; no metrics),
// so the figures are those of an out-of-the-box BullMQ.

import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const require = createRequire(import.meta.url);

const { values: argv } = parseArgs({
  options: {
    'redis-url': { type: 'string' },
    'enqueue-jobs': { type: 'string' },
    'drain-jobs': { type: 'string' },
    concurrency: { type: 'string' },
    'in-flight': { type: 'string' },
    'pickup-jobs': { type: 'string' },
    'pickup-gap-ms': { type: 'string' },
    'memory-jobs': { type: 'string' },
    'timeout-s': { type: 'string' },
    phases: { type: 'string' },
  },
  strict: true,
});

function intSetting(flag, envName, fallback) {
  const raw = argv[flag] ?? process.env[envName];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`--${flag} / ${envName} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const redisUrl = argv['redis-url'] ?? process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL;
if (!redisUrl) {
  console.error('bench.mjs: pass --redis-url redis://HOST:PORT (or set BENCH_REDIS_URL)');
  process.exit(2);
}

const settings = {
  enqueueJobs: intSetting('enqueue-jobs', 'BENCH_ENQUEUE_JOBS', 20000),
  drainJobs: intSetting('drain-jobs', 'BENCH_DRAIN_JOBS', 20000),
  concurrency: intSetting('concurrency', 'BENCH_CONCURRENCY', 50),
  inFlight: intSetting('in-flight', 'BENCH_IN_FLIGHT', 50),
  pickupJobs: intSetting('pickup-jobs', 'BENCH_PICKUP_JOBS', 1000),
  pickupWarmup: 20,
  pickupGapMs: intSetting('pickup-gap-ms', 'BENCH_PICKUP_GAP_MS', 5),
  memoryJobs: intSetting('memory-jobs', 'BENCH_MEMORY_JOBS', 100000),
  memoryBatch: 1000,
  enqueueWarmupJobs: 1000,
  timeoutS: intSetting('timeout-s', 'BENCH_TIMEOUT_S', 300),
};

const url = new URL(redisUrl);
// unix:///path/to/redis.sock[?db=N] or redis://host:port/N.
const connection = url.protocol === 'unix:'
  ? { path: url.pathname, db: Number(url.searchParams.get('db') ?? 0) }
  : {
    host: url.hostname || '127.0.0.1',
    port: url.port ? Number(url.port) : 6379,
    db: url.pathname && url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
  };

const log = (...parts) => console.error('[bullmq-bench]', ...parts);
const round = (value, digits) => Number(value.toFixed(digits));

// Nearest-rank percentile, the same definition as bench/pickup.py.
function percentile(samples, fraction) {
  const ordered = [...samples].sort((a, b) => a - b);
  return ordered[Math.min(ordered.length - 1, Math.round(fraction * (ordered.length - 1)))];
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result after ${settings.timeoutS} s`)), settings.timeoutS * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A plain ioredis connection for administration only (FLUSHALL, INFO, MEMORY USAGE): it is not
// used to enqueue or process anything.
const admin = new IORedis({ ...connection, lazyConnect: true });

async function usedMemory() {
  const info = await admin.info('memory');
  const match = /^used_memory:(\d+)/m.exec(info);
  if (!match) throw new Error('INFO memory has no used_memory');
  return Number(match[1]);
}

// Redis's CPU time (user + sys, seconds) and commands run so far (every command, those a script runs
// included, the administration connection's INFO left out): the cost of a phase is the difference.
async function redisCost() {
  const info = await admin.info('everything');
  const field = (name) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  let calls = 0;
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info') calls += Number(match[2]);
  }
  return { cpu: field('used_cpu_user') + field('used_cpu_sys'), calls };
}

function costPerJob(before, after, jobs) {
  return {
    redis_cpu_us_per_job: round(((after.cpu - before.cpu) * 1e6) / jobs, 2),
    redis_cmds_per_job: round((after.calls - before.calls) / jobs, 3),
  };
}

async function redisVersion() {
  const info = await admin.info('server');
  return /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown';
}

async function fresh() {
  await admin.flushall('SYNC');
}

const noopJobs = (start, count) =>
  Array.from({ length: count }, (_, i) => ({ name: 'noop', data: { n: start + i } }));

async function addInBatches(queue, total, batch, start = 0) {
  for (let done = 0; done < total; done += batch) {
    await queue.addBulk(noopJobs(start + done, Math.min(batch, total - done)));
  }
}

async function measureAddBulk(batch) {
  await fresh();
  const queue = new Queue(`bench-add-bulk-${batch}`, { connection });
  try {
    await queue.waitUntilReady();
    // Warm-up: loads the Lua scripts and the connection before the clock starts.
    await addInBatches(queue, settings.enqueueWarmupJobs, batch, -settings.enqueueWarmupJobs);
    const costBefore = await redisCost();
    const started = performance.now();
    await addInBatches(queue, settings.enqueueJobs, batch);
    const seconds = (performance.now() - started) / 1000;
    const cost = costPerJob(costBefore, await redisCost(), settings.enqueueJobs);
    const counts = await queue.getJobCounts('wait');
    const expected = settings.enqueueJobs + settings.enqueueWarmupJobs;
    if (counts.wait !== expected) throw new Error(`addBulk(${batch}): ${counts.wait} waiting jobs, expected ${expected}`);
    return {
      jobs: settings.enqueueJobs,
      seconds: round(seconds, 4),
      jobs_per_s: round(settings.enqueueJobs / seconds, 1),
      ...cost,
    };
  } finally {
    await queue.close();
  }
}

async function addWithLanes(queue, total, inFlight, start) {
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const n = next++;
      await queue.add('noop', { n: start + n });
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, lane));
}

async function measureAddInFlight() {
  await fresh();
  const queue = new Queue('bench-add', { connection });
  try {
    await queue.waitUntilReady();
    await addWithLanes(queue, settings.enqueueWarmupJobs, settings.inFlight, -settings.enqueueWarmupJobs);
    const costBefore = await redisCost();
    const started = performance.now();
    await addWithLanes(queue, settings.enqueueJobs, settings.inFlight, 0);
    const seconds = (performance.now() - started) / 1000;
    const cost = costPerJob(costBefore, await redisCost(), settings.enqueueJobs);
    const counts = await queue.getJobCounts('wait');
    const expected = settings.enqueueJobs + settings.enqueueWarmupJobs;
    if (counts.wait !== expected) throw new Error(`add: ${counts.wait} waiting jobs, expected ${expected}`);
    return {
      jobs: settings.enqueueJobs,
      in_flight: settings.inFlight,
      seconds: round(seconds, 4),
      jobs_per_s: round(settings.enqueueJobs / seconds, 1),
      ...cost,
    };
  } finally {
    await queue.close();
  }
}

async function measureDrain() {
  await fresh();
  const name = 'bench-drain';
  const total = settings.drainJobs;
  const queue = new Queue(name, { connection });
  let worker;
  try {
    await queue.waitUntilReady();
    await addInBatches(queue, total, 1000);
    worker = new Worker(name, async () => {}, { connection, concurrency: settings.concurrency, autorun: false });
    worker.on('error', (err) => log('worker error:', err));
    await worker.waitUntilReady();
    let completed = 0;
    let failed = 0;
    let started = 0;
    const done = new Promise((resolve, reject) => {
      worker.on('completed', () => {
        completed += 1;
        if (completed === total) resolve(performance.now());
      });
      worker.on('failed', (job, err) => {
        failed += 1;
        reject(new Error(`drain: job ${job?.id} failed: ${err?.message}`));
      });
    });
    const costBefore = await redisCost();
    started = performance.now();
    // run() resolves only when the worker is closed; completion is observed through the events.
    const running = worker.run();
    running.catch((err) => log('worker.run() rejected:', err));
    const finished = await withTimeout(done, 'drain');
    const seconds = (finished - started) / 1000;
    const cost = costPerJob(costBefore, await redisCost(), total);
    const counts = await queue.getJobCounts('completed', 'wait', 'active', 'failed');
    if (counts.completed !== total || failed !== 0) {
      throw new Error(`drain: counts after the run ${JSON.stringify(counts)}, expected ${total} completed`);
    }
    return {
      jobs: total,
      concurrency: settings.concurrency,
      seconds: round(seconds, 4),
      jobs_per_s: round(total / seconds, 1),
      ...cost,
    };
  } finally {
    if (worker) await worker.close();
    await queue.close();
  }
}

async function measurePickup() {
  await fresh();
  const name = 'bench-pickup';
  const queue = new Queue(name, { connection });
  let entered = null;
  let completed = null;
  const worker = new Worker(
    name,
    async () => {
      const at = performance.now();
      entered?.(at);
    },
    { connection, concurrency: 1 },
  );
  worker.on('error', (err) => log('worker error:', err));
  worker.on('completed', () => completed?.());
  try {
    await queue.waitUntilReady();
    await worker.waitUntilReady();
    await sleep(200); // let the worker reach its blocking wait on the empty queue
    const latencies = [];
    const total = settings.pickupWarmup + settings.pickupJobs;
    for (let i = 0; i < total; i++) {
      const processorEntered = new Promise((resolve) => {
        entered = resolve;
      });
      const jobCompleted = new Promise((resolve) => {
        completed = resolve;
      });
      const started = performance.now();
      await queue.add('noop', { n: i });
      const at = await withTimeout(processorEntered, `pickup job ${i}`);
      if (i >= settings.pickupWarmup) latencies.push(at - started);
      await withTimeout(jobCompleted, `pickup job ${i} completion`);
      // Idle again: the worker has finished the job and returns to waiting for the next one.
      if (settings.pickupGapMs > 0) await sleep(settings.pickupGapMs);
    }
    return {
      jobs: settings.pickupJobs,
      warmup_jobs: settings.pickupWarmup,
      gap_ms: settings.pickupGapMs,
      p50_ms: round(percentile(latencies, 0.5), 3),
      p99_ms: round(percentile(latencies, 0.99), 3),
      max_ms: round(Math.max(...latencies), 3),
      mean_ms: round(latencies.reduce((a, b) => a + b, 0) / latencies.length, 3),
    };
  } finally {
    await worker.close();
    await queue.close();
  }
}

async function measureMemory() {
  await fresh();
  const total = settings.memoryJobs;
  // A warm-up queue loads the Lua scripts (they live in Redis' script cache) before the baseline.
  const warm = new Queue('bench-memory-warmup', { connection });
  await addInBatches(warm, settings.memoryBatch, settings.memoryBatch);
  await warm.close();
  const queue = new Queue('bench-memory', { connection });
  try {
    await queue.waitUntilReady();
    const keysBefore = await admin.dbsize();
    const before = await usedMemory();
    let sample;
    for (let done = 0; done < total; done += settings.memoryBatch) {
      const jobs = await queue.addBulk(noopJobs(done, Math.min(settings.memoryBatch, total - done)));
      sample ??= jobs[0];
    }
    const after = await usedMemory();
    const keysAfter = await admin.dbsize();
    const counts = await queue.getJobCounts('wait');
    if (counts.wait !== total) throw new Error(`memory: ${counts.wait} waiting jobs, expected ${total}`);
    const memoryUsage = async (key) => Number(await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    return {
      jobs: total,
      used_memory_before: before,
      used_memory_after: after,
      bytes_per_job: round((after - before) / total, 1),
      keys_added: keysAfter - keysBefore,
      // Breakdown, for reading the figure (MEMORY USAGE of BullMQ's own keys, located with queue.toKey):
      sample_job_hash_bytes: sample ? await memoryUsage(queue.toKey(sample.id)) : null,
      wait_list_bytes: await memoryUsage(queue.toKey('wait')),
      events_stream_bytes: await memoryUsage(queue.toKey('events')),
    };
  } finally {
    await queue.close();
  }
}

async function main() {
  await admin.connect();
  const versions = {
    bullmq: require('bullmq/package.json').version,
    ioredis: require('ioredis/package.json').version,
    node: process.versions.node,
    redis: await redisVersion(),
  };
  log('versions', JSON.stringify(versions));
  const result = { versions, settings, phases: {} };
  const phases = [
    ['add_bulk_100', () => measureAddBulk(100)],
    ['add_bulk_1000', () => measureAddBulk(1000)],
    ['add_in_flight', measureAddInFlight],
    ['drain', measureDrain],
    ['pickup', measurePickup],
    ['memory', measureMemory],
  ];
  const wanted = (argv.phases ?? process.env.BENCH_PHASES ?? '').split(',').filter(Boolean);
  const unknown = wanted.filter((name) => !phases.some(([known]) => known === name));
  if (unknown.length) throw new Error(`unknown phase(s) ${unknown.join(', ')}; known: ${phases.map(([n]) => n).join(', ')}`);
  for (const [name, measure] of phases) {
    if (wanted.length && !wanted.includes(name)) continue;
    log(`phase ${name} ...`);
    result.phases[name] = await measure();
    log(`phase ${name}:`, JSON.stringify(result.phases[name]));
  }
  await fresh();
  const p = result.phases;
  const metrics = {
    add_bulk_100_jobs_per_s: p.add_bulk_100?.jobs_per_s,
    add_bulk_1000_jobs_per_s: p.add_bulk_1000?.jobs_per_s,
    add_in_flight_jobs_per_s: p.add_in_flight?.jobs_per_s,
    drain_jobs_per_s: p.drain?.jobs_per_s,
    pickup_p50_ms: p.pickup?.p50_ms,
    pickup_p99_ms: p.pickup?.p99_ms,
    pickup_max_ms: p.pickup?.max_ms,
    memory_bytes_per_job: p.memory?.bytes_per_job,
    add_bulk_100_redis_cpu_us_per_job: p.add_bulk_100?.redis_cpu_us_per_job,
    add_bulk_100_redis_cmds_per_job: p.add_bulk_100?.redis_cmds_per_job,
    add_in_flight_redis_cpu_us_per_job: p.add_in_flight?.redis_cpu_us_per_job,
    add_in_flight_redis_cmds_per_job: p.add_in_flight?.redis_cmds_per_job,
    drain_redis_cpu_us_per_job: p.drain?.redis_cpu_us_per_job,
    drain_redis_cmds_per_job: p.drain?.redis_cmds_per_job,
  };
  // A job's whole life in Redis: added one at a time (Queue.add), then processed by the worker.
  if (p.add_in_flight && p.drain) {
    metrics.life_redis_cpu_us_per_job = round(p.add_in_flight.redis_cpu_us_per_job + p.drain.redis_cpu_us_per_job, 2);
    metrics.life_redis_cmds_per_job = round(p.add_in_flight.redis_cmds_per_job + p.drain.redis_cmds_per_job, 3);
  }
  // Only the phases that ran (see --phases).
  result.metrics = Object.fromEntries(Object.entries(metrics).filter(([, value]) => value !== undefined));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

try {
  await main();
  await admin.quit();
} catch (err) {
  console.error('[bullmq-bench] failed:', err?.stack ?? err);
  admin.disconnect();
  process.exitCode = 1;
}
