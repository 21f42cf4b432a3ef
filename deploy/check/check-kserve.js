#!/usr/bin/env node
// Checks the KServe runtime and InferenceServices under deploy/kserve (their
// CRDs are in no offline schema package, so the fields KServe reads are
// checked here) against the real server's flags:
//
//   NODE_PATH=<dir>/node_modules node check-kserve.js --serve-help HELP.txt \
//       [--pending-flag --flag]... [--print-args ISVC_NAME] FILE.yaml...
//
// - ClusterServingRuntime/ServingRuntime: supportedModelFormats (name,
//   version, autoSelect, priority), protocolVersions (KServe's values), one
//   container named kserve-container, validated as a Kubernetes container
//   (kubernetes-models' Pod schema). Every arg is --flag=value with a flag
//   that `selu-serve --help` lists; --model-repository is KServe's mount
//   /mnt/models; the ports of --http-address/--grpc-address/--metrics-address
//   are those the InferenceServices and the prometheus.kserve.io/port
//   annotation use. A --pending-flag missing from --help (a flag another
//   branch adds) is reported and allowed; once --help lists it, it is
//   checked like any other.
// - InferenceService: its runtime exists and supports its modelFormat and
//   protocolVersion; it declares exactly the one port Knative routes to, named
//   for its protocol (http1 for v2, h2c for grpc-v2) and equal to the port the
//   runtime's args listen on; storageUri has a scheme KServe downloads. The
//   predictor container KServe renders (the runtime's container with the
//   InferenceService's fields merged in, args appended) is validated as a
//   Kubernetes container too.
// --print-args NAME prints that InferenceService's rendered args, one a line
// (for the deploy check, which starts selu-serve with them).
// Exits 1 naming each problem.
"use strict";
const fs = require("fs");
const yaml = require("js-yaml");
const { Pod } = require("kubernetes-models/v1");

const PROTOCOLS = ["v1", "v2", "grpc-v1", "grpc-v2"];
// The one port a protocol is served on, as Knative names it.
const PORT_NAME = { v1: "http1", v2: "http1", "grpc-v1": "h2c", "grpc-v2": "h2c" };
// The server flag whose address serves the protocol.
const ADDRESS_FLAG = { v2: "--http-address", "grpc-v2": "--grpc-address" };
const STORAGE_SCHEMES = ["gs", "s3", "pvc", "https", "http", "hdfs", "webhdfs", "oci", "hf"];
const MOUNT = "/mnt/models";

const argv = process.argv.slice(2);
let helpFile = null;
let printArgs = null;
const pending = new Set();
const files = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--serve-help") helpFile = argv[++i];
  else if (argv[i] === "--pending-flag") pending.add(argv[++i]);
  else if (argv[i] === "--print-args") printArgs = argv[++i];
  else files.push(argv[i]);
}
if (!helpFile || files.length === 0) {
  console.error("usage: check-kserve.js --serve-help HELP.txt [--pending-flag F]... FILE.yaml...");
  process.exit(2);
}
const helpText = fs.readFileSync(helpFile, "utf8");
const serverFlags = new Set([...helpText.matchAll(/^\s+(?:-\w,\s*)?(--[a-z0-9][a-z0-9-]*)/gm)].map((m) => m[1]));
const problems = [];
const log = printArgs ? () => {} : (m) => console.log(m);
const problem = (what, msg) => problems.push(`${what}: ${msg}`);
if (!serverFlags.has("--model-repository") || serverFlags.size < 10) {
  problem(helpFile, `not the output of selu-serve --help (${serverFlags.size} flags found)`);
}

const docs = [];
for (const file of files) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d)) {
    docs.push({ file, doc, what: `${file}: ${doc.kind} ${doc.metadata && doc.metadata.name}` });
  }
}
const isRuntime = (d) => d.kind === "ClusterServingRuntime" || d.kind === "ServingRuntime";
const runtimes = new Map();
const services = [];
for (const { doc, what } of docs) {
  if (isRuntime(doc) && doc.apiVersion === "serving.kserve.io/v1alpha1") runtimes.set(doc.metadata.name, { doc, what });
  else if (doc.kind === "InferenceService" && doc.apiVersion === "serving.kserve.io/v1beta1") services.push({ doc, what });
  else problem(what, `unexpected ${doc.apiVersion} ${doc.kind} (want serving.kserve.io/v1alpha1 runtimes, v1beta1 InferenceServices)`);
}
if (runtimes.size === 0) problem(files.join(" "), "no ClusterServingRuntime");
if (services.length === 0) problem(files.join(" "), "no InferenceService");

