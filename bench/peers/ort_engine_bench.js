// Engine-only comparison: selu-serve's MlpEngine (bench/onnx_engine_bench, driven
// over its stdin) against ONNX Runtime through onnxruntime-node, on the same ONNX
// files, single-threaded; ORT in fp32, the engine with fp32 or (--weights bf16) bf16
// weights. Run by bench/run.sh.
//
//   NODE_PATH=.../node_modules node bench/peers/ort_engine_bench.js \
//     --engine-bin build/release/bench/onnx_engine_bench --models models.json \
//     --out engine.json [--names digits_snn,tiny_snn,big_snn] [--batches 1,8,32,128,512] \
//     [--rounds 5] [--seconds 0.3] [--weights fp32|bf16]
//
// For each model: the same seeded input rows go to both; the outputs of all rows must
// agree before anything is timed (max abs diff < 1e-4 with fp32 weights; with bf16 weights
// < 2^-6 * 4 * max(1, max |y|), the engine's bf16 bound for up to 16 dense layers,
// tests/parity/parity_bf16_test.cc), else the script exits 1. Then,
// round by round and cell by cell, the engine and ORT alternate (ABAB...), each running
// back-to-back calls of one batch size for --seconds of wall time. The best round of each
// counts (on a shared machine other processes only ever slow a run down); the median is
// kept in the JSON too. ORT's figure includes what one await session.run() costs in Node
// itself; that cost is measured on an Identity model of the same input width
// (identity_<width> in models.json) at each batch size and reported beside.
'use strict';

const {spawn} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const args = {names: 'digits_snn,tiny_snn,big_snn', batches: '1,8,32,128,512', rounds: 5,
                seconds: 0.3, weights: 'fp32'};
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-(.)/g, (_, c) => c.toUpperCase());
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
    args[key] = argv[i + 1];
  }
  for (const needed of ['engineBin', 'models', 'out']) {
    if (!args[needed]) throw new Error(`--${needed.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} is required`);
  }
  args.batches = String(args.batches).split(',').map(Number);
  args.rounds = Number(args.rounds);
  args.seconds = Number(args.seconds);
  if (!['fp32', 'bf16'].includes(args.weights)) throw new Error('--weights must be fp32 or bf16');
  return args;
}

// Deterministic inputs in [-2, 2) (mulberry32), the same for every run.
function seededRows(count, seed) {
  const data = new Float32Array(count);
  let a = seed >>> 0;
  for (let i = 0; i < count; i++) {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 4 - 2;
  }
  return data;
}

// The engine process: one JSON line per request line.
class EngineProcess {
  constructor(bin, args) {
    this.child = spawn(bin, args, {stdio: ['pipe', 'pipe', 'inherit'],
                                   env: {...process.env, OMP_NUM_THREADS: '1'}});
    this.lines = readline.createInterface({input: this.child.stdout})[Symbol.asyncIterator]();
  }
  async next() {
    const {value, done} = await this.lines.next();
    if (done) throw new Error('onnx_engine_bench exited');
    const parsed = JSON.parse(value);
    if (parsed.error) throw new Error(`onnx_engine_bench: ${parsed.error}`);
    return parsed;
  }
  async time(batch, seconds) {
    this.child.stdin.write(`${batch} ${seconds}\n`);
    return (await this.next()).rows_per_s;
  }
  close() { this.child.stdin.end(); }
}

async function session(file) {
  return ort.InferenceSession.create(file, {intraOpNumThreads: 1, interOpNumThreads: 1,
                                            executionMode: 'sequential',
                                            graphOptimizationLevel: 'all'});
}

async function timeOrt(sess, input, width, batch, seconds) {
  const feeds = {[sess.inputNames[0]]: new ort.Tensor('float32', input.subarray(0, batch * width),
                                                      [batch, width])};
  await sess.run(feeds);  // first call at this shape: not timed
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  let calls = 0;
  let now;
  do {
    await sess.run(feeds);
    calls++;
    now = process.hrtime.bigint();
  } while (now < end);
  return (calls * batch) / (Number(now - start) / 1e9);
}

