// A plain Node.js Open Inference Protocol server: what a user might write instead of
// selu-serve with @grpc/grpc-js, @grpc/proto-loader and onnxruntime-node (all from npm,
// installed by bench/run.sh into the build folder). One of bench/run.sh's peers.
//
//   NODE_PATH=build/release/bench-node/node_modules node bench/peers/node_oip_server.js \
//     --proto proto --model digits_snn=path/model.onnx [--model ...] \
//     --address 127.0.0.1:0 --port-file F
//
// Serves ServerLive, ServerReady, ModelReady, ModelInfer and ModelStreamInfer (answers in
// request order per stream, each as soon as it is computed). FP32 inputs, typed
// `contents.fp32_contents` or `raw_input_contents`; answers in the same form. Each model is
// one ONNX Runtime session with intraOpNumThreads 1 (as selu-serve runs oneDNN on one
// thread per call), interOpNumThreads 1 and graphOptimizationLevel "all"; no batching.
// SIGTERM or SIGINT stops it.
'use strict';

const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const args = {address: '127.0.0.1:0', models: [], proto: 'proto', portFile: ''};
  for (let i = 2; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--address': args.address = value; i++; break;
      case '--port-file': args.portFile = value; i++; break;
      case '--proto': args.proto = value; i++; break;
      case '--model': args.models.push(value); i++; break;
      default: throw new Error(`unknown argument '${argv[i]}'`);
    }
  }
  if (args.models.length === 0) throw new Error('at least one --model NAME=PATH is needed');
  return args;
}

async function loadModels(specs) {
  const models = new Map();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new Error(`--model wants NAME=PATH, got '${spec}'`);
    const session = await ort.InferenceSession.create(spec.slice(eq + 1), {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const inputName = session.inputNames[0];
    const meta = session.inputMetadata ? session.inputMetadata[0] : undefined;
    const features = meta && meta.shape ? Number(meta.shape[1]) : NaN;
    if (!(features > 0)) throw new Error(`${spec}: cannot read the input width`);
    models.set(spec.slice(0, eq),
               {session, inputName, outputName: session.outputNames[0], features});
  }
  return models;
}

class RequestError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// One ModelInfer: validates, runs the session, returns the ModelInferResponse.
async function infer(models, request) {
  const model = models.get(request.model_name);
  if (!model) {
    throw new RequestError(grpc.status.NOT_FOUND,
                           `unknown model '${String(request.model_name).slice(0, 128)}'`);
  }
  if (request.inputs.length !== 1) {
    throw new RequestError(grpc.status.INVALID_ARGUMENT, 'expected exactly one input');
  }
  const tensor = request.inputs[0];
  if (tensor.datatype !== 'FP32') {
    throw new RequestError(grpc.status.INVALID_ARGUMENT,
                           `input datatype must be FP32, got '${tensor.datatype}'`);
  }
  const raw = request.raw_input_contents.length > 0;
  let data;
  if (raw) {
    const bytes = request.raw_input_contents[0];
    if (bytes.length % 4 !== 0) {
      throw new RequestError(grpc.status.INVALID_ARGUMENT, 'raw input is not FP32');
    }
    // A copy: the Buffer may not be 4-byte aligned within its pool.
    data = new Float32Array(bytes.length / 4);
    Buffer.from(data.buffer).set(bytes);
  } else {
    data = Float32Array.from(tensor.contents ? tensor.contents.fp32_contents : []);
  }
  if (data.length === 0 || data.length % model.features !== 0) {
    throw new RequestError(grpc.status.INVALID_ARGUMENT,
                           `input has ${data.length} values, not a multiple of ` +
                               `${model.features} features`);
  }
  const rows = data.length / model.features;
  const feeds = {[model.inputName]: new ort.Tensor('float32', data, [rows, model.features])};
  const result = await model.session.run(feeds);
  const out = result[model.outputName];
  const response = {
    model_name: request.model_name,
    model_version: '1',
    id: request.id,
    outputs: [{name: model.outputName, datatype: 'FP32', shape: out.dims.map(Number)}],
    raw_output_contents: [],
  };
  if (raw) {
    response.raw_output_contents.push(
        Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  } else {
    response.outputs[0].contents = {fp32_contents: Array.from(out.data)};
  }
  return response;
}

function toServiceError(err) {
  return err instanceof RequestError ? {code: err.code, details: err.message}
                                     : {code: grpc.status.INTERNAL, details: String(err)};
}

async function main() {
  const args = parseArgs(process.argv);
  const models = await loadModels(args.models);
  const definition = protoLoader.loadSync('grpc_service.proto', {
    keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
    includeDirs: [args.proto],
  });
  const proto = grpc.loadPackageDefinition(definition);
  const server = new grpc.Server({'grpc.max_receive_message_length': 64 << 20});
  server.addService(proto.inference.GRPCInferenceService.service, {
    ServerLive: (call, callback) => callback(null, {live: true}),
    ServerReady: (call, callback) => callback(null, {ready: true}),
    ModelReady: (call, callback) => callback(null, {ready: models.has(call.request.name)}),
    ModelInfer: (call, callback) => {
      infer(models, call.request).then((response) => callback(null, response),
                                       (err) => callback(toServiceError(err)));
    },
    ModelStreamInfer: (call) => {
      // Answers in request order: each request's promise chains on the previous one's.
      let last = Promise.resolve();
      call.on('data', (request) => {
        const answer = infer(models, request);
        last = last.then(() => answer.then(
            (response) => call.write({infer_response: response}),
            (err) => call.write({error_message: toServiceError(err).details})));
      });
      call.on('end', () => last.then(() => call.end()));
      call.on('error', () => {});
    },
  });
  server.bindAsync(args.address, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(`node_oip_server: cannot listen on ${args.address}: ${err.message}`);
      process.exit(1);
    }
    if (args.portFile) {
      fs.writeFileSync(args.portFile + '.tmp', `${port}\n`);
      fs.renameSync(args.portFile + '.tmp', args.portFile);
    }
    console.error(`node_oip_server: listening on port ${port}`);
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(`node_oip_server: ${err.message}`);
  process.exit(1);
});