function validateContainer(what, container) {
  const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "kserve-check" }, spec: { containers: [container] } };
  try {
    new Pod(pod).validate();
  } catch (e) {
    problem(what, `container does not validate as a Kubernetes container: ${e.message}`);
  }
}

function portOf(address) {
  const m = /:(\d+)$/.exec(address || "");
  return m ? Number(m[1]) : null;
}

// Runtime: fields KServe reads, the container, its args against --help.
const listenPort = new Map();  // runtime name -> flag -> port
for (const [name, { doc, what }] of runtimes) {
  const spec = doc.spec || {};
  const formats = spec.supportedModelFormats || [];
  if (!Array.isArray(formats) || formats.length === 0) problem(what, "spec.supportedModelFormats is empty");
  for (const f of formats) {
    if (typeof f.name !== "string" || !/^[a-z0-9-]+$/.test(f.name)) problem(what, `model format name ${JSON.stringify(f.name)}`);
    if (f.version !== undefined && typeof f.version !== "string") problem(what, `format ${f.name}: version must be a string`);
    if (f.autoSelect !== undefined && typeof f.autoSelect !== "boolean") problem(what, `format ${f.name}: autoSelect must be a boolean`);
    if (f.priority !== undefined && !(Number.isInteger(f.priority) && f.priority > 0)) problem(what, `format ${f.name}: priority must be a positive integer`);
    if (f.priority !== undefined && !f.autoSelect) problem(what, `format ${f.name}: priority is only read with autoSelect`);
  }
  for (const want of ["onnx", "selu"]) {
    if (!formats.some((f) => f.name === want)) problem(what, `supportedModelFormats lacks ${want}`);
  }
  const protocols = spec.protocolVersions || [];
  for (const p of protocols) if (!PROTOCOLS.includes(p)) problem(what, `protocolVersion ${p} is not one of ${PROTOCOLS}`);
  for (const want of ["v2", "grpc-v2"]) if (!protocols.includes(want)) problem(what, `protocolVersions lacks ${want}`);
  const containers = spec.containers || [];
  if (containers.length !== 1 || containers[0].name !== "kserve-container") {
    problem(what, "spec.containers must be one container named kserve-container (the one KServe merges the predictor into)");
  }
  const c = containers[0] || {};
  validateContainer(what, c);
  if (c.ports && c.ports.length) problem(what, "the runtime container declares ports: KServe would add each InferenceService's port to them, and Knative routes to one port only");
  const flags = new Map();
  for (const arg of c.args || []) {
    const m = /^(--[a-z0-9][a-z0-9-]*)=(.*)$/.exec(arg);
    if (!m) {
      problem(what, `arg ${JSON.stringify(arg)} is not --flag=value (one list item per flag)`);
      continue;
    }
    const [, flag, value] = m;
    if (flags.has(flag)) problem(what, `${flag} given twice`);
    flags.set(flag, value);
    if (serverFlags.has(flag)) continue;
    if (pending.has(flag)) {
      log(`PENDING ${what}: ${flag} is not in selu-serve --help yet (declared pending: a branch adds it)`);
    } else {
      problem(what, `arg ${flag} is not a selu-serve flag (selu-serve --help)`);
    }
  }
  if (flags.get("--model-repository") !== MOUNT) {
    problem(what, `--model-repository must be KServe's model mount ${MOUNT} (is ${flags.get("--model-repository")})`);
  }
  const ports = new Map();
  for (const flag of ["--http-address", "--grpc-address", "--metrics-address"]) {
    const port = portOf(flags.get(flag));
    if (!port) problem(what, `${flag} must be given with a fixed port (is ${flags.get(flag)})`);
    ports.set(flag, port);
  }
  listenPort.set(name, ports);
  const annotations = spec.annotations || {};
  if (Number(annotations["prometheus.kserve.io/port"]) !== ports.get("--metrics-address")) {
    problem(what, `annotation prometheus.kserve.io/port ${annotations["prometheus.kserve.io/port"]} is not the --metrics-address port ${ports.get("--metrics-address")}`);
  }
  if (annotations["prometheus.kserve.io/path"] !== "/metrics") problem(what, "annotation prometheus.kserve.io/path must be /metrics");
  const probe = c.readinessProbe;
  if (!probe) problem(what, "no readinessProbe: the pod would be ready before the models are");
  log(`checked ${what}: ${formats.length} formats, ${protocols.join("/")}, ${flags.size} args`);
}