const best = (xs) => Math.max(...xs);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function benchModel(args, name, model, identity) {
  const maxBatch = Math.max(...args.batches);
  const input = seededRows(maxBatch * model.in, 14);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-engine-'));
  const inFile = path.join(tmp, 'in.f32');
  const outFile = path.join(tmp, 'out.f32');
  fs.writeFileSync(inFile, Buffer.from(input.buffer));
  const engine = new EngineProcess(args.engineBin,
                                   ['--model', model.file, '--input-file', inFile,
                                    '--output-file', outFile, '--weights-precision', args.weights]);
  const ready = await engine.next();
  const sess = await session(model.file);
  const idSess = await session(identity.file);
  const ortOut = (await sess.run({[sess.inputNames[0]]:
      new ort.Tensor('float32', input, [maxBatch, model.in])}))[sess.outputNames[0]].data;
  const bytes = fs.readFileSync(outFile);  // may be a view into a larger pooled buffer
  const engOut = new Float32Array(bytes.buffer.slice(bytes.byteOffset,
                                                     bytes.byteOffset + bytes.byteLength));
  fs.rmSync(tmp, {recursive: true});
  if (engOut.length !== ortOut.length) {
    throw new Error(`${name}: engine gave ${engOut.length} values, ORT ${ortOut.length}`);
  }
  let maxDiff = 0;
  let maxOut = 0;
  for (let i = 0; i < engOut.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(engOut[i] - ortOut[i]));
    maxOut = Math.max(maxOut, Math.abs(ortOut[i]));
  }
  const bound = args.weights === 'bf16' ? 2 ** -6 * 4 * Math.max(1, maxOut) : 1e-4;
  if (!(maxDiff < bound)) {
    throw new Error(`${name}: engine (${args.weights}) and ORT differ by ${maxDiff} (>= ${bound})`);
  }
  console.error(`  ${name}: outputs agree (max abs diff ${maxDiff.toExponential(2)}), isa ${ready.isa}`);

  const cells = args.batches.map((batch) => ({batch, engine: [], ort: [], identity: []}));
  for (let round = 0; round < args.rounds; round++) {
    for (const cell of cells) {
      cell.engine.push(await engine.time(cell.batch, args.seconds));
      cell.ort.push(await timeOrt(sess, input, model.in, cell.batch, args.seconds));
      cell.identity.push(
          await timeOrt(idSess, input, model.in, cell.batch, Math.min(args.seconds, 0.1)));
    }
  }
  engine.close();
  return cells.map((c) => ({
    model: name, batch: c.batch, max_abs_diff: maxDiff, isa: ready.isa, weights: args.weights,
    engine_rows_per_s: best(c.engine), ort_rows_per_s: best(c.ort),
    engine_rows_per_s_median: median(c.engine), ort_rows_per_s_median: median(c.ort),
    ratio: best(c.engine) / best(c.ort),
    ratio_median: median(c.engine) / median(c.ort),
    // What one awaited session.run() of an Identity model costs, in µs per call.
    node_call_us: 1e6 * c.batch / best(c.identity),
    ort_call_us: 1e6 * c.batch / best(c.ort),
    engine_call_us: 1e6 * c.batch / best(c.engine),
  }));
}

async function main() {
  const args = parseArgs(process.argv);
  const models = JSON.parse(fs.readFileSync(args.models, 'utf8'));
  const rows = [];
  for (const name of args.names.split(',')) {
    const model = models[name];
    if (!model) throw new Error(`${name} is not in ${args.models}`);
    const identity = models[`identity_${model.in}`];
    if (!identity) throw new Error(`identity_${model.in} is not in ${args.models}`);
    rows.push(...await benchModel(args, name, model, identity));
  }
  const report = {
    onnxruntime_node: require('onnxruntime-node/package.json').version,
    node: process.version, weights: args.weights, rounds: args.rounds, seconds_per_run: args.seconds,
    statistic: 'best of rounds (median kept beside)', threads: 1, rows,
  };
  fs.writeFileSync(args.out, JSON.stringify(report, null, 1));
}

main().catch((err) => {
  console.error(`ort_engine_bench: ${err.message}`);
  process.exit(1);
});
