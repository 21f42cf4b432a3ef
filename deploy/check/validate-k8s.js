#!/usr/bin/env node
// Validates rendered Kubernetes manifests (multi-document YAML files) against
// the Kubernetes OpenAPI schemas shipped by the npm package kubernetes-models
// (and @kubernetes-models/prometheus-operator for ServiceMonitor,
// @kubernetes-models/cert-manager for Certificate), with ajv.
//
//   NODE_PATH=<dir>/node_modules node validate-k8s.js rendered.yaml...
//
// Exits 1 naming the file, kind, name and schema error of every invalid
// object, or an object of a kind no schema is known for.
"use strict";
const fs = require("fs");
const yaml = require("js-yaml");

// apiVersion -> module exporting one class per kind.
function modelsFor(apiVersion) {
  const candidates = apiVersion === "v1"
    ? ["kubernetes-models/v1"]
    : [`kubernetes-models/${apiVersion}`,
       `@kubernetes-models/prometheus-operator/${apiVersion}`,
       `@kubernetes-models/cert-manager/${apiVersion}`];
  for (const c of candidates) {
    try {
      return require(c);
    } catch (e) {
      if (e.code !== "MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    }
  }
  return null;
}

let failures = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d);
  if (docs.length === 0) {
    console.error(`${file}: no objects`);
    failures++;
  }
  for (const doc of docs) {
    const what = `${file}: ${doc.apiVersion} ${doc.kind} ${doc.metadata && doc.metadata.name}`;
    const mod = doc.apiVersion && doc.kind ? modelsFor(doc.apiVersion) : null;
    const Model = mod && mod[doc.kind];
    if (!Model) {
      console.error(`${what}: no schema for this apiVersion/kind`);
      failures++;
      continue;
    }
    try {
      new Model(doc).validate();
      checked++;
      console.log(`valid  ${what}`);
    } catch (e) {
      failures++;
      console.error(`INVALID ${what}: ${e.message}`);
      if (e.errors) console.error(JSON.stringify(e.errors, null, 2));
    }
  }
}
console.log(`${checked} objects valid, ${failures} problems`);
process.exit(failures === 0 ? 0 : 1);