// Render the predictor container as KServe does: the runtime's container
// with the InferenceService's model fields merged in (strategic merge:
// ports and env by key, resources replaced), args appended.
function render(runtimeContainer, model) {
  const out = JSON.parse(JSON.stringify(runtimeContainer));
  const { modelFormat, runtime, protocolVersion, storageUri, storage, runtimeVersion, args, env, ports, ...rest } = model;
  void modelFormat; void runtime; void protocolVersion; void storageUri; void storage; void runtimeVersion;
  Object.assign(out, rest);
  if (args) out.args = [...(out.args || []), ...args];
  if (env) {
    const byName = new Map((out.env || []).map((e) => [e.name, e]));
    for (const e of env) byName.set(e.name, e);
    out.env = [...byName.values()];
  }
  if (ports) {
    const byPort = new Map((out.ports || []).map((p) => [p.containerPort, p]));
    for (const p of ports) byPort.set(p.containerPort, p);
    out.ports = [...byPort.values()];
  }
  return out;
}

for (const { doc, what } of services) {
  const model = doc.spec && doc.spec.predictor && doc.spec.predictor.model;
  if (!model) {
    problem(what, "no spec.predictor.model");
    continue;
  }
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(doc.metadata.name) || doc.metadata.name.length > 63) {
    problem(what, "metadata.name is not a DNS-1035 label (KServe's rule)");
  }
  const rt = runtimes.get(model.runtime);
  if (!rt) {
    problem(what, `runtime ${model.runtime} is not one of the runtimes checked (${[...runtimes.keys()]})`);
    continue;
  }
  const spec = rt.doc.spec;
  const format = (model.modelFormat || {});
  const supported = (spec.supportedModelFormats || []).filter((f) => f.name === format.name &&
      (format.version === undefined || f.version === undefined || String(f.version).split(".")[0] === String(format.version).split(".")[0]));
  if (supported.length === 0) problem(what, `runtime ${model.runtime} does not support modelFormat ${JSON.stringify(format)}`);
  const protocol = model.protocolVersion;
  if (!protocol) problem(what, "protocolVersion unset: KServe's default v1 is not served by selu-serve");
  else if (!(spec.protocolVersions || []).includes(protocol)) problem(what, `runtime ${model.runtime} does not list protocolVersion ${protocol}`);
  const scheme = /^([a-z0-9]+):\/\//.exec(model.storageUri || "");
  if (!scheme || !STORAGE_SCHEMES.includes(scheme[1])) problem(what, `storageUri ${model.storageUri} has no scheme KServe's storage initializer downloads (${STORAGE_SCHEMES})`);
  const ports = model.ports || [];
  if (ports.length !== 1) {
    problem(what, `declares ${ports.length} ports; Knative routes to exactly one (the runtime declares none)`);
  } else if (protocol in ADDRESS_FLAG) {
    const want = listenPort.get(model.runtime).get(ADDRESS_FLAG[protocol]);
    if (ports[0].containerPort !== want) problem(what, `port ${ports[0].containerPort} is not the runtime's ${ADDRESS_FLAG[protocol]} port ${want} (${protocol})`);
    if (ports[0].name !== PORT_NAME[protocol]) problem(what, `port name ${ports[0].name}: ${protocol} needs ${PORT_NAME[protocol]} (Knative's protocol name)`);
  }
  const container = render(spec.containers[0], model);
  validateContainer(`${what} (rendered predictor)`, container);
  if (printArgs === doc.metadata.name) console.log((container.args || []).join("\n"));
  log(`checked ${what}: ${format.name} via ${model.runtime}, ${protocol} on ${ports.map((p) => `${p.name}/${p.containerPort}`)}`);
}

for (const p of problems) console.error(`FAIL ${p}`);
log(`${runtimes.size} runtimes, ${services.length} InferenceServices, ${serverFlags.size} server flags; ${problems.length} problems`);
process.exit(problems.length === 0 ? 0 : 1);
